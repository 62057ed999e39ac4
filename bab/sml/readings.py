"""GetList.Res value lists to :class:`bab.reading.Reading` objects (LMN-STACK.md 9.1), for the EDL driver.

Only numeric entries with a 6-byte OBIS name become readings (value = integer mantissa, scaler from the
entry, unit from the DLMS unit code); octet strings (manufacturer, server ID, firmware), booleans and entries
with a unit code BAB does not know are skipped (:func:`entry_to_reading` returns ``None``,
:func:`explain_skip` says why).

The SML status word (e.g. EDL ``0x1C0104``) has manufacturer/FNN-specific bits and is not mapped;
``Reading.status`` is ``OK``. ``Reading.time`` is the entry's UTC timestamp when the meter sends one
(SML_Time choice 2/3), otherwise the ``time`` the caller passes in (sans-I/O: no clock is read here);
a secIndex is not a wall-clock time.

:attr:`Quirk.DZG_INT16_POWER` (see :mod:`bab.sml.quirks`) is applied here, guarded by the DZG serial ranges.
"""

from __future__ import annotations

from ..obis import Obis
from ..reading import Reading, ReadingStatus
from ..units import Unit
from .messages import GetListRes, SmlFile
from .quirks import Quirk
from .tl import Integer, Unsigned
from .types import ListEntry, LocalTimestamp, SmlTime, Timestamp

POWER_16_7_0 = bytes((1, 0, 16, 7, 0, 255))
DEVICE_ID_96_1_0 = bytes((1, 0, 96, 1, 0, 255))
_DZG_PREFIX = b"\x0a\x01DZG"
#: DZG DVS74 serial numbers with the int16 power bug (libsml ``detect_buggy_dzg_dvs74``); >= 60 000 000 fixed
DZG_BUGGY_SERIAL_RANGES = ((42_000_000, 48_999_999), (55_000_000, 58_999_999))
_KNOWN_UNITS = frozenset(int(u) for u in Unit)


def is_buggy_dzg(server_id: bytes | None) -> bool:
    """True for a 10-byte DZG server ID whose serial number lies in :data:`DZG_BUGGY_SERIAL_RANGES`."""
    if not server_id or len(server_id) != 10 or server_id[:5] != _DZG_PREFIX:
        return False
    serial = int.from_bytes(server_id[5:], "big")
    return any(lo <= serial <= hi for lo, hi in DZG_BUGGY_SERIAL_RANGES)


def fix_dzg_power(entry: ListEntry) -> int | None:
    """The corrected 16.7.0 mantissa of a buggy DZG meter: a 1..3-byte *signed* value re-read as unsigned.

    Returns None when the entry is not affected (other OBIS, unsigned, wider than 3 bytes, non-negative).
    """
    v = entry.value
    if entry.obj_name != POWER_16_7_0 or type(v) is not Integer or not 1 <= v.width <= 3 or v.value >= 0:
        return None
    return v.value + (1 << (8 * v.width))


def _unix_time(t: SmlTime | None) -> float | None:
    if type(t) is Timestamp:
        return float(t.value)
    if type(t) is LocalTimestamp:
        return float(t.timestamp)
    return None


def explain_skip(entry: ListEntry) -> str | None:
    """Why :func:`entry_to_reading` skips ``entry``, or None when it converts."""
    if len(entry.obj_name) != 6:
        return f"object name {entry.obj_name.hex()} is not a 6-byte OBIS code"
    if not isinstance(entry.value, Unsigned):
        return f"value {type(entry.value).__name__} is not a number"
    if entry.unit is not None and entry.unit not in _KNOWN_UNITS:
        return f"unit code {entry.unit} is not known"
    return None


def entry_to_reading(entry: ListEntry, *, dzg_fix: bool = False, time: float | None = None) -> Reading | None:
    """One ListEntry as a Reading, or None if it is not a numeric OBIS value (see :func:`explain_skip`)."""
    if explain_skip(entry) is not None or not isinstance(entry.value, Unsigned):
        return None
    value = entry.value.value
    if dzg_fix:
        fixed = fix_dzg_power(entry)
        if fixed is not None:
            value = fixed
    unit = Unit.COUNT if entry.unit is None else Unit(entry.unit)
    t = _unix_time(entry.val_time)
    return Reading(Obis.from_bytes(entry.obj_name), value, entry.scaler or 0, unit, ReadingStatus.OK,
                   t if t is not None else time)


def readings_from_get_list(body: GetListRes, *, quirks: Quirk = Quirk.EDL, time: float | None = None) -> list[Reading]:
    """The numeric entries of a GetList.Res ``valList`` as readings (in list order)."""
    dzg_fix = False
    if quirks & Quirk.DZG_INT16_POWER:
        dzg_fix = is_buggy_dzg(body.server_id) or any(
            e.obj_name == DEVICE_ID_96_1_0 and type(e.value) is bytes and is_buggy_dzg(e.value)
            for e in body.val_list
        )
    out = []
    for entry in body.val_list:
        r = entry_to_reading(entry, dzg_fix=dzg_fix, time=time)
        if r is not None:
            out.append(r)
    return out


def readings_from_file(file: SmlFile, *, quirks: Quirk = Quirk.EDL, time: float | None = None) -> list[Reading]:
    """The readings of every GetList.Res in an SML file (an EDL push file has exactly one)."""
    out: list[Reading] = []
    for body in file.bodies(GetListRes):
        out.extend(readings_from_get_list(body, quirks=quirks, time=time))
    return out
