"""D0 (IEC 62056-21) protocol core: dialogues with simulated meters of several families on a virtual wire.

The telegrams are written after the public documentation examples of each family (manufacturer manuals,
the IEC 62056-21 example formats); serial numbers and register values are made up.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bab.obis import Obis
from bab.reading import ReadingStatus
from bab.units import Unit
from legacy_drivers.d0 import (
    ChangeBaud,
    CycleFailed,
    D0Client,
    D0Config,
    D0Mode,
    Dropped,
    Identification,
    Identified,
    Readout,
    Transmit,
    bcc,
    parse_readout,
    wire_time,
)
from legacy_drivers.d0.meter_sim import D0MeterSim, data_message

# ---- meter families ------------------------------------------------------------------------------------

EMH_LZQJ = D0MeterSim(
    r"/EMH5\@01LZQJC0014F",
    "F.F(00000000)\r\n0.0.0(12345678)\r\n0.9.1(0123456)\r\n0.9.2(1231121)\r\n"
    "1.8.0(012345.678*kWh)\r\n1.8.1(010000.000*kWh)\r\n1.8.2(002345.678*kWh)\r\n2.8.0(000123.456*kWh)\r\n"
    "1.2.1(0010.09*kW)\r\n1.6.1(0002.134*kW)(2311201215)\r\n!\r\n",
)
LG_ZMD = D0MeterSim(
    r"/LGZ4\2ZMD3104100.B21",
    "F.F(00)\r\n0.0.0(35456789)\r\nC.1.0(35456789)\r\n1.8.0(006913.4*kWh)\r\n1.8.1(001234.5*kWh)\r\n"
    "1.8.2(005678.9*kWh)\r\n2.8.0(000000.0*kWh)\r\n1.6.1(01.234*kW)(23-11-20 12:15)\r\n"
    "1.8.1*01(001100.0*kWh)\r\n3.8.1(000456.7*kvarh)\r\n0.9.1(12:34:56)\r\n0.9.2(23-11-21)\r\nC.7.0(0012)\r\n"
    "32.7(230.1*V)\r\n31.7(001.23*A)\r\n!\r\n",
)
ISKRA_MT174 = D0MeterSim(
    "/ISk5MT174-0001",
    "0.0.0(71234567)\r\n0.9.1(0123456)\r\n0.9.2(1231121)\r\n1.8.0(0035218.134*kWh)\r\n"
    "1.8.1(0011404.409*kWh)\r\n1.8.2(0023813.725*kWh)\r\n2.8.0(0015608.962*kWh)\r\nF.F(0000000)\r\n!\r\n",
    reaction=0.02,
)
ITRON_ACE3000 = D0MeterSim(  # announces 300 baud in mode C: ACK with Z = '0', no change of rate
    r"/ACE0\3k260V01.18",
    "C.1(1234567890123)\r\nC.5.0(0400)\r\n1.8.0(000123.4*kWh)\r\n1.8.1(000100.0*kWh)\r\n"
    "1.8.2(000023.4*kWh)\r\nF.F(00)\r\n!\r\n",
)
ELSTER_AS1440 = D0MeterSim(
    r"/ELS6\@V9.30",
    "F.F(00000000)\r\n0.0.0(12345678)\r\n1-0:1.8.0(0012345.67*kWh)\r\n1-0:2.8.0(0000012.34*kWh)\r\n"
    "1-0:1.8.0*01(0012000.00*kWh)\r\n1-0:1.6.0(000.456*kW)(2311201215)\r\n1-0:32.7.0(231.2*V)\r\n"
    "1-0:52.7.0(230.8*V)\r\n1-0:72.7.0(229.9*V)\r\n1-0:14.7.0(49.98*Hz)\r\n!\r\n",
    password="00000000",
    registers={"1.8.0": "(0012345.67*kWh)", "2.8.0": "(0000012.34*kWh)"},
)
EASYMETER_Q3D = D0MeterSim(  # mode D push, 9600 7E1, no STX/ETX framing
    "/ESY5Q3DA1024 V3.04",
    "1-0:0.0.0*255(1ESY1160500937)\r\n1-0:1.8.0*255(00464.2791770*kWh)\r\n1-0:21.7.255*255(000123.45*W)\r\n"
    "1-0:41.7.255*255(000045.67*W)\r\n1-0:61.7.255*255(000012.34*W)\r\n1-0:1.7.255*255(000181.46*W)\r\n"
    "1-0:96.5.5*255(82)\r\n0-0:96.1.255*255(1ESY1160500937)\r\n!\r\n",
)


def fresh(meter: D0MeterSim, **changes: object) -> D0MeterSim:
    import dataclasses

    return dataclasses.replace(meter, _buf=bytearray(), _state="idle", baudrate=300, signons=0, **changes)


def garble(data: bytes) -> bytes:
    """What a receiver at the wrong rate makes of ``data``: printable junk, no control characters."""
    return bytes(0x60 | (b & 0x1F) for b in data)


def run_dialogue(client: D0Client, meter: D0MeterSim, until: float = 60.0) -> list[object]:
    """Run one pull cycle on a virtual wire with exact timing; returns all client events."""
    now = 0.0
    pending: list[tuple[float, bytes, int]] = []  # meter -> client: (arrival of the last byte, data, rate)
    events: list[object] = []
    batch = client.start(now)
    while True:
        for ev in batch:
            events.append(ev)
            if isinstance(ev, Transmit):
                t = now + wire_time(len(ev.data), client.baudrate)
                heard = ev.data if meter.baudrate == client.baudrate else garble(ev.data)
                for r in meter.receive(heard):
                    t += r.delay
                    for i in range(0, len(r.data), 16):  # bytes trickle in as they come off the wire
                        part = r.data[i:i + 16]
                        t += wire_time(len(part), r.baudrate)
                        pending.append((t, part, r.baudrate))
        if not client.busy:
            return events
        times = [x for x in (client.deadline(), pending[0][0] if pending else None) if x is not None]
        assert times, "client waits forever"
        now = min(times)
        assert now < until, "dialogue did not end"
        if pending and pending[0][0] <= now:
            _, data, rate = pending.pop(0)
            data = data if rate == client.baudrate else garble(data)
            batch = client.receive(data, now) + client.tick(now)
        else:
            batch = client.tick(now)


def readout_of(events: list[object]) -> Readout:
    found = [e for e in events if isinstance(e, Readout)]
    assert len(found) == 1, events
    return found[0]


# ---- basics --------------------------------------------------------------------------------------------


def test_bcc_is_xor_after_stx_through_etx() -> None:
    msg = data_message("1.8.0(1*kWh)\r\n!\r\n")
    assert msg[0] == 2 and msg[-2] == 3
    x = 0
    for b in msg[1:-1]:
        x ^= b
    assert msg[-1] == x == bcc(msg[1:-1])


def test_identification_parse() -> None:
    ident = Identification.parse(rb"/ISk5MT174-0001")
    assert (ident.manufacturer, ident.baud_char, ident.ident) == ("ISk", "5", "MT174-0001")
    assert ident.fast_reaction
    assert not Identification.parse(rb"/EMH5\@01LZQJC0014F").fast_reaction
    for bad in (b"/?!", b"EMH5x", b"/E5", b"/EM\x015abc"):
        with pytest.raises(ValueError):
            Identification.parse(bad)


def test_sign_on_with_address_and_parity_bits() -> None:
    client = D0Client(D0Config(address="12345678"))
    out = client.start(0.0)
    assert out == [Transmit(b"/?12345678!\r\n")]
    # the identification arrives with the even-parity bit still set (port read as 8N1): bit 7 is stripped
    ident = b"/EMH5\\@01LZQJC0014F\r\n"
    with_parity = bytes(b | (0x80 if bin(b).count("1") % 2 else 0) for b in ident)
    got = client.receive(with_parity, 0.5)
    assert got == [Identified(Identification("EMH", "5", r"\@01LZQJC0014F"))]


# ---- families ------------------------------------------------------------------------------------------


def test_emh_mode_c_9600() -> None:
    client = D0Client()
    events = run_dialogue(client, fresh(EMH_LZQJ))
    acks = [e for e in events if isinstance(e, Transmit) and e.data[0] == 0x06]
    assert acks == [Transmit(b"\x06050\r\n")]
    assert ChangeBaud(9600) in events
    ro = readout_of(events)
    assert ro.baudrate == 9600 and ro.checked
    res = parse_readout(ro.data)
    by = {str(r.obis): r for r in res.readings}
    r = by["1-0:1.8.0*255"]
    assert (r.value, r.scaler, r.unit, r.status) == (12345678, 0, Unit.WH, ReadingStatus.OK)
    assert by["1-0:1.2.1*255"].decimal == Decimal("10090") and by["1-0:1.2.1*255"].unit == Unit.W
    assert by["1-0:1.6.1*255"].value == 2134 and by["1-0:1.6.1*255"].scaler == 0
    assert "1-0:0.9.1*255" not in by and "1-0:0.9.2*255" not in by  # clock registers are not quantities
    assert by["0-0:97.97.0*255"].value == 0
    assert not res.drops


def test_lg_zmd_mode_c_4800_reduced_ids() -> None:
    client = D0Client()
    events = run_dialogue(client, fresh(LG_ZMD))
    assert Transmit(b"\x06040\r\n") in events and ChangeBaud(4800) in events
    res = parse_readout(readout_of(events).data)
    by = {str(r.obis): r for r in res.readings}
    assert by["1-0:1.8.0*255"].decimal == Decimal("6913400")
    assert by["1-0:1.8.1*1"].decimal == Decimal("1100000")  # historical value (billing period 01)
    assert by["1-0:3.8.1*255"].unit == Unit.VARH and by["1-0:3.8.1*255"].value == 4567
    assert by["1-0:32.7.0*255"].decimal == Decimal("230.1") and by["1-0:32.7.0*255"].unit == Unit.V
    assert by["1-0:31.7.0*255"].unit == Unit.A
    assert by["0-0:96.1.0*255"].value == 35456789  # C.1.0 -> 0-0:96.1.0
    assert by["0-0:96.7.0*255"].value == 12 and by["0-0:96.7.0*255"].unit == Unit.COUNT


def test_iskra_fast_reaction_20ms() -> None:
    client = D0Client()
    events = run_dialogue(client, fresh(ISKRA_MT174))
    ro = readout_of(events)
    assert ro.baudrate == 9600
    # identification at t1, ACK at t1 + 20 ms: check against a slow meter the ACK is scheduled 20 ms later
    c2 = D0Client()
    c2.start(0.0)
    c2.receive(b"/ISk5MT174-0001\r\n", 1.0)
    assert c2.deadline() == pytest.approx(1.02)
    c3 = D0Client(D0Config(honour_fast_reaction=False))
    c3.start(0.0)
    c3.receive(b"/ISk5MT174-0001\r\n", 1.0)
    assert c3.deadline() == pytest.approx(1.2)
    by = {str(r.obis): r.decimal for r in parse_readout(ro.data).readings}
    assert by["1-0:2.8.0*255"] == Decimal("15608962")


def test_itron_mode_c_at_300_no_baud_change() -> None:
    client = D0Client()
    events = run_dialogue(client, fresh(ITRON_ACE3000))
    assert Transmit(b"\x06000\r\n") in events
    assert not [e for e in events if isinstance(e, ChangeBaud)]
    by = {str(r.obis): r for r in parse_readout(readout_of(events).data).readings}
    assert by["1-0:1.8.0*255"].decimal == Decimal("123400")
    assert by["0-0:96.1.0*255"].value == 1234567890123


def test_elster_baud_cap_and_full_obis() -> None:
    client = D0Client(D0Config(max_baudrate=9600))
    events = run_dialogue(client, fresh(ELSTER_AS1440, password=None))
    assert Transmit(b"\x06050\r\n") in events  # meter offers 19200 ('6'); capped to 9600
    res = parse_readout(readout_of(events).data)
    by = {str(r.obis): r for r in res.readings}
    assert by["1-0:14.7.0*255"].decimal == Decimal("49.98") and by["1-0:14.7.0*255"].unit == Unit.HZ
    assert by["1-0:1.8.0*1"].decimal == Decimal("12000000")
    assert by["1-0:1.8.0*255"].value == 1234567 and by["1-0:1.8.0*255"].scaler == 1


def test_elster_password_and_r1_reads() -> None:
    client = D0Client(D0Config(password="00000000", password_registers=("1.8.0", "2.8.0", "9.9.9")))
    events = run_dialogue(client, fresh(ELSTER_AS1440))
    sent = [e.data for e in events if isinstance(e, Transmit)]
    assert sent[1] == b"\x06061\r\n"  # programming mode
    assert sent[2].startswith(b"\x01P1\x02(00000000)\x03")
    assert sent[-1] == b"\x01B0\x03" + bytes([bcc(b"B0\x03")])
    ro = readout_of(events)
    res = parse_readout(ro.data)
    assert [str(r.obis) for r in res.readings] == ["1-0:1.8.0*255", "1-0:2.8.0*255"]
    assert client.stats["register_errors"] == 1  # 9.9.9 answered "(ERROR)"


def test_password_rejected() -> None:
    client = D0Client(D0Config(password="wrong"))
    events = run_dialogue(client, fresh(ELSTER_AS1440))
    assert [e for e in events if isinstance(e, CycleFailed)] == [
        CycleFailed("password_rejected", "the meter rejected the password")]
    assert isinstance(events[-2], Transmit) and events[-2].data.startswith(b"\x01B0")


def test_easymeter_push_mode_d() -> None:
    meter = fresh(EASYMETER_Q3D)
    client = D0Client(D0Config(mode=D0Mode.D, initial_baudrate=9600))
    assert client.start(0.0) == []
    out: list[object] = []
    stream = b"\x00\x7f garbage" + meter.push() + meter.push()[:30] + meter.push()
    for i in range(0, len(stream), 7):  # arrives in small pieces
        out += client.receive(stream[i:i + 7], i / 1000)
    readouts = [e for e in out if isinstance(e, Readout)]
    assert len(readouts) == 2 and not readouts[0].checked
    assert [e for e in out if isinstance(e, Dropped)] == [Dropped("garbage", "push telegram without its end")]
    res = parse_readout(readouts[0].data)
    by = {str(r.obis): r for r in res.readings}
    assert by["1-0:1.8.0*255"].value == 4642791770 and by["1-0:1.8.0*255"].scaler == -4
    assert by["1-0:1.7.255*255"].decimal == Decimal("181.46")
    assert "1-0:0.0.0*255" not in by  # serial number text


def test_push_with_stx_framing_and_bcc_error() -> None:
    client = D0Client(D0Config(mode=D0Mode.D, initial_baudrate=2400))
    good = b"/ABC3xyz\r\n" + data_message("1.8.0(1.5*kWh)\r\n!\r\n")
    bad = b"/ABC3xyz\r\n" + data_message("1.8.0(1.5*kWh)\r\n!\r\n", corrupt_bcc=True)
    out = client.receive(bad + good, 0.0)
    assert [type(e) for e in out] == [Identified, Dropped, Identified, Readout]
    assert out[3].checked and client.stats["bcc_errors"] == 1


# ---- faults --------------------------------------------------------------------------------------------


def test_silent_meter_times_out() -> None:
    client = D0Client(D0Config(response_timeout=1.5))
    events = run_dialogue(client, fresh(EMH_LZQJ, silent=True))
    assert events[-1] == CycleFailed("timeouts", "no answer from the meter (wait identification)")
    assert client.stats["timeouts"] == 1


def test_meter_answering_at_wrong_baud_then_ack_override() -> None:
    liar = fresh(EMH_LZQJ, works_up_to=4800)  # announces 9600, really switches to 4800
    client = D0Client()
    events = run_dialogue(client, liar)
    assert isinstance(events[-1], CycleFailed) and events[-1].reason == "timeouts"
    assert client.stats["garbage"] > 100  # the data message arrived as junk
    client = D0Client(D0Config(ack_baud_char="4"))
    events = run_dialogue(client, fresh(EMH_LZQJ, works_up_to=4800))
    assert readout_of(events).baudrate == 4800


def test_ident_override_for_mode_b_meter() -> None:
    # a mode C meter that announces 'E' (mode B letter): treated as '5' (mode C, ACK) by the override
    meter = fresh(EMH_LZQJ, identification=r"/EMH5\@01LZQJC0014F")
    client = D0Client(D0Config(ident_baud_char="5"))
    assert readout_of(run_dialogue(client, meter)).baudrate == 9600
    # a real mode B meter (letter 'E' = 9600): switch without an ACK
    meter_b = fresh(EMH_LZQJ, identification="/ABCEmodeB")
    client = D0Client()
    events = run_dialogue(client, meter_b)
    assert not [e for e in events if isinstance(e, Transmit) and e.data[0] == 0x06]
    assert readout_of(events).baudrate == 9600


def test_mode_a_stays_at_300() -> None:
    client = D0Client(D0Config(mode=D0Mode.A))
    meter = fresh(EMH_LZQJ, identification="/XYZKmodeA")
    events = run_dialogue(client, meter)
    assert readout_of(events).baudrate == 300
    assert not [e for e in events if isinstance(e, ChangeBaud)]


def test_bcc_error_fails_cycle() -> None:
    client = D0Client()
    events = run_dialogue(client, fresh(EMH_LZQJ, corrupt_bcc=True))
    assert events[-1] == CycleFailed("bcc_errors", "data message with a wrong block check character")


def test_endless_data_is_bounded() -> None:
    client = D0Client(D0Config(max_message_bytes=4096))
    meter = fresh(EMH_LZQJ, endless=200_000)
    events = run_dialogue(client, meter)
    assert events[-1].reason == "overruns"  # type: ignore[attr-defined]
    assert client.stats["overruns"] == 1
    assert len(client._buf) == 0


def test_echo_and_noise_are_skipped() -> None:
    client = D0Client()
    client.start(0.0)
    out = client.receive(b"/?!\r\n\x00\xff~~/EMH5\\@01LZQJC0014F\r\n", 0.3)
    assert out == [Identified(Identification("EMH", "5", r"\@01LZQJC0014F"))]
    assert client.stats["garbage"] == 4


def test_next_cycle_returns_to_300() -> None:
    client = D0Client()
    run_dialogue(client, fresh(EMH_LZQJ))
    assert client.baudrate == 9600
    assert client.start(100.0)[0] == ChangeBaud(300)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=30), st.sampled_from([D0Mode.C, D0Mode.D]))
def test_random_bytes_never_crash_or_grow(chunks: list[bytes], mode: D0Mode) -> None:
    client = D0Client(D0Config(mode=mode, max_message_bytes=512))
    client.start(0.0)
    t = 0.0
    for c in chunks:
        t += 0.01
        client.receive(c, t)
        client.tick(t)
        assert len(client._buf) <= 512


def test_obis_mapping_rules() -> None:
    from legacy_drivers.d0 import obis_of

    assert obis_of("1.8.0") == Obis(1, 0, 1, 8, 0, 255)
    assert obis_of("1.8.0*02") == Obis(1, 0, 1, 8, 0, 2)
    assert obis_of("1.8.0&03") == Obis(1, 0, 1, 8, 0, 3)
    assert obis_of("F.F") == Obis(0, 0, 97, 97, 0)
    assert obis_of("C.1.0") == Obis(0, 0, 96, 1, 0)
    assert obis_of("0-0:C.1.0*255") == Obis(0, 0, 96, 1, 0)
    assert obis_of("1-1:32.7.0") == Obis(1, 1, 32, 7, 0)
    for bad in ("", "1.8", "X.1.0", "1.8.0.1.2", "abc(", "1-0:1.8.999"):
        if bad == "1.8":
            assert obis_of(bad) == Obis(1, 0, 1, 8, 0)
            continue
        with pytest.raises(ValueError):
            obis_of(bad)


def test_error_register_sets_meter_error_and_drops_are_counted() -> None:
    text = ("F.F(00000010)\r\n1.8.0(000100.0*kWh)\r\n2.8.0(5*furlong)\r\nZZ.1(7)\r\n(orphan)\r\n"
            "1.8.0(000999.0*kWh)\r\n1.8.1(0001.0*KWH)1.8.2(0002.0*kwh)\r\n!\r\n")
    res = parse_readout(text, time=123.0)
    assert res.error_register == 0x10 and res.meter_error
    assert all(r.status & ReadingStatus.METER_ERROR for r in res.readings)
    by = {str(r.obis): r for r in res.readings}
    assert by["1-0:1.8.0*255"].decimal == Decimal("100000")  # the first of two duplicates is kept
    assert by["1-0:1.8.2*255"].decimal == Decimal("2000")  # two data sets on one line, unit case folded
    assert res.drops == {"bad_value": 1, "unmapped_identifier": 1, "no_identifier": 1, "duplicate": 1}
    assert by["1-0:1.8.0*255"].time == 123.0


def test_push_overrun_is_bounded_and_recovers() -> None:
    client = D0Client(D0Config(mode=D0Mode.D, initial_baudrate=9600, max_message_bytes=2048))
    out = client.receive(b"/ESY5Q3DA1024 V3.04\r\n\r\n", 0.0)
    for i in range(100):  # endless data lines, never "!"
        out += client.receive(b"1-0:1.8.0*255(00464.2791770*kWh)\r\n", i / 100)
    assert Dropped("overruns", "more than 2048 bytes without end of message") in out
    assert len(client._buf) <= 2048
    out = client.receive(fresh(EASYMETER_Q3D).push(), 2.0)
    assert len([e for e in out if isinstance(e, Readout)]) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60))
def test_fragmentation_does_not_change_the_readout(cuts: list[int]) -> None:
    client = D0Client()
    client.start(0.0)
    ident = b"/ISk5MT174-0001\r\n"
    msg = data_message(ISKRA_MT174.data)
    stream, pos, t = ident, 0, 0.1
    events: list[object] = []
    for n in cuts * 20:  # the identification in pieces
        if pos >= len(stream):
            break
        events += client.receive(stream[pos:pos + n], t)
        pos += n
        t += 0.001
    events += client.receive(stream[pos:], t)
    events += client.tick(t + 0.05)  # ACK (20 ms rule)
    events += client.tick(t + 1.0)  # changeover
    assert client.baudrate == 9600
    pos = 0
    for n in cuts * 50:
        if pos >= len(msg):
            break
        events += client.receive(msg[pos:pos + n], t + 1.1)
        pos += n
    events += client.receive(msg[pos:], t + 1.2)
    ro = readout_of(events)
    assert ro.data == ISKRA_MT174.data


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.*:-&()CFLPkWhVAvar!\r\n ", max_size=300))
def test_parse_readout_never_raises(text: str) -> None:
    res = parse_readout(text)
    assert all(r.obis.f <= 255 for r in res.readings)
