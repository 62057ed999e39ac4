"""TLS as the HDLC upper layer of selector 1, end to end over the virtual bus in virtual time: the full
suite x curve matrix with an application round trip, the rejections (each logged, counted, answered with an
alert and then DM, and the link still serving the legitimate gateway), RNR during threaded handshake steps,
and the certificate validity policy at the layer level."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from lmn_helpers import RequestClient
from test_tls_hdlc_support import Link, identity, reversing

from bab.hdlc import events as ev
from bab.tls import keys, wolfssl_binding
from bab.tls.errors import TlsError, TlsFailure
from bab.tls.gateway_client import OPENSSL_DEFAULT_GROUPS, GatewayTlsContext
from bab.tls.hdlc_layer import InlineExecutor, TlsClientLayer, TlsLayerClosed, TlsServerLayer
from bab.tls.keys import Curve
from bab.tls.meter_server import MeterTlsContext
from bab.tls.policy import CIPHER_SUITES, ValidityPolicy

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

TLS = 1


class MeterSide:
    """The meter's selector-1 service with a failure counter, as MeterSecurity wires it."""

    def __init__(self, ctx: MeterTlsContext, executor=None, wrap=None, now=None) -> None:
        self.ctx = ctx
        self.failures: list[TlsError] = []
        self.established = 0
        self.log: list[bytes] = []
        self.layers: list[TlsServerLayer] = []
        self.executor = executor or InlineExecutor()
        self.wrap = wrap
        self.now = now

    def layer(self, selector: int):
        if selector != TLS:
            return None
        conn = self.ctx.new_connection(now=self.now)
        if self.wrap is not None:
            conn = self.wrap(conn)
        layer = TlsServerLayer(conn, reversing(self.log), executor=self.executor, on_failure=self.failures.append,
                               on_established=lambda info: setattr(self, "established", self.established + 1),
                               name="1BAB0000000042")
        self.layers.append(layer)
        return layer


def contexts(curve: Curve = Curve.SECP256R1, **client_kw) -> tuple[MeterTlsContext, GatewayTlsContext]:
    mk, mc = identity("1BAB0000000042", curve)
    gk, gc = identity("SMGW", curve)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    args = dict(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve])
    args.update(client_kw)
    return sctx, GatewayTlsContext(**args)


def read(link: Link, gctx: GatewayTlsContext, payload: bytes = b"GetProcParameter 1-0:1.8.0") -> tuple:
    client = RequestClient(payload)
    layer = TlsClientLayer(gctx.new_connection(), client)
    result = link.converse(TLS, layer)
    return result, client, layer


def assert_read_works(link: Link, gctx: GatewayTlsContext, payload: bytes = b"after the failure") -> None:
    result, client, layer = read(link, gctx, payload)
    assert isinstance(result, ev.ConversationDone), result
    assert client.answer == payload[::-1]
    assert layer.result is None and layer.tls.closed


# --- the matrix -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix_contexts() -> dict[Curve, tuple[MeterTlsContext, GatewayTlsContext]]:
    return {curve: contexts(curve) for curve in Curve}


@pytest.mark.parametrize("suite", CIPHER_SUITES)
@pytest.mark.parametrize("curve", list(Curve))
def test_matrix_handshake_and_application_round_trip(suite: str, curve: Curve, matrix_contexts) -> None:
    sctx, _ = matrix_contexts[curve]
    mk, mc = identity("1BAB0000000042", curve)
    gk, gc = identity("SMGW", curve)
    gctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=suite)
    meter = MeterSide(sctx)
    link = Link(meter.layer)
    payload = bytes(range(256)) * 5  # 1280 bytes: three records each way with max_fragment_length 512
    result, client, layer = read(link, gctx, payload)
    assert isinstance(result, ev.ConversationDone), result
    assert client.answer == payload[::-1] and meter.log == [payload]
    info = layer.tls.info
    assert info.cipher_suite == suite and info.group is curve and info.version == "TLSv1.2"
    server_info = meter.layers[0].tls.info
    assert server_info.cipher_suite == suite and server_info.group is curve
    assert server_info.max_fragment_length == 512
    assert meter.failures == [] and meter.established == 1
    assert link.station.counters.layer_errors == 0


def test_every_record_travels_in_its_own_i_frame() -> None:
    sctx, gctx = contexts()
    meter = MeterSide(sctx)
    link = Link(meter.layer)
    seen: list[bytes] = []
    original = link.station.frame_received

    def spy(frame, now):
        if frame.kind.name == "I":
            seen.append(frame.info)
        original(frame, now)

    link.station.frame_received = spy
    result, client, _ = read(link, gctx, b"x" * 1500)
    assert isinstance(result, ev.ConversationDone)
    for info in seen:  # each I-frame from the gateway holds exactly one whole TLS record
        assert len(info) == 5 + int.from_bytes(info[3:5], "big") and info[0] in (20, 21, 22, 23)
        assert len(info) <= 5 + 512 + 256


def test_session_resumption_over_the_link() -> None:
    sctx, gctx = contexts()
    meter = MeterSide(sctx)
    link = Link(meter.layer)
    _, _, first = read(link, gctx)
    client = RequestClient(b"again")
    layer = TlsClientLayer(gctx.new_connection(session=first.tls.session), client)
    assert isinstance(link.converse(TLS, layer), ev.ConversationDone)
    assert client.answer == b"niaga" and layer.tls.info.session_reused


# --- the group choice: the client offers of issue 11 -----------------------------------------------------

GROUP_OFFERS = [
    # (what the gateway's TLS stack offers, meter certificate curve, group the meter chooses)
    (OPENSSL_DEFAULT_GROUPS, Curve.SECP256R1, Curve.SECP256R1),  # X25519:P-256:X448:P-521:P-384
    ("X25519:P-384", Curve.SECP384R1, Curve.SECP384R1),  # X25519 first
    ("X448:brainpoolP384r1:brainpoolP512r1", Curve.BRAINPOOL_P384R1, Curve.BRAINPOOL_P384R1),
    ("P-521:P-384", Curve.SECP384R1, Curve.SECP384R1),
    ("brainpoolP256r1", Curve.BRAINPOOL_P256R1, Curve.BRAINPOOL_P256R1),  # each of the five alone
    ("brainpoolP384r1", Curve.BRAINPOOL_P384R1, Curve.BRAINPOOL_P384R1),
    ("brainpoolP512r1", Curve.BRAINPOOL_P512R1, Curve.BRAINPOOL_P512R1),
    ("P-256", Curve.SECP256R1, Curve.SECP256R1),
    ("P-384", Curve.SECP384R1, Curve.SECP384R1),
]


@pytest.mark.parametrize(("offer", "cert_curve", "chosen"), GROUP_OFFERS)
def test_group_choice_over_the_link(offer: str, cert_curve: Curve, chosen: Curve, matrix_contexts) -> None:
    sctx, _ = matrix_contexts[cert_curve]
    _, gctx = contexts(cert_curve, raw_groups=offer)
    meter = MeterSide(sctx)
    link = Link(meter.layer)
    result, client, layer = read(link, gctx, b"GetList 1-0:0.0.9")
    assert isinstance(result, ev.ConversationDone), result
    assert client.answer == b"GetList 1-0:0.0.9"[::-1]
    assert layer.tls.info.group is chosen and meter.layers[0].tls.info.group is chosen
    assert meter.failures == [] and meter.established == 1


# --- rejections -------------------------------------------------------------------------------------------


def reject(link: Link, meter: MeterSide, gctx: GatewayTlsContext, reason: TlsFailure, caplog,
           alert: str | None = None) -> TlsError:
    caplog.clear()
    before = len(meter.failures)
    dm_before = link.station.counters.dm_sent
    result, client, layer = read(link, gctx)
    assert isinstance(result, ev.ExchangeFailed), result
    assert client.answer is None and meter.log == []
    assert len(meter.failures) == before + 1
    err = meter.failures[-1]
    assert err.reason is reason, err
    lines = [r.getMessage() for r in caplog.records if r.name == "bab.tls"]
    assert any("1BAB0000000042: TLS failure: " + reason.value in line for line in lines), lines
    # the fatal alert reached the gateway (its TLS client failed on it), and it is the one the meter logged
    assert layer.error is not None and layer.error.reason is TlsFailure.PEER_ALERT, layer.error
    assert layer.error.alert == err.alert and err.alert is not None
    assert any(f"answered with alert {err.alert}" in line for line in lines), lines
    if alert is not None:
        assert err.alert == alert
    # the dead meter layer makes the station answer any further poll with DM (see test_polls_after_alert_get_dm)
    with pytest.raises(TlsLayerClosed):
        meter.layers[-1].data_to_send(2036)
    assert link.station.counters.dm_sent == dm_before
    return err


@pytest.fixture
def rejection_link():
    sctx, gctx = contexts()
    meter = MeterSide(sctx)
    return Link(meter.layer), meter, gctx


def test_wrong_client_certificate(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    ok, oc = identity("INTRUDER")
    _, bad = contexts(key_pem=ok, cert_pem=oc)
    err = reject(link, meter, bad, TlsFailure.BAD_CERTIFICATE, caplog, "bad_certificate")
    assert keys.fingerprint_sha256(oc) in err.detail
    assert_read_works(link, good)


def test_no_client_certificate(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(cert_pem=None)
    reject(link, meter, bad, TlsFailure.NO_CERTIFICATE, caplog, "handshake_failure")
    assert_read_works(link, good)


def test_tls13_only_client(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(min_version=ssl.TLSVersion.TLSv1_3, max_version=ssl.TLSVersion.TLSv1_3)
    reject(link, meter, bad, TlsFailure.PROTOCOL_VERSION, caplog, "protocol_version")
    assert_read_works(link, good)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions(rejection_link, caplog, version) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(min_version=version, max_version=version, ciphers="ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    reject(link, meter, bad, TlsFailure.PROTOCOL_VERSION, caplog, "protocol_version")
    assert_read_works(link, good)


@pytest.mark.parametrize("offer", ["X25519", "X25519:X448:P-521"])
def test_only_forbidden_groups(rejection_link, caplog, offer) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(raw_groups=offer)
    reject(link, meter, bad, TlsFailure.FORBIDDEN_GROUP, caplog, "handshake_failure")
    assert_read_works(link, good)


def test_non_tr_suites_only(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-CHACHA20-POLY1305")
    reject(link, meter, bad, TlsFailure.NO_SHARED_CIPHER, caplog, "handshake_failure")
    assert_read_works(link, good)


class Tamper:
    """A gateway-side ClientLayer wrapper that alters the first application-data record it sends."""

    def __init__(self, inner: TlsClientLayer, how: str) -> None:
        self.inner, self.how, self.done = inner, how, False

    def data_to_send(self, max_size: int) -> bytes:
        data = self.inner.data_to_send(max_size)
        if data[:1] == b"\x17" and not self.done:
            self.done = True
            b = bytearray(data)
            if self.how == "corrupt":
                b[len(b) // 2] ^= 0x20
            else:  # truncate: the length field claims less than follows
                n = int.from_bytes(b[3:5], "big")
                b[3:5] = (n - 10).to_bytes(2, "big")
            return bytes(b)
        return data

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.parametrize("how", ["corrupt", "truncate"])
def test_corrupted_and_truncated_records(rejection_link, caplog, how) -> None:
    link, meter, good = rejection_link
    client = RequestClient(b"y" * 100)
    layer = TlsClientLayer(good.new_connection(), client)
    result = link.converse(TLS, Tamper(layer, how))
    assert isinstance(result, ev.ExchangeFailed)
    assert client.answer is None and meter.log == []
    assert len(meter.failures) == 1
    assert meter.failures[0].reason in (TlsFailure.BAD_RECORD_MAC, TlsFailure.DECODE_ERROR)
    assert any("TLS failure" in r.getMessage() for r in caplog.records)
    assert_read_works(link, good)


class Abandon:
    """A gateway that sends its ClientHello, reads the server flight and then gives up (DISC)."""

    def __init__(self, inner: TlsClientLayer) -> None:
        self.inner = inner
        self.received = 0

    def data_to_send(self, max_size: int) -> bytes:
        return self.inner.data_to_send(max_size) if self.received == 0 else b""

    def data_received(self, data: bytes) -> None:
        self.received += 1
        self.inner.data_received(data)

    def is_done(self) -> bool:
        return self.received >= 3

    def connection_lost(self, reason) -> None:
        pass


def test_handshake_abandoned_halfway(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    result = link.converse(TLS, Abandon(TlsClientLayer(good.new_connection(), RequestClient(b"-"))))
    assert isinstance(result, ev.ConversationDone)  # the gateway left cleanly with DISC
    assert len(meter.failures) == 1 and meter.failures[0].reason is TlsFailure.HANDSHAKE_FAILURE
    assert any("abandoned" in r.getMessage() for r in caplog.records)
    assert link.station.connected_selector is None
    assert_read_works(link, good)


class KeepPolling:
    """A gateway that ignores the TLS failure and keeps polling (a real SMGW may do that)."""

    def __init__(self, inner: TlsClientLayer) -> None:
        self.inner = inner
        self.failed = False

    def data_to_send(self, max_size: int) -> bytes:
        return b"" if self.failed else self.inner.data_to_send(max_size)

    def data_received(self, data: bytes) -> None:
        try:
            self.inner.data_received(data)
        except TlsError:
            self.failed = True

    def is_done(self) -> bool:
        return False

    def connection_lost(self, reason) -> None:
        self.reason = reason


def test_polls_after_alert_get_dm(rejection_link, caplog) -> None:
    link, meter, good = rejection_link
    _, bad = contexts(cert_pem=None)
    client = KeepPolling(TlsClientLayer(bad.new_connection(), RequestClient(b"-")))
    result = link.converse(TLS, client)
    assert client.failed and isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    assert link.station.connected_selector is None and link.station.counters.layer_errors == 1  # DM via the layer
    assert len(meter.failures) == 1 and meter.layers[-1].error.reason is TlsFailure.NO_CERTIFICATE
    assert_read_works(link, good)


def test_garbage_instead_of_tls(rejection_link, caplog) -> None:
    link, meter, good = rejection_link

    class Garbage(RequestClient):
        def data_to_send(self, max_size: int) -> bytes:
            return super().data_to_send(max_size)

        def is_done(self) -> bool:
            return self.result != "pending" or self.answer is not None

    client = Garbage(b"GET / HTTP/1.1\r\n\r\n")
    result = link.converse(TLS, client, timeout=120.0)
    assert isinstance(result, ev.ExchangeFailed) and "DM" in result.reason
    assert len(meter.failures) == 1
    assert_read_works(link, good)


# --- RNR while computing ------------------------------------------------------------------------------


class SlowTls:
    """A MeterTlsServer whose receive_bytes takes 20 ms longer (a slow CPU)."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.threads: set[str] = set()

    def receive_bytes(self, data: bytes) -> None:
        self.threads.add((threading.current_thread().name, self.conn.handshake_complete))
        time.sleep(0.02)
        self.conn.receive_bytes(data)

    def __getattr__(self, name: str):
        return getattr(self.conn, name)


def test_station_answers_rnr_while_a_threaded_handshake_step_computes() -> None:
    sctx, gctx = contexts(Curve.BRAINPOOL_P384R1)
    wrapped: list[SlowTls] = []

    def wrap(conn):
        wrapped.append(SlowTls(conn))
        return wrapped[-1]

    with ThreadPoolExecutor(1, thread_name_prefix="tls-worker") as pool:
        meter = MeterSide(sctx, executor=pool, wrap=wrap)
        link = Link(meter.layer)
        result, client, _ = read(link, gctx, b"slow meter")
    assert isinstance(result, ev.ConversationDone) and client.answer == b"retem wols"
    assert link.station.counters.rnr_sent > 0  # the gateway's polls got RNR, not silence
    assert meter.layers[0].steps_threaded >= 2
    # handshake steps ran in the worker; application records (after the handshake) inline in the station's thread
    assert {done for name, done in wrapped[0].threads if name.startswith("tls-worker")} == {False}
    assert {done for name, done in wrapped[0].threads if not name.startswith("tls-worker")} <= {True}
    assert link.gw.counters.timeouts == 0


# --- validity policy ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expired_gateway() -> tuple[bytes, bytes]:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return keys.generate_identity("OLD-SMGW", Curve.SECP256R1, not_before=start, validity=dt.timedelta(days=365))


@pytest.mark.parametrize(
    ("policy", "now", "ok"),
    [
        (ValidityPolicy.IGNORE, None, True),
        (ValidityPolicy.SYSTEM_CLOCK, None, False),
        (ValidityPolicy.GIVEN_TIME, dt.datetime(2020, 6, 1, tzinfo=dt.UTC), True),
        (ValidityPolicy.GIVEN_TIME, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), False),
    ],
)
def test_validity_policy_at_the_layer(expired_gateway, policy, now, ok, caplog) -> None:
    gk, gc = expired_gateway
    mk, mc = identity("1BAB0000000042")
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc, validity=policy)
    gctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc)
    meter = MeterSide(sctx, now=now)
    link = Link(meter.layer)
    result, client, _ = read(link, gctx)
    if ok:
        assert isinstance(result, ev.ConversationDone) and client.answer is not None
        assert meter.failures == []
    else:
        assert isinstance(result, ev.ExchangeFailed)
        assert [f.reason for f in meter.failures] == [TlsFailure.CERTIFICATE_EXPIRED]


def test_failure_is_logged_at_warning(rejection_link, caplog) -> None:
    link, meter, _ = rejection_link
    _, bad = contexts(cert_pem=None)
    with caplog.at_level(logging.WARNING, logger="bab.tls"):
        read(link, bad)
    (record,) = [r for r in caplog.records if r.name == "bab.tls"]
    assert record.levelno == logging.WARNING and record.meter_id == "1BAB0000000042"
    assert record.reason == TlsFailure.NO_CERTIFICATE.value
