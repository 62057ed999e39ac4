"""TlsServerLayer / TlsClientLayer driven directly (no bus): small I-frames, no application behind TLS, a
connection lost while a handshake step computes in the worker thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from lmn_helpers import RequestClient, ReversingServer
from test_tls_hdlc import contexts

from bab.tls import wolfssl_binding
from bab.tls.errors import TlsFailure
from bab.tls.hdlc_layer import InlineExecutor, TlsClientLayer, TlsLayerClosed, TlsServerLayer

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")


def shuttle(client: TlsClientLayer, server: TlsServerLayer, max_size: int, rounds: int = 400) -> list[int]:
    """Stop-and-wait exchange as the stations do it; returns the sizes of the I-frames sent."""
    sizes: list[int] = []
    for _ in range(rounds):
        if client.is_done():
            return sizes
        data = client.data_to_send(max_size)
        if data:
            sizes.append(len(data))
            server.data_received(data)
        answer = server.data_to_send(max_size)
        if answer:
            sizes.append(len(answer))
            client.data_received(answer)
    raise AssertionError("exchange did not finish")


@pytest.mark.parametrize("max_size", [64, 300, 2036])
def test_records_larger_than_the_frame_are_cut(max_size: int) -> None:
    sctx, gctx = contexts()
    inner = RequestClient(b"z" * 700)
    client = TlsClientLayer(gctx.new_connection(), inner)
    server = TlsServerLayer(sctx.new_connection(), ReversingServer, executor=InlineExecutor())
    sizes = shuttle(client, server, max_size)
    assert inner.answer == b"z" * 700 and max(sizes) <= max_size
    assert server.established and client.established and client.tls.closed


def test_no_application_behind_tls_closes_the_connection() -> None:
    sctx, gctx = contexts()
    client = TlsClientLayer(gctx.new_connection(), RequestClient(b"q"))
    server = TlsServerLayer(sctx.new_connection(), lambda: None, executor=InlineExecutor())
    with pytest.raises(TlsLayerClosed):
        shuttle(client, server, 2036)


def test_connection_lost_while_a_step_computes() -> None:
    sctx, gctx = contexts()
    gate = threading.Event()
    failures: list = []

    class Held:
        def __init__(self, conn) -> None:
            self.conn = conn

        def receive_bytes(self, data: bytes) -> None:
            gate.wait(5)
            self.conn.receive_bytes(data)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    made: list = []
    with ThreadPoolExecutor(1) as pool:
        server = TlsServerLayer(Held(sctx.new_connection()), lambda: made.append(1), executor=pool,
                                on_failure=failures.append)
        client = TlsClientLayer(gctx.new_connection(), RequestClient(b"q"))
        server.data_received(client.data_to_send(2036))
        assert server.is_busy() and server.data_to_send(2036) == b""
        server.connection_lost()
        gate.set()
    assert [f.reason for f in failures] == [TlsFailure.HANDSHAKE_FAILURE]
    assert made == [] and server.data_to_send(2036) == b""


def test_client_layer_keeps_its_error() -> None:
    sctx, _ = contexts()
    _, bad = contexts(cert_pem=None)
    client = TlsClientLayer(bad.new_connection(), RequestClient(b"q"))
    server = TlsServerLayer(sctx.new_connection(), ReversingServer, executor=InlineExecutor())
    with pytest.raises(Exception) as info:
        shuttle(client, server, 2036)
    assert client.error is not None and info.value is client.error
    with pytest.raises(type(client.error)):
        client.is_done()
    assert server.error.reason is TlsFailure.NO_CERTIFICATE
    with pytest.raises(TlsLayerClosed):
        server.data_to_send(2036)
