"""Hypothesis fuzz of the SYM meter's receive() (LMN-STACK.md §5): random and mutated input never raises,
is never answered, never produces a state save and never changes the state file."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_sym_support import METER_ID, MK, ack_saves, gw_cert, meter_creds, own_cert

from bab.sym import (
    Direction,
    MessageDropped,
    PairingState,
    PersistentSymMeter,
    Profile2015,
    SaveState,
    SymGateway,
    SymMeter,
    SymStore,
)


@cache
def recorded(emh: bool) -> tuple[bytes, ...]:
    """The gateway messages of one complete route (a) pairing."""
    prof = Profile2015(emh_bug=emh)
    meter = SymMeter(PairingState(MK), METER_ID, profile=prof, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds(), profile=prof)
    gw.start()
    out = []
    while (req := gw.data_to_send()):
        out.append(req)
        meter.receive(req)
        ack_saves(meter)
        gw.receive(meter.data_to_send())
    assert meter.state.paired and len(out) == 5
    return tuple(out)


def mid_session_meter(emh: bool, steps: int) -> SymMeter:
    meter = SymMeter(PairingState(MK), METER_ID, profile=Profile2015(emh_bug=emh), own_certificate=own_cert())
    for req in recorded(emh)[:steps]:
        meter.receive(req)
        ack_saves(meter)
        meter.data_to_send()
    return meter


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    emh = draw(st.booleans())
    original = draw(st.sampled_from(recorded(emh)))
    msg = bytearray(original)
    kind = draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(msg) - 1))
            msg[pos] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        msg = msg[: draw(st.integers(0, len(msg) - 1))]
    else:
        pos = draw(st.integers(0, len(msg) - 1))  # inside: appending would leave a valid message
        msg[pos:pos] = draw(st.binary(min_size=1, max_size=40))
    # A splice that inserts the very byte it displaces, or flips that cancel out, leave the authentic message
    # in front (the meter rightly accepts it): those are not mutations.
    assume(bytes(msg[: len(original)]) != original)
    return bytes(msg)


def only_notices(out: bytes) -> bool:
    """True when ``out`` is nothing but rejection notices (25 bytes each)."""
    p = Profile2015()
    return len(out) % 25 == 0 and all(p.is_rejection_notice(out[i : i + 25]) for i in range(0, len(out), 25))


inputs = st.one_of(st.binary(max_size=300), mutated())


def _fuzz_once(steps: int, chunks: list[bytes]) -> None:
    for emh in (False, True):
        meter = mid_session_meter(emh, steps)
        before = meter.state
        for c in chunks:
            meter.receive(c)
        meter.connection_reset()
        evs = meter.events()
        assert not any(isinstance(e, SaveState) for e in evs)
        assert meter.data_to_send() == b""
        assert meter.state == before
        drops = [e for e in evs if isinstance(e, MessageDropped)]
        assert sum(meter.stats.values()) == len(drops)


@settings(max_examples=150, deadline=None)
@given(steps=st.integers(0, 4), chunks=st.lists(inputs, min_size=1, max_size=4))
def test_meter_receive_fuzz(steps: int, chunks: list[bytes]) -> None:
    _fuzz_once(steps, chunks)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(steps=st.integers(0, 4), chunks=st.lists(inputs, min_size=1, max_size=8))
def test_meter_receive_fuzz_long(steps: int, chunks: list[bytes]) -> None:
    _fuzz_once(steps, chunks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(inputs, min_size=1, max_size=3))
def test_fuzz_never_touches_state_file(chunks: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SymStore(Path(d) / "s.json")
        store.set_master_key(MK)
        link = PersistentSymMeter(store, METER_ID, own_certificate=own_cert())
        assert link.handle(recorded(False)[0])  # SYNC accepted (state written once)
        before = store.path.read_bytes()
        for c in chunks:
            assert only_notices(link.handle(c))  # garbage never gets a valid message back
        link.connection_reset()
        assert store.path.read_bytes() == before


def _der_ish() -> st.SearchStrategy[bytes]:
    """Random bytes, or real DER with random corruption (to get past the first parsing layers)."""
    real = meter_creds().certificate + meter_creds().private_key  # type: ignore[operator]

    @st.composite
    def corrupt(draw: st.DrawFn) -> bytes:
        b = bytearray(real[: draw(st.integers(0, len(real)))])
        for _ in range(draw(st.integers(0, 3))):
            if b:
                b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)

    return st.one_of(st.binary(max_size=200), corrupt())


@settings(max_examples=150, deadline=None)
@given(cmd=st.sampled_from([0x02, 0x03, 0x04, 0x05, 0x06, 0x7F]), payload=_der_ish(), emh=st.booleans())
def test_authenticated_random_payloads(cmd: int, payload: bytes, emh: bool) -> None:
    """Valid MAC, fresh counter, random payload: handled errors only, never a persisted pairing."""
    prof = Profile2015(emh_bug=emh)
    steps = {0x02: 1, 0x03: 2, 0x04: 3, 0x05: 4}.get(cmd, 2)
    meter = mid_session_meter(emh, steps)
    before = meter.state
    counter = before.counter + 1
    meter.receive(prof.seal(MK, METER_ID, Direction.GATEWAY_TO_METER, cmd, counter, payload))
    evs = ack_saves(meter)
    out = meter.data_to_send()
    if out and not prof.is_rejection_notice(out):
        assert meter.state.counter == counter  # accepted as a legal step (e.g. empty payload)
    else:
        assert meter.state == before
        assert any(isinstance(e, MessageDropped) for e in evs)
    if meter.state.paired:  # only a legal COMMIT can pair, and it carries no payload
        # (with EMH zero padding, zero bytes are indistinguishable from padding)
        assert cmd == 0x05 and (payload == b"" or (emh and not any(payload)))


@pytest.mark.slow
@settings(max_examples=5000, deadline=None)
@given(cmd=st.sampled_from([0x02, 0x03, 0x04, 0x05, 0x06, 0x7F]), payload=_der_ish(), emh=st.booleans())
def test_authenticated_random_payloads_long(cmd: int, payload: bytes, emh: bool) -> None:
    test_authenticated_random_payloads.hypothesis.inner_test(cmd, payload, emh)  # type: ignore[attr-defined]
