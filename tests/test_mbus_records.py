"""EN 13757-3 decoding and the OBIS mapping per medium, on real telegrams (tests/mbus_telegrams.py: libmbus
test frames; each expected value is the one libmbus decodes from the same file, noted where it differs)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import mbus_telegrams as T
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bab.medium import Medium
from bab.obis import Obis
from bab.reading import ReadingStatus
from bab.units import Unit
from legacy_drivers.mbus.frame import FrameReceiver, LongFrame
from legacy_drivers.mbus.obis_map import ERROR_REGISTER, map_readout, medium_fits
from legacy_drivers.mbus.records import (
    Function,
    Quantity,
    Telegram,
    TelegramError,
    date_type_g,
    datetime_type_f,
    decode_response,
)


def telegram(hex_text: str) -> Telegram:
    (frame,) = FrameReceiver().feed(bytes.fromhex(hex_text))
    assert isinstance(frame, LongFrame)
    return decode_response(frame.ci, frame.data)


def readings(hex_text: str, medium: Medium, **kw):
    t = telegram(hex_text)
    out = map_readout(t.records, t.header, medium, capture_time=1.0, meter_time="utc", **kw)
    return {str(r.obis): r for r in out.readings}, out


def exact(r) -> tuple[Decimal, Unit]:
    return r.decimal, r.unit


# ---- gas: 7-0:3.0.0 (m³) ---------------------------------------------------------------------------------


def test_gas_itron_cyble_int32_volume_and_meter_clock() -> None:
    t = telegram(T.GAS_ITRON_CYBLE)
    h = t.header
    assert (h.ident, h.manufacturer, h.version, h.medium, h.access_number, h.status) == \
        ("10020387", "ACW", 0x14, 0x03, 0x9A, 0)
    assert not t.more_follows and t.manufacturer_data == bytes.fromhex("00021F")
    by, out = readings(T.GAS_ITRON_CYBLE, Medium.GAS)
    r = by["7-0:3.0.0*255"]
    assert (r.value, r.scaler, r.unit) == (26, -2, Unit.M3)  # DIF 04 (int32) VIF 14: 26 x 10^-2 m³, exact
    # 04 94 7F (a manufacturer-specific volume, value 0) and 44 14 (storage 1: 0.25 m³) are other registers
    assert set(by) == {"7-0:3.0.0*255", str(ERROR_REGISTER)}
    assert out.meter_time == dt.datetime(2011, 10, 25, 15, 43)  # 04 6D, type F
    assert r.time == dt.datetime(2011, 10, 25, 15, 43, tzinfo=dt.UTC).timestamp()
    assert r.status == ReadingStatus.OK


def test_gas_oms_example_bcd8_volume() -> None:
    by, out = readings(T.GAS_OMS, Medium.GAS)
    assert exact(by["7-0:3.0.0*255"]) == (Decimal("28504.27"), Unit.M3)  # DIF 0C (8-digit BCD) VIF 14
    assert out.meter_time == dt.datetime(2008, 5, 31, 23, 50)


def test_gas_invalid_time_stamp_is_not_used() -> None:
    """04 6D A1 15 E9 17 has the IV bit set (libmbus shows it as 1900-01-00T00:00:00): no meter time."""
    by, out = readings(T.GAS_RELAY_PADPULS2, Medium.GAS)
    assert out.meter_time is None and by["7-0:3.0.0*255"].time == 1.0
    assert exact(by["7-0:3.0.0*255"]) == (Decimal("28760.81"), Unit.M3)


def test_gas_meter_without_a_current_volume_publishes_none() -> None:
    """LGB G350: its only volume is 4C 13, storage 1 (a due-date value): the current register stays unknown."""
    by, _ = readings(T.GAS_LGB_G350, Medium.GAS)
    assert "7-0:3.0.0*255" not in by


# ---- water: 8-0:1.0.0 / 9-0:1.0.0 (m³), flow 8-0:2.0.0 (m³/h) ----------------------------------------------


def test_water_itron_cyble_status_error_bits_flag_the_readings() -> None:
    by, _ = readings(T.WATER_ITRON_CYBLE, Medium.COLD_WATER)
    r = by["8-0:1.0.0*255"]
    assert exact(r) == (Decimal("123.49"), Unit.M3)
    # header status 0x30: bit 4 (temporary error) set
    assert r.status == ReadingStatus.METER_ERROR and by[str(ERROR_REGISTER)].value == 0x30


def test_water_elster_falcon_bcd_volume_int16_flow_maximum_excluded() -> None:
    by, out = readings(T.WATER_ELSTER_FALCON, Medium.COLD_WATER)
    assert exact(by["8-0:1.0.0*255"]) == (Decimal("1234.567"), Unit.M3)  # 0C 13
    assert exact(by["8-0:2.0.0*255"]) == (Decimal("6.137"), Unit.M3_PER_H)  # 02 3B (12 3B = maximum 5.945)
    dates = [r.time for r in telegram(T.WATER_ELSTER_FALCON).records if r.meaning.quantity is Quantity.DATE]
    assert dates[0] == dt.date(2007, 1, 1)  # 42 6C, type G, storage 1


def test_water_gwf_volume_in_whole_m3() -> None:
    by, _ = readings(T.WATER_GWF_MTK, Medium.COLD_WATER)
    assert exact(by["8-0:1.0.0*255"]) == (Decimal(269), Unit.M3)  # 0C 16: 10^0 m³


def test_warm_water_meter_is_hot_water_medium() -> None:
    t = telegram(T.WARM_WATER_SIEMENS)
    assert t.header.medium == 0x06 and medium_fits(Medium.HOT_WATER, 0x06)
    assert not medium_fits(Medium.COLD_WATER, 0x06) and not medium_fits(Medium.GAS, 0x06)
    by, _ = readings(T.WARM_WATER_SIEMENS, Medium.HOT_WATER)
    assert exact(by["9-0:1.0.0*255"]) == (Decimal("0.101"), Unit.M3)
    # 32 6C: a date of 0 in error state (libmbus: 2000-00-00) has no value
    bad = [r for r in t.records if r.function is Function.ERROR_STATE]
    assert bad[0].time is None and bad[0].error == "invalid date"


# ---- heat: 6-0:1.0.0 (Wh or J) and the heat meter's other registers ---------------------------------------


def test_heat_kamstrup_multical_601() -> None:
    by, out = readings(T.HEAT_KAMSTRUP_601, Medium.HEAT)
    assert (by["6-0:1.0.0*255"].value, by["6-0:1.0.0*255"].scaler, by["6-0:1.0.0*255"].unit) == (37351, 3, Unit.WH)
    assert exact(by["6-0:2.0.0*255"]) == (Decimal("561.08"), Unit.M3)  # 04 14
    assert exact(by["6-0:10.0.0*255"]) == (Decimal("101.69"), Unit.CELSIUS)  # 04 59
    assert exact(by["6-0:11.0.0*255"]) == (Decimal("46.16"), Unit.CELSIUS)  # 04 5D
    assert exact(by["6-0:12.0.0*255"]) == (Decimal("55.53"), Unit.K)  # 04 61
    assert exact(by["6-0:8.0.0*255"]) == (Decimal(34700), Unit.W)  # 04 2D (14 2D maximum: 44800)
    assert exact(by["6-0:9.0.0*255"]) == (Decimal("0.543"), Unit.M3_PER_H)  # 04 3B
    # the tariff (84 10 06, 84 20 06) and subunit (84 40 14 ...) registers and storage 1 are not the current ones
    assert out.drops == {}
    assert out.meter_time == dt.datetime(2011, 1, 5, 15, 26)


def test_heat_oms_example_bcd_records() -> None:
    by, _ = readings(T.HEAT_OMS, Medium.HEAT)
    assert exact(by["6-0:1.0.0*255"]) == (Decimal(2850427000), Unit.WH)  # 0C 06: kWh BCD8
    assert exact(by["6-0:2.0.0*255"]) == (Decimal("703.476"), Unit.M3)  # 0C 13
    assert exact(by["6-0:8.0.0*255"]) == (Decimal("329.7"), Unit.W)  # 0B 2A: BCD6, 10^-1 W
    assert exact(by["6-0:10.0.0*255"]) == (Decimal("44.3"), Unit.CELSIUS)  # 0A 5A: BCD4
    assert exact(by["6-0:11.0.0*255"]) == (Decimal("25.1"), Unit.CELSIUS)  # 0A 5E
    assert exact(by["6-0:9.0.0*255"]) == (Decimal("0.127"), Unit.M3_PER_H)  # 0B 3B


def test_heat_energy_in_joule_and_real32_temperatures() -> None:
    """Sontex Supercal 531: 04 0E = energy in MJ (10^6 J, served as J with scaler 6); 05 5B / 05 5F are
    32-bit reals."""
    by, _ = readings(T.HEAT_SONTEX_531, Medium.HEAT)
    e = by["6-0:1.0.0*255"]
    assert (e.value, e.scaler, e.unit) == (0, 6, Unit.J)
    assert exact(by["6-0:10.0.0*255"]) == (Decimal(0), Unit.CELSIUS)
    assert exact(by["6-0:11.0.0*255"]) == (Decimal(0), Unit.CELSIUS)


def test_bcd_with_non_decimal_digits_has_no_value() -> None:
    """ABB F95: 3C 2A carries DD B4 EB DD in an 8-digit BCD field (libmbus prints 1311041.3): no value."""
    t = telegram(T.HEAT_ABB_F95)
    rec = next(r for r in t.records if r.header_bytes == bytes.fromhex("3C2A"))
    assert rec.value is None and rec.error == "invalid BCD digit" and rec.function is Function.ERROR_STATE


def test_more_records_follow_is_seen() -> None:
    t = telegram(T.HEAT_ELSTER_F2)
    assert t.more_follows  # last DIF 1F


def test_disagreeing_records_publish_nothing() -> None:
    t = telegram(T.GAS_OMS)
    second = telegram(T.GAS_ITRON_CYBLE)
    out = map_readout([*t.records, *second.records], t.header, Medium.GAS)
    assert not any(r.obis == Obis(7, 0, 3, 0, 0) for r in out.readings) and out.drops["ambiguous"] == 1


# ---- type decoding facts (EN 13757-3) ----------------------------------------------------------------------


def test_date_types() -> None:
    assert date_type_g(bytes.fromhex("DF1C")) == dt.date(2014, 12, 31)
    assert date_type_g(b"\x00\x00") is None
    assert datetime_type_f(bytes.fromhex("2B0F791A")) == dt.datetime(2011, 10, 25, 15, 43)
    assert datetime_type_f(bytes.fromhex("AB0F791A")) is None  # IV bit


def test_negative_bcd_and_signed_integers() -> None:
    # 0A 13 with F in the top nibble: -123 x 10^-3 m³; 02 13 FF FF: int16 -1
    t = decode_response(0x78, bytes.fromhex("0A1323F1") + bytes.fromhex("0213FFFF"))
    assert [r.value for r in t.records] == [-123, -1]
    assert [r.exponent for r in t.records] == [-3, -3]


# ---- malformed telegrams never yield values -----------------------------------------------------------------


@pytest.mark.parametrize(("hex_text", "reason"), [
    (T.ERR_PREMATURE_END_OF_DATA, "bad_record"), (T.ERR_TOO_MANY_DIFE, "bad_record"),
    (T.ERR_TOO_SHORT_HEADER, "bad_header"), (T.ERR_PREMATURE_END_OF_VAR_VIF, "bad_record"),
])
def test_libmbus_error_frames_are_rejected(hex_text: str, reason: str) -> None:
    with pytest.raises(TelegramError) as err:
        telegram(hex_text)
    assert err.value.reason == reason


def test_application_error_and_unknown_ci() -> None:
    with pytest.raises(TelegramError, match="application error") as err:
        decode_response(0x70, b"\x01")
    assert err.value.reason == "application_error"
    with pytest.raises(TelegramError) as err:
        decode_response(0x73, b"")
    assert err.value.reason == "unsupported_ci"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_telegrams_decode_or_raise_telegram_error(data: st.DataObject) -> None:
    raw = bytearray(bytes.fromhex(T.HEAT_KAMSTRUP_601)[7:-2])
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        t = decode_response(0x72, bytes(raw[:cut]))
    except TelegramError:
        return
    out = map_readout(t.records, t.header, Medium.HEAT)
    for r in out.readings:
        assert isinstance(r.value, int) and -128 <= r.scaler <= 127


def test_meter_times_after_2038_do_not_need_a_64_bit_time_t() -> None:
    """A meter clock in 2040 (or a garbled date decoding to 2099) gives its POSIX time on every platform:
    computed without the C library, whose 32-bit time_t on Debian bookworm armhf overflowed in timestamp()."""
    from legacy_drivers.mbus.obis_map import epoch_seconds

    for year in (1970, 2024, 2038, 2040, 2099):
        stamp = dt.datetime(year, 6, 1, 12, 0, tzinfo=dt.UTC)
        expected = (dt.date(year, 6, 1) - dt.date(1970, 1, 1)).days * 86400 + 12 * 3600
        assert epoch_seconds(stamp) == expected


def test_an_empty_bcd_field_has_no_value_rather_than_an_exception():
    """Found by the mutation test above (a variable-length BCD record of length 0 raised ValueError)."""
    from legacy_drivers.mbus.records import _bcd_value

    assert _bcd_value(b"") == (None, "empty BCD field")
    assert _bcd_value(bytes.fromhex("3412")) == (1234, None) and _bcd_value(bytes.fromhex("34F2")) == (-234, None)
