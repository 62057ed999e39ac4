"""M-Bus link layer: the FT 1.2 frame splitter and the sans-I/O master against simulated slaves in virtual time
(SND_NKE, REQ_UD2 with FCB toggling, retries on broken or missing answers, secondary addressing,
multi-telegram readouts)."""

from __future__ import annotations

import mbus_telegrams as T
from hypothesis import given, settings
from hypothesis import strategies as st

from legacy_drivers.mbus.frame import Ack, FrameError, FrameReceiver, LongFrame, ShortFrame, checksum, wire_time
from legacy_drivers.mbus.link import (
    CycleFailed,
    Dropped,
    LinkTiming,
    MbusMaster,
    Primary,
    Readout,
    Secondary,
    Transmit,
)
from legacy_drivers.mbus.slave_sim import MbusSlaveSim, SimBus, telegram_of

GAS = telegram_of(T.GAS_ITRON_CYBLE)
HEAT_1 = telegram_of(T.HEAT_ELSTER_F2)  # ends with DIF 1F: more records follow
HEAT_2 = telegram_of(T.HEAT_OMS)


# ---- frames -------------------------------------------------------------------------------------------------


def test_frame_encoding() -> None:
    assert ShortFrame(0x40, 0x04).encode() == bytes.fromhex("1040044416")  # SND_NKE to 4
    assert ShortFrame(0x7B, 0xFD).encode() == bytes.fromhex("107BFD7816")  # REQ_UD2 FCB=1 to 253
    frame = LongFrame(0x53, 0xFD, 0x52, bytes.fromhex("87030210FFFFFFFF")).encode()
    assert frame[:4] == bytes.fromhex("680B0B68") and frame[-1] == 0x16 and frame[-2] == checksum(frame[4:-2])
    assert wire_time(11, 2400) == 11 * 11 / 2400


def test_receiver_splits_and_resynchronises() -> None:
    rx = FrameReceiver()
    gas = bytes.fromhex(T.GAS_ITRON_CYBLE)
    bad = bytearray(gas)
    bad[-2] ^= 0xFF
    stream = b"\x00\x33" + bytes([0xE5]) + bytes(bad) + gas
    items = []
    for i in range(0, len(stream), 7):  # chunking does not matter
        items += rx.feed(stream[i:i + 7])
    kinds = [type(x).__name__ for x in items]
    assert kinds[0] == "Ack" and isinstance(items[1], FrameError) and items[1].reason == "bad_checksum"
    assert isinstance(items[-1], LongFrame) and items[-1].data == gas[7:-2]
    assert rx.noise >= 2


def test_receiver_errors_named() -> None:
    assert FrameReceiver().feed(bytes.fromhex("6805066808"))[0].reason == "bad_length"
    assert FrameReceiver().feed(bytes.fromhex("1040044417"))[0].reason == "bad_stop"
    rx = FrameReceiver()
    assert rx.feed(bytes.fromhex(T.GAS_ITRON_CYBLE)[:20]) == [] and rx.pending
    assert rx.flush().reason == "truncated" and not rx.pending


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_receiver_never_passes_a_frame_it_did_not_check(noise: bytes) -> None:
    for item in FrameReceiver().feed(noise):
        if isinstance(item, (LongFrame, ShortFrame)):
            assert item.encode() in noise


# ---- the master in virtual time -----------------------------------------------------------------------------


class Wire:
    """Runs one readout of ``master`` against ``bus`` with line times at ``baudrate`` (virtual clock)."""

    def __init__(self, bus: SimBus, baudrate: int = 2400) -> None:
        self.bus, self.baudrate = bus, baudrate
        self.now = 0.0
        self.sent: list[bytes] = []
        self.dropped: list[str] = []

    def run(self, master: MbusMaster) -> Readout | CycleFailed:
        events = master.start(self.now)
        pending: list[tuple[float, bytes]] = []
        for _ in range(1000):
            for ev in events:
                if isinstance(ev, Transmit):
                    self.now += ev.delay + wire_time(len(ev.data), self.baudrate)
                    self.sent.append(ev.data)
                    pending += [(self.now + r, a) for r, a in self.bus.receive(ev.data)]
                elif isinstance(ev, Dropped):
                    self.dropped.append(ev.reason)
                else:
                    return ev
            if pending:
                start, data = pending.pop(0)
                self.now = max(self.now, start) + wire_time(len(data), self.baudrate)
                events = [*master.receive(data, self.now), *master.tick(self.now)]
            else:
                deadline = master.deadline()
                assert deadline is not None
                self.now = max(self.now, deadline)
                events = master.tick(self.now)
        raise AssertionError("the master never finished")


def test_primary_readout_snd_nke_then_req_ud2_with_fcb_set() -> None:
    slave = MbusSlaveSim(4, [GAS])
    wire = Wire(SimBus([slave]))
    result = wire.run(MbusMaster(Primary(4)))
    assert isinstance(result, Readout) and result.telegrams[0].header.ident == "10020387"
    assert wire.sent == [bytes.fromhex("1040044416"), bytes.fromhex("107B047F16")]  # SND_NKE, REQ_UD2 FCB=1
    assert result.attempts == 2


def test_multi_telegram_toggles_fcb_and_collects_all() -> None:
    slave = MbusSlaveSim(1, [HEAT_1, HEAT_2])
    wire = Wire(SimBus([slave]))
    result = wire.run(MbusMaster(Primary(1)))
    assert isinstance(result, Readout) and len(result.telegrams) == 2
    assert [f[1] for f in wire.sent] == [0x40, 0x7B, 0x5B]  # SND_NKE, REQ_UD2 FCB=1, then FCB=0
    assert result.telegrams[0].more_follows and not result.telegrams[1].more_follows
    assert result.telegrams[1].header.ident == "12345678"


def test_without_snd_nke_the_fcb_keeps_toggling_across_readouts() -> None:
    slave = MbusSlaveSim(4, [GAS])
    wire = Wire(SimBus([slave]))
    master = MbusMaster(Primary(4), snd_nke=False)
    wire.run(master)
    wire.run(master)
    assert [f[1] for f in wire.sent] == [0x7B, 0x5B]


def test_broken_answers_are_dropped_and_repeated_with_the_same_fcb() -> None:
    slave = MbusSlaveSim(4, [GAS], faults=["bad_checksum", "truncated"])
    wire = Wire(SimBus([slave]))
    result = wire.run(MbusMaster(Primary(4)))
    assert isinstance(result, Readout)
    assert wire.dropped == ["bad_checksum", "truncated"]
    assert [f[1] for f in wire.sent] == [0x40, 0x7B, 0x7B, 0x7B]  # the repeats keep FCB = 1
    assert slave.requests == 3


def test_no_answer_gives_up_after_the_retries_with_the_reason() -> None:
    slave = MbusSlaveSim(4, [GAS], faults=["silent"] * 3)
    wire = Wire(SimBus([slave]))
    master = MbusMaster(Primary(4), LinkTiming(retries=2))
    result = wire.run(master)
    assert isinstance(result, CycleFailed) and result.reason == "no_answer" and "3 attempts" in result.detail
    assert len(wire.sent) == 4  # SND_NKE + 3 REQ_UD2
    # time-out per EN 13757-2: 330 bit times + 50 ms (+ latency) after each request
    assert wire.now >= 3 * (330 / 2400 + 0.05)


def test_wrong_length_is_a_counted_error_never_a_value() -> None:
    slave = MbusSlaveSim(4, [GAS], faults=["wrong_length"] * 3)
    wire = Wire(SimBus([slave]))
    result = wire.run(MbusMaster(Primary(4)))
    assert isinstance(result, CycleFailed)
    assert result.reason in ("truncated", "bad_checksum", "bad_stop", "bad_length")
    assert wire.dropped and all(d in ("truncated", "bad_checksum", "bad_stop", "bad_length") for d in wire.dropped)


def test_an_answer_from_another_address_is_refused() -> None:
    other = MbusSlaveSim(5, [GAS])
    other.address = 5
    bus = SimBus([other])
    wire = Wire(bus)
    result = wire.run(MbusMaster(Primary(4)))
    assert isinstance(result, CycleFailed) and result.reason == "no_answer"


def test_secondary_addressing_selects_one_of_several_slaves() -> None:
    gas = MbusSlaveSim(0, [GAS], ident="10020387", manufacturer="ACW", version=0x14, medium=0x03)
    heat = MbusSlaveSim(0, [HEAT_2], ident="12345678", manufacturer="HYD", medium=0x04)
    wire = Wire(SimBus([gas, heat]))
    result = wire.run(MbusMaster(Secondary("1002FFFF", "ACW")))
    assert isinstance(result, Readout) and result.telegrams[0].header.manufacturer == "ACW"
    select = wire.sent[0]
    assert select[4:7] == bytes.fromhex("53FD52")
    assert select[7:15] == bytes.fromhex("FFFF02107704FFFF")  # ACW is 77 04, as in its telegram's header
    assert gas.selected and not heat.selected
    result = wire.run(MbusMaster(Secondary("12345678")))
    assert isinstance(result, Readout) and result.telegrams[0].header.ident == "12345678"
    assert heat.selected and not gas.selected  # the new selection deselected the other


def test_secondary_address_nobody_has_is_no_answer() -> None:
    wire = Wire(SimBus([MbusSlaveSim(0, [GAS], ident="10020387", manufacturer="ACW")]))
    result = wire.run(MbusMaster(Secondary("99999999")))
    assert isinstance(result, CycleFailed) and result.reason == "no_answer"


def test_application_error_fails_the_readout() -> None:
    slave = MbusSlaveSim(4, [(0x70, b"\x01")])
    wire = Wire(SimBus([slave]))
    result = wire.run(MbusMaster(Primary(4)))
    assert isinstance(result, CycleFailed) and result.reason == "application_error"


def test_stray_bytes_while_idle_are_counted() -> None:
    master = MbusMaster(Primary(4))
    assert master.receive(b"\xe5\xe5", 0.0) == [] and master.unsolicited == 2
    assert isinstance(Ack(), Ack)
