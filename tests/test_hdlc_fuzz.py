"""Property-based fuzzing of the frame receiver and both stations: no exception escapes, memory stays bounded.

The default run is short; ``pytest -m slow`` runs the long version.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lmn_helpers import RequestClient, meter

from bab.hdlc.frame import GATEWAY_ADDRESS, Frame, control_i, control_rr
from bab.hdlc.primary import GatewayStation
from bab.hdlc.receiver import FrameReceiver
from bab.hdlc.record import ParticipantRecord, encode_records
from bab.hdlc.secondary import StationState
from bab.lmn.node import LinkNode

MAX_BUFFER = 2049


def valid_frames():
    rec = ParticipantRecord.for_meter(0x20, 1, b"\x0a\x01BAB\x00\x00\x00\x00\x01").encode()
    return st.sampled_from([
        Frame(0x20, 3, GATEWAY_ADDRESS, 3, 0x93),
        Frame(0x20, 3, GATEWAY_ADDRESS, 3, control_i(0, 0), b"\x00\x02hi"),
        Frame(0x20, 3, GATEWAY_ADDRESS, 3, control_rr(1)),
        Frame(0x20, 3, GATEWAY_ADDRESS, 3, 0x53),
        Frame(0x7F, 1, GATEWAY_ADDRESS, 1, 0x13, rec),
        Frame(0x7F, 2, GATEWAY_ADDRESS, 2, 0x13, rec),
        Frame(0x7F, 1, GATEWAY_ADDRESS, 1, 0x13, b""),
    ]).map(Frame.encode)


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        op = rnd.randrange(3)
        if op == 0 and b:
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        elif op == 1 and b:
            del b[rnd.randrange(len(b))]
        else:
            b.insert(rnd.randrange(len(b) + 1), rnd.randrange(256))
    return bytes(b)


chunks = st.lists(
    st.one_of(st.binary(max_size=80), valid_frames(),
              st.tuples(valid_frames(), st.randoms(use_true_random=False)).map(lambda t: mutate(*t))),
    max_size=40,
)


def _drive(parts: list[bytes]) -> None:
    m = meter(1, seed=3)
    m.address, m.state = 0x20, StationState.REGISTERED
    gw = GatewayStation()
    gw.start(0.0)
    node = LinkNode([m, gw])
    t = 0.0
    for part in parts:
        t += 0.001
        node.bytes_received(part, t)
        assert node.receiver.pending <= MAX_BUFFER + len(part)
        for tx in node.transmissions_due(t + 1.0):
            assert tx.data[:1] == b"\x7e"
        t += 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks)
def test_fuzz_station_and_receiver(parts):
    _drive(parts)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks)
def test_fuzz_station_and_receiver_long(parts):
    _drive(parts)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=3000))
def test_receiver_only_yields_frames_that_reencode_identically(data):
    rx = FrameReceiver()
    for f in rx.feed(data):
        # Whatever the receiver accepts is a real frame: its encoding is a substring of the input.
        assert f.encode()[1:-1] in data


def test_gateway_ignores_garbage_slot_replies():
    gw = GatewayStation()
    gw.start(0.0)
    (bc,) = gw.transmissions_due(0.0)
    bogus = [
        Frame(GATEWAY_ADDRESS, 1, 0x20, 1, 0x13, b"short"),
        Frame(GATEWAY_ADDRESS, 1, 0x20, 1, 0x13, encode_records([ParticipantRecord.for_meter(0x21, 1, b"x" * 10)])),
        Frame(GATEWAY_ADDRESS, 1, 0x00, 1, 0x13, encode_records([ParticipantRecord.for_meter(0x00, 1, b"x" * 10)])),
    ]
    for f in bogus:
        gw.frame_received(f, 0.01)
    assert gw.participants == {} and gw.counters.unexpected == 3
    gw.converse(0x20, 3, RequestClient(b"x"))  # not a participant: fails cleanly
    gw.transmissions_due(5.0)
