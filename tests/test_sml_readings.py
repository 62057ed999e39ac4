"""bab.sml.readings: GetList.Res entries to Reading objects, including the DZG int16 power workaround."""

from __future__ import annotations

from pathlib import Path

from bab.obis import Obis
from bab.reading import Reading
from bab.sml import (
    FileDecoded,
    GetListRes,
    Integer,
    ListEntry,
    Quirk,
    SecIndex,
    SmlStreamDecoder,
    Timestamp,
    Unsigned,
)
from bab.sml.readings import (
    entry_to_reading,
    explain_skip,
    is_buggy_dzg,
    readings_from_file,
    readings_from_get_list,
)
from bab.units import Unit

POWER = bytes.fromhex("0100100700FF")


def _first_file(shared: Path, name: str) -> GetListRes:
    dec = SmlStreamDecoder(Quirk.EDL)
    for ev in dec.feed((shared / "sml-push" / name).read_bytes()):
        if isinstance(ev, FileDecoded):
            return ev.file.bodies(GetListRes)[0]
    raise AssertionError("no file")


def test_mme40_readings(shared_vectors: Path) -> None:
    body = _first_file(shared_vectors, "EMH_mME40-AE6AKF0K0.bin")
    got = {str(r.obis): r for r in readings_from_get_list(body, time=1700000000.0)}
    assert set(got) == {"1-0:1.8.0*255", "1-0:36.7.0*255", "1-0:56.7.0*255", "1-0:76.7.0*255", "1-0:16.7.0*255"}
    energy = got["1-0:1.8.0*255"]
    assert (energy.value, energy.scaler, energy.unit) == (4288964, -1, Unit.WH)
    assert str(energy.decimal) == "428896.4"
    assert got["1-0:16.7.0*255"] == Reading(Obis.parse("1-0:16.7.0"), 2623, 0, Unit.W)
    assert energy.time == 1700000000.0  # a secIndex is no wall-clock time: the caller's time is used


def test_dzg_int16_power_bug_is_fixed_for_affected_serials(shared_vectors: Path) -> None:
    """FILES.txt: DZG DVS-7412.2 (jmberg) 'Wrongly encoded power value 356.24 as -299.12'."""
    body = _first_file(shared_vectors, "DZG_DVS-7412.2_jmberg.bin")
    assert is_buggy_dzg(body.server_id)
    raw = next(e for e in body.val_list if e.obj_name == POWER)
    assert raw.value == Integer(-29912) and raw.value.width == 2 and raw.scaler == -2  # wire value, as sml-rs
    fixed = {str(r.obis): r for r in readings_from_get_list(body)}["1-0:16.7.0*255"]
    assert str(fixed.decimal) == "356.24"
    unfixed = {str(r.obis): r for r in readings_from_get_list(body, quirks=Quirk.DEFAULT)}["1-0:16.7.0*255"]
    assert str(unfixed.decimal) == "-299.12"


def test_dzg_genuine_negative_power_is_left_alone(shared_vectors: Path) -> None:
    """DVS-7420 (serial >= 60 000 000) sends real negative 2-byte values (FILES.txt: generator)."""
    body = _first_file(shared_vectors, "DZG_DVS-7420.2V.G2_mtr2_neg.bin")
    assert not is_buggy_dzg(body.server_id)
    power = {str(r.obis): r for r in readings_from_get_list(body)}["1-0:16.7.0*255"]
    assert power.value < 0


def test_dzg_detection_by_the_96_1_0_entry_and_ranges() -> None:
    sid = b"\x0a\x01DZG\x00" + (42_083_934).to_bytes(4, "big")
    assert is_buggy_dzg(sid)
    assert not is_buggy_dzg(b"\x0a\x01DZG\x00" + (60_694_613).to_bytes(4, "big"))
    assert not is_buggy_dzg(b"\x0a\x01EMH\x00" + (42_083_934).to_bytes(4, "big"))
    assert not is_buggy_dzg(None)
    body = GetListRes(None, b"\x06other", None, None, [
        ListEntry(bytes.fromhex("0100600100FF"), value=sid),
        ListEntry(POWER, None, None, 27, -2, Integer(-29912, 2)),
        ListEntry(POWER, None, None, 27, -2, Integer(-29912, 4)),  # 4 bytes wide: not the bug pattern
    ])
    values = [r.value for r in readings_from_get_list(body)]
    assert values == [35624, -29912]


def test_entries_that_are_not_numeric_readings_are_skipped() -> None:
    assert explain_skip(ListEntry(b"\x01\x00", value=Unsigned(1))) is not None
    assert explain_skip(ListEntry(POWER, value=b"EMH")) is not None
    assert explain_skip(ListEntry(POWER, unit=250, value=Unsigned(1))) is not None
    assert entry_to_reading(ListEntry(POWER, value=True)) is None
    r = entry_to_reading(ListEntry(POWER, val_time=Timestamp(1_600_000_000), value=Unsigned(5)), time=1.0)
    assert r is not None and r.unit == Unit.COUNT and r.scaler == 0 and r.time == 1_600_000_000
    r = entry_to_reading(ListEntry(POWER, val_time=SecIndex(5), value=Unsigned(5)))
    assert r is not None and r.time is None


def test_readings_from_every_capture(shared_vectors: Path) -> None:
    count = 0
    for path in sorted((shared_vectors / "sml-push").glob("*.bin")):
        dec = SmlStreamDecoder(Quirk.EDL)
        for ev in dec.feed(path.read_bytes()) + dec.finish():
            if isinstance(ev, FileDecoded):
                for r in readings_from_file(ev.file):
                    assert isinstance(r, Reading)
                    count += 1
    assert count > 700
