"""Gateway side of SYM (LMN-STACK.md §5): every bad meter answer ends the pairing with a named reason."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sym_support import METER_ID, MK, OTHER_MK, gw_cert, own_cert

from bab.sym import AlgorithmList, Direction, MeterPaired, PairingFailed, Profile2015, SymGateway, SymUsageError

P = Profile2015()


def answer(cmd: int, counter: int, data: bytes = b"", mk: bytes = MK) -> bytes:
    return P.seal(mk, METER_ID, Direction.METER_TO_GATEWAY, cmd, counter, data)


def started() -> SymGateway:
    gw = SymGateway(MK, METER_ID, gw_cert())
    gw.start()
    req = P.open(MK, METER_ID, Direction.GATEWAY_TO_METER, gw.data_to_send())
    assert (req.command, req.counter, req.data) == (0x01, 0xFFFFFFFF, b"")  # the reference's STARTCOUNT
    return gw


def test_happy_path_against_a_scripted_meter() -> None:
    gw = started()
    gw.receive(answer(0x81, 40))
    script = {
        0x02: P.encode_algorithms(AlgorithmList((1,), (2,))),
        0x03: own_cert(),
        0x04: b"",
        0x05: (2048).to_bytes(2, "big"),
    }
    expected_counter = 41
    for cmd, data in script.items():
        req = P.open(MK, METER_ID, Direction.GATEWAY_TO_METER, gw.data_to_send())
        assert (req.command, req.counter) == (cmd, expected_counter)
        if cmd == 0x04:
            assert req.data == P.pad(gw_cert())
        gw.receive(answer(cmd | 0x80, req.counter, data))
        expected_counter += 1
    (ev,) = gw.events()
    assert isinstance(ev, MeterPaired) and ev.meter_cert_der == own_cert() and ev.max_fragment_length == 2048
    assert gw.done and gw.data_to_send() == b""


def test_bad_answers() -> None:
    cases = {
        "bad_mac": answer(0x81, 5, mk=OTHER_MK),
        "wrong_answer": answer(0x82, 5),
        "bad_length": b"\x81\x00\x00\x00\x03",
    }
    for reason, raw in cases.items():
        gw = started()
        gw.receive(raw)
        assert gw.events() == [PairingFailed(reason)], reason
        assert gw.done
        gw.receive(answer(0x81, 5))  # ignored after the end
        assert gw.events() == [] and gw.data_to_send() == b""


def test_answer_payloads_are_ignored_like_the_reference() -> None:
    """The reference checks only the MAC of an answer (LMN-STACK.md 13): a meter whose SYNC answer carries
    data, whose algorithm list and commit answer are not in BAB's format, and whose SYNC counter is any
    value, still pairs; the next request always carries the last answer's counter + 1."""
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=None)
    gw.start()
    gw.data_to_send()
    script = [(0x81, 1, b"whatever"), (0x82, 2, b"\x07"), (0x83, 3, own_cert()), (0x84, 4, b"ok"),
              (0x85, 5, b"\xff")]
    for code, counter, data in script:
        gw.receive(answer(code, counter, data))
        if code != 0x85:
            req = P.open(MK, METER_ID, Direction.GATEWAY_TO_METER, gw.data_to_send())
            assert (req.command, req.counter) == ((code & 0x0F) + 1, counter + 1)
    (ev,) = gw.events()
    assert isinstance(ev, MeterPaired) and ev.max_fragment_length is None
    assert ev.algorithms == AlgorithmList((), ())


def test_counter_echo_and_route_b_certificate_checked() -> None:
    gw = started()
    gw.receive(answer(0x81, 7))
    gw.data_to_send()
    gw.receive(answer(0x82, 9, P.encode_algorithms(AlgorithmList())))
    assert gw.events() == [PairingFailed("counter_mismatch")]
    gw = started()
    gw.receive(answer(0x81, 7))
    gw.data_to_send()
    gw.receive(answer(0x82, 8, P.encode_algorithms(AlgorithmList())))
    gw.data_to_send()
    gw.receive(answer(0x83, 9, b"\x30\x03\x02\x01\x01"))
    assert gw.events() == [PairingFailed("bad_certificate")]


def test_timeout_unexpected_and_usage() -> None:
    gw = SymGateway(MK, METER_ID, gw_cert())
    gw.timeout()  # nothing outstanding: no effect
    assert gw.events() == []
    gw.receive(answer(0x81, 1))
    assert gw.events() == [PairingFailed("unexpected_message")]
    gw = started()
    with pytest.raises(SymUsageError):
        gw.start()
    gw.timeout()
    assert gw.events() == [PairingFailed("timeout")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=4))
def test_gateway_receive_fuzz(chunks: list[bytes]) -> None:
    gw = started()
    for c in chunks:
        gw.receive(c)
    for ev in gw.events():
        assert isinstance(ev, PairingFailed)
    assert gw.data_to_send() == b""
