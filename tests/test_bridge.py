"""The selector bridge's sans-I/O core in virtual time: record-aligned I-frames, channels that wait for the
meter, refusals, queued channels, and a whole TLS session (BAB's wolfSSL meter, an OpenSSL client playing
the TCP client) through a bridged channel."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmn_helpers import FAST_GATEWAY, ReversingServer, frame_message
from test_tls_hdlc_support import identity

from bab.gateway.app import SoftwareGateway
from bab.gateway.bridge import RecordChunker, SelectorBridge, StreamLayer
from bab.hdlc.secondary import MeterStation, StationState
from bab.hdlc.timing import MeterTiming
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation
from bab.meter_id import MeterId
from bab.tls import wolfssl_binding
from bab.tls.records import split_records

METER = MeterId.parse("1BAB0000000042").server_id
OTHER = MeterId.parse("1BAB0000000043").server_id


# --- RecordChunker -----------------------------------------------------------------------------------------


def record(kind: int, body: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(body).to_bytes(2, "big") + body


def drain(chunker: RecordChunker, max_size: int, eof: bool = False) -> list[bytes]:
    out = []
    while chunk := chunker.next_chunk(max_size, eof=eof):
        out.append(chunk)
    return out


@settings(max_examples=80, deadline=None)
@given(
    bodies=st.lists(st.tuples(st.sampled_from([20, 21, 22, 23]), st.binary(max_size=3000)), min_size=1, max_size=8),
    cut=st.integers(1, 700),
    max_size=st.integers(64, 2036),
)
def test_chunks_follow_record_boundaries(bodies, cut: int, max_size: int) -> None:
    records = [record(k, b) for k, b in bodies]
    stream = b"".join(records)
    chunker = RecordChunker()
    chunks: list[bytes] = []
    for i in range(0, len(stream), cut):  # the client's bytes arrive in arbitrary TCP segments
        chunker.feed(stream[i : i + cut])
        chunks += drain(chunker, max_size)
    assert b"".join(chunks) == stream and len(chunker) == 0
    assert all(0 < len(c) <= max_size for c in chunks)
    # each chunk lies inside one record; a record that fits a frame is exactly one chunk
    ends = [sum(map(len, records[: i + 1])) for i in range(len(records))]
    pos = 0
    for c in chunks:
        record_end = next(e for e in ends if e > pos)
        assert pos + len(c) <= record_end
        pos += len(c)
    for r in records:
        if len(r) <= max_size:
            assert r in chunks


def test_an_incomplete_record_waits_and_goes_out_whole() -> None:
    r = record(22, b"x" * 100)
    chunker = RecordChunker()
    chunker.feed(r[:3])
    assert chunker.next_chunk(2036) == b""
    chunker.feed(r[3:50])
    assert chunker.next_chunk(2036) == b""
    chunker.feed(r[50:])
    assert chunker.next_chunk(2036) == r


def test_end_of_stream_flushes_a_partial_record() -> None:
    chunker = RecordChunker()
    chunker.feed(b"\x16\x03\x03\x01\x00abc")
    assert chunker.next_chunk(2036) == b""
    assert chunker.next_chunk(2036, eof=True) == b"\x16\x03\x03\x01\x00abc"


@pytest.mark.parametrize("stream", [
    b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + bytes(16),  # an SSL 2.0 ClientHello (testssl.sh sends one)
    b"GET / HTTP/1.1\r\n\r\n",
    b"\x16\x05\x00",  # not TLS version 3
])
def test_a_stream_that_is_not_tls_records_passes_through(stream: bytes) -> None:
    chunker = RecordChunker()
    chunker.feed(stream)
    assert b"".join(drain(chunker, 8)) == stream
    chunker.feed(b"more")
    assert chunker.next_chunk(2036) == b"more"


# --- SelectorBridge in virtual time ------------------------------------------------------------------------


class Rig:
    """The bridge's gateway and up to two meter stations on a virtual bus."""

    def __init__(self, layers=None, *, meter: bytes | None = METER, second=False, start_meter=True,
                 connect_timeout: float = 5.0) -> None:
        self.sim = Simulation(VirtualBus())
        self.lines: list[str] = []
        self.gateway = SoftwareGateway(FAST_GATEWAY, report=self.lines.append, report_exchanges=False)
        self.bridge = SelectorBridge(self.gateway, meter=meter, connect_timeout=connect_timeout,
                                     report=self.lines.append)
        self.sim.add("gw", LinkNode([self.bridge]))
        self.log: list[bytes] = []
        default = layers or (lambda sel: ReversingServer(self.log) if sel == 1 else None)
        self.stations = []
        ids = [METER, OTHER] if second else [METER]
        for i, sid in enumerate(ids):
            st_ = MeterStation(sid, default, MeterTiming(), rng=random.Random(7 + i))
            self.stations.append(st_)
            node = self.sim.add(f"m{i}", LinkNode([st_]))
            if not start_meter:
                self.sim.set_running(node, False)
        self.meter_nodes = self.sim.nodes[1:]

    def registered(self) -> bool:
        return all(s.state is StationState.REGISTERED for s, n in zip(self.stations, self.meter_nodes, strict=True)
                   if n.running) and len(self.gateway.station.participants) == sum(n.running for n in self.meter_nodes)

    def channel(self, payload: bytes = b"") -> tuple[StreamLayer, bytearray, list]:
        got = bytearray()
        ends: list = []
        layer = StreamLayer(got.extend, ends.append)
        if payload:
            layer.feed(frame_message(payload))
        self.bridge.open_channel(layer, self.sim.now)
        return layer, got, ends


def test_a_channel_waits_for_the_meter_then_carries_bytes_both_ways() -> None:
    rig = Rig(start_meter=False)
    layer, got, ends = rig.channel(b"hello meter")
    rig.sim.run_for(1.0)
    assert got == b"" and ends == []  # no meter yet: the channel waits
    rig.sim.set_running(rig.meter_nodes[0], True)
    assert rig.sim.run_for(10.0, lambda: len(got) == 13)
    assert bytes(got) == frame_message(b"retem olleh") and rig.log == [b"hello meter"]
    layer.feed(frame_message(b"again"))
    assert rig.sim.run_for(5.0, lambda: len(got) == 20)
    layer.finish()
    assert rig.sim.run_for(5.0, lambda: ends == [None])  # clean DISC after the client's end of stream
    assert rig.stations[0].connected_selector is None
    assert layer.bytes_up == 13 + 7 and layer.bytes_down == 20


def test_a_channel_to_an_absent_meter_ends_after_the_connect_timeout() -> None:
    rig = Rig(start_meter=False, connect_timeout=2.0)
    _, _, ends = rig.channel(b"x")
    assert rig.sim.run_for(5.0, lambda: bool(ends))
    assert ends == ["meter 1BAB0000000042 is not registered (yet)"] and 1.9 < rig.sim.now < 2.5
    assert rig.bridge.channels_refused == 1


def test_a_meter_that_does_not_serve_the_selector_ends_the_channel_with_dm() -> None:
    rig = Rig(layers=lambda sel: None)
    assert rig.sim.run_for(10.0, rig.registered)
    _, got, ends = rig.channel(b"x")
    assert rig.sim.run_for(5.0, lambda: bool(ends))
    assert ends == ["refused (DM)"] and got == b""


def test_without_a_meter_id_several_meters_are_refused_by_name() -> None:
    rig = Rig(meter=None, second=True)
    assert rig.sim.run_for(20.0, rig.registered)
    _, _, ends = rig.channel(b"x")
    assert ends and "several meters" in ends[0] and "1BAB0000000042" in ends[0] and "1BAB0000000043" in ends[0]


def test_with_a_meter_id_the_right_meter_answers() -> None:
    logs = {METER: [], OTHER: []}
    rig = Rig(meter=OTHER, second=True)
    for st_ in rig.stations:
        st_.layers = (lambda sid: lambda sel: ReversingServer(logs[sid]))(st_.server_id)
    assert rig.sim.run_for(20.0, rig.registered)
    _, got, _ = rig.channel(b"which")
    assert rig.sim.run_for(5.0, lambda: len(got) == 7)
    assert logs == {METER: [], OTHER: [b"which"]}


def test_channels_are_served_one_after_the_other() -> None:
    rig = Rig()
    assert rig.sim.run_for(10.0, rig.registered)
    first, got1, ends1 = rig.channel(b"one")
    second, got2, ends2 = rig.channel(b"two")
    assert rig.sim.run_for(5.0, lambda: len(got1) == 5)
    rig.sim.run_for(0.5)
    assert got2 == b""  # the meter has one connection at a time: the second channel is queued
    first.finish()
    assert rig.sim.run_for(5.0, lambda: len(got2) == 5)
    assert bytes(got2) == frame_message(b"owt") and ends1 == [None]
    second.finish()
    assert rig.sim.run_for(5.0, lambda: ends2 == [None])


def test_a_client_that_leaves_before_its_channel_opened() -> None:
    rig = Rig(start_meter=False)
    layer, _, ends = rig.channel()
    layer.finish()
    rig.sim.run_for(0.5)
    assert ends == [None] and rig.bridge.channels_opened == 0


@pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")
def test_a_tls_session_through_a_bridged_channel_travels_one_record_per_i_frame() -> None:
    from bab.tls.gateway_client import OPENSSL_DEFAULT_GROUPS, GatewayTlsContext
    from bab.tls.hdlc_layer import InlineExecutor, TlsServerLayer
    from bab.tls.keys import Curve
    from bab.tls.meter_server import MeterTlsContext

    mk, mc = identity("1BAB0000000042", Curve.SECP256R1)
    gk, gc = identity("SMGW", Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    log: list[bytes] = []
    rig = Rig(layers=lambda sel: TlsServerLayer(sctx.new_connection(), lambda: ReversingServer(log),
                                                executor=InlineExecutor()) if sel == 1 else None)
    frames: list[bytes] = []
    station = rig.stations[0]
    original = station.frame_received

    def spy(frame, now):
        if frame.kind.name == "I":
            frames.append(frame.info)
        original(frame, now)

    station.frame_received = spy
    assert rig.sim.run_for(10.0, rig.registered)
    # the TCP client: OpenSSL with its default groups (X25519 first), writing whole flights at once
    client = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc,
                               raw_groups=OPENSSL_DEFAULT_GROUPS).new_connection()
    client.start()
    layer, got, ends = rig.channel()

    def shuttle() -> bool:
        if got:
            client.receive_bytes(bytes(got))
            got.clear()
        out = client.bytes_to_send()
        if out:
            layer.feed(out)
        return client.handshake_complete

    assert rig.sim.run_for(10.0, shuttle)
    assert client.info.group is Curve.SECP256R1
    client.send_application_data(frame_message(b"through the bridge"))
    answer = bytearray()

    def read() -> bool:
        shuttle()
        answer.extend(client.read_application_data())
        return len(answer) == 20

    assert rig.sim.run_for(10.0, read)
    assert bytes(answer) == frame_message(b"egdirb eht hguorht") and log == [b"through the bridge"]
    for info in frames:  # every I-frame from the gateway carried exactly one whole TLS record
        records, rest = split_records(info)
        assert len(records) == 1 and rest == b"", info[:8].hex()
