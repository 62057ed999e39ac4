"""SML 1.04 composite data types (LMN-STACK.md 6.3 "Sub-types"; TR-03109-1 IVb 6.2).

* SML_Time: :class:`SecIndex` (choice 1), :class:`Timestamp` (2), :class:`LocalTimestamp` (3).
* SML_Value: ``bool | bytes | Integer | Unsigned`` or an SML_ListType: an SML_Time (choice 1),
  :class:`TimestampedValue` (2) or :class:`CosemScalerUnit` (3, cosemValue choice 1 scaler_unit).
* :class:`ListEntry`, :class:`PeriodEntry`, :class:`TupelEntry`, :class:`Tree` with :class:`ProcParValue`,
  TreePath (``list[bytes]``) and the profile-pack entries.

Each type has a ``read_*(reader)`` and a ``write_*(out, value)`` function; messages are built from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ..obis import Obis
from .errors import SmlEncodeError, SmlTypeError
from .quirks import Quirk
from .tl import (
    MAX_DEPTH,
    T_LIST,
    Integer,
    Reader,
    Unsigned,
    write_int,
    write_int_fixed,
    write_octets,
    write_simple_value,
    write_tl,
    write_typed_int,
    write_uint_fixed,
)

# ------------------------------------------------------------------------------------------------ SML_Time


@dataclass(slots=True)
class SecIndex:
    """SML_Time choice 1: a seconds index (seconds since some meter-specific epoch)."""

    value: int
    #: decoded from a bare Unsigned32 (Quirk.BARE_U32_TIME); re-encodes the same way
    bare: bool = field(default=False, compare=False)
    #: wire width of the value (0: the standard 4 bytes); meters send 1- or 3-byte secIndex values
    width: int = field(default=0, compare=False)


@dataclass(slots=True)
class Timestamp:
    """SML_Time choice 2: UTC seconds since 1970."""

    value: int
    width: int = field(default=0, compare=False)  # wire width (0: the standard 4 bytes)


@dataclass(slots=True)
class LocalTimestamp:
    """SML_Time choice 3: UTC seconds, local offset and daylight-saving offset in minutes."""

    timestamp: int
    local_offset: int
    season_time_offset: int


SmlTime = SecIndex | Timestamp | LocalTimestamp


def read_time(r: Reader) -> SmlTime:
    buf = r.buf
    pos = r.pos
    if pos < r.end and buf[pos] == 0x65 and r.quirks & Quirk.BARE_U32_TIME:
        return SecIndex(r.uint(32), True)
    r.list_header(2)
    choice = r.uint(8)
    if choice == 1:
        v, w = r.uint_w(32)
        return SecIndex(v, False, w)
    if choice == 2:
        v, w = r.uint_w(32)
        return Timestamp(v, w)
    if choice == 3:
        r.list_header(3)
        return LocalTimestamp(r.uint(32), r.sint(16), r.sint(16))
    raise SmlTypeError(f"unknown SML_Time choice {choice} at offset {r.pos}")


def read_opt_time(r: Reader) -> SmlTime | None:
    if r.skip_absent():
        return None
    return read_time(r)


def write_time(out: bytearray, t: SmlTime | None) -> None:
    if t is None:
        out.append(0x01)
    elif type(t) is SecIndex:
        if t.bare:  # Quirk.BARE_U32_TIME: always a plain Unsigned32
            write_uint_fixed(out, t.value, 32, 4)
        else:
            out += b"\x72\x62\x01"
            write_uint_fixed(out, t.value, 32, t.width or 4)
    elif type(t) is Timestamp:
        out += b"\x72\x62\x02"
        write_uint_fixed(out, t.value, 32, t.width or 4)
    elif type(t) is LocalTimestamp:
        out += b"\x72\x62\x03\x73"
        write_int(out, t.timestamp, False, 4)
        write_int_fixed(out, t.local_offset, 16)
        write_int_fixed(out, t.season_time_offset, 16)
    else:
        raise SmlEncodeError(f"not an SML_Time: {t!r}")


# -------------------------------------------------------------------------------------- SML_Value list type


@dataclass(slots=True)
class TimestampedValue:
    """SML_ListType choice 2: ``[time, status, simpleValue]``."""

    time: SmlTime
    status: Unsigned
    value: bool | bytes | Unsigned


@dataclass(slots=True)
class CosemScalerUnit:
    """SML_ListType choice 3 (cosemValue) with cosem choice 1 scaler_unit: COSEM attribute 3 of a Register."""

    scaler: int
    unit: int


SimpleValue = bool | bytes | Integer | Unsigned
SmlValue = (bool | bytes | Integer | Unsigned | SecIndex | Timestamp | LocalTimestamp | TimestampedValue
            | CosemScalerUnit)


def read_value(r: Reader) -> SmlValue:
    """SML_Value: a simple value or an SML_ListType (list(2) with a choice tag)."""
    pos = r.pos
    if pos < r.end and r.buf[pos] & 0x70 == T_LIST:
        r.list_header(2)
        choice = r.uint(8)
        if choice == 1:
            return read_time(r)
        if choice == 2:
            r.list_header(3)
            return TimestampedValue(read_time(r), r.status(), r.simple_value())
        if choice == 3:
            r.list_header(2)
            cosem_choice = r.uint(8)
            if cosem_choice != 1:
                raise SmlTypeError(f"unknown cosemValue choice {cosem_choice} at offset {r.pos}")
            r.list_header(2)
            return CosemScalerUnit(r.sint(8), r.uint(8))
        raise SmlTypeError(f"unknown SML_ListType choice {choice} at offset {r.pos}")
    return r.simple_value()


def write_value(out: bytearray, v: SmlValue) -> None:
    tv = type(v)
    if tv is Unsigned or tv is Integer:
        write_typed_int(out, v)  # type: ignore[arg-type]
    elif tv is bytes:
        write_octets(out, v)  # type: ignore[arg-type]
    elif tv is SecIndex or tv is Timestamp or tv is LocalTimestamp:
        out += b"\x72\x62\x01"
        write_time(out, v)  # type: ignore[arg-type]
    elif tv is TimestampedValue:
        out += b"\x72\x62\x02\x73"
        write_time(out, v.time)  # type: ignore[union-attr]
        if not isinstance(v.status, Unsigned) or v.status.signed:  # type: ignore[union-attr]
            raise SmlEncodeError("TimestampedValue.status must be an Unsigned")
        write_typed_int(out, v.status)  # type: ignore[union-attr]
        write_simple_value(out, v.value)  # type: ignore[union-attr]
    elif tv is CosemScalerUnit:
        out += b"\x72\x62\x03\x72\x62\x01\x72"
        write_int_fixed(out, v.scaler, 8)  # type: ignore[union-attr]
        write_uint_fixed(out, v.unit, 8)  # type: ignore[union-attr]
    else:
        write_simple_value(out, v)


def write_status(out: bytearray, s: Unsigned | None) -> None:
    if s is None:
        out.append(0x01)
    elif isinstance(s, Unsigned) and not s.signed:
        write_typed_int(out, s)
    else:
        raise SmlEncodeError(f"an SML_Status must be an Unsigned, got {s!r}")


def read_opt_status(r: Reader) -> Unsigned | None:
    if r.skip_absent():
        return None
    return r.status()


# ----------------------------------------------------------------------------------------------- ListEntry


@dataclass(slots=True)
class ListEntry:
    """SML_ListEntry: one object of a GetList.Res ``valList`` (or ProcParValue choice 5)."""

    obj_name: bytes
    status: Unsigned | None = None
    val_time: SmlTime | None = None
    unit: int | None = None
    scaler: int | None = None
    value: SmlValue = b""
    value_signature: bytes | None = None

    @property
    def obis(self) -> Obis | None:
        """The object name as an OBIS code, if it has the 6 bytes of one."""
        return Obis.from_bytes(self.obj_name) if len(self.obj_name) == 6 else None


def read_list_entry(r: Reader) -> ListEntry:
    r.list_header(7)
    obj_name = r.octets()
    status = None if r.skip_absent() else r.status()
    val_time = None if r.skip_absent() else read_time(r)
    unit = None if r.skip_absent() else r.uint(8)
    scaler = None if r.skip_absent() else r.sint(8)
    value = read_value(r)
    return ListEntry(obj_name, status, val_time, unit, scaler, value, r.opt_octets())


def write_list_entry(out: bytearray, e: ListEntry) -> None:
    out.append(0x77)
    write_octets(out, e.obj_name)
    write_status(out, e.status)
    write_time(out, e.val_time)
    if e.unit is None:
        out.append(0x01)
    else:
        write_uint_fixed(out, e.unit, 8)
    if e.scaler is None:
        out.append(0x01)
    else:
        write_int_fixed(out, e.scaler, 8)
    write_value(out, e.value)
    write_octets(out, e.value_signature)


def read_list_entries(r: Reader) -> list[ListEntry]:
    n = r.list_header()
    return [read_list_entry(r) for _ in range(n)]


def write_list(out: bytearray, items: list, write_item) -> None:  # type: ignore[type-arg, no-untyped-def]
    write_tl(out, T_LIST, len(items))
    for item in items:
        write_item(out, item)


# ---------------------------------------------------------------------------------- PeriodEntry, TupelEntry


@dataclass(slots=True)
class PeriodEntry:
    """SML_PeriodEntry ``[objName, unit, scaler, value, valueSignature]`` (profiles, ProcParValue choice 2)."""

    obj_name: bytes
    unit: int
    scaler: int
    value: SmlValue
    value_signature: bytes | None = None


def read_period_entry(r: Reader) -> PeriodEntry:
    r.list_header(5)
    return PeriodEntry(r.octets(), r.uint(8), r.sint(8), read_value(r), r.opt_octets())


def write_period_entry(out: bytearray, e: PeriodEntry) -> None:
    out.append(0x75)
    write_octets(out, e.obj_name)
    write_uint_fixed(out, e.unit, 8)
    write_int_fixed(out, e.scaler, 8)
    write_value(out, e.value)
    write_octets(out, e.value_signature)


@dataclass(slots=True)
class TupelEntry:
    """SML_TupelEntry (ProcParValue choice 3): a SyM2 register tuple, 23 fields.

    Layout as far as known (TR-03109-1 IVb / libsml): serverId, secIndex, status (u64), then for pA, R1, R4:
    unit, scaler, value (i64); signature_pA_R1_R4; then for mA, R2, R3: unit, scaler, value; signature_mA_R2_R3.
    ``registers`` holds the six (unit, scaler, value) triples in the order pA, R1, R4, mA, R2, R3.
    """

    server_id: bytes
    sec_index: SmlTime
    status: int
    registers: list[tuple[int, int, int]]
    signature_pa_r1_r4: bytes
    signature_ma_r2_r3: bytes


def read_tupel_entry(r: Reader) -> TupelEntry:
    r.list_header(23)
    server_id = r.octets()
    sec_index = read_time(r)
    status = r.uint(64)
    regs = []
    sigs = []
    for _half in range(2):
        for _reg in range(3):
            regs.append((r.uint(8), r.sint(8), r.sint(64)))
        sigs.append(r.octets())
    return TupelEntry(server_id, sec_index, status, regs, sigs[0], sigs[1])


def write_tupel_entry(out: bytearray, e: TupelEntry) -> None:
    if len(e.registers) != 6:
        raise SmlEncodeError("a TupelEntry has 6 registers (pA, R1, R4, mA, R2, R3)")
    write_tl(out, T_LIST, 23)
    write_octets(out, e.server_id)
    write_time(out, e.sec_index)
    write_uint_fixed(out, e.status, 64)
    for half, sig in ((e.registers[:3], e.signature_pa_r1_r4), (e.registers[3:], e.signature_ma_r2_r3)):
        for unit, scaler, value in half:
            write_uint_fixed(out, unit, 8)
            write_int_fixed(out, scaler, 8)
            write_int(out, value, True, 8)
        write_octets(out, sig)


# ------------------------------------------------------------------------------------------ Tree, TreePath


class ProcParKind(IntEnum):
    """SML_ProcParValue choice tags."""

    VALUE = 1
    PERIOD_ENTRY = 2
    TUPEL_ENTRY = 3
    TIME = 4
    LIST_ENTRY = 5


@dataclass(slots=True)
class ProcParValue:
    """SML_ProcParValue: ``kind`` says which of value / PeriodEntry / TupelEntry / SML_Time / ListEntry."""

    kind: ProcParKind
    value: SmlValue | PeriodEntry | TupelEntry | ListEntry


@dataclass(slots=True)
class Tree:
    """SML_Tree ``[parameterName, parameterValue opt, childList opt]``."""

    parameter_name: bytes
    parameter_value: ProcParValue | None = None
    child_list: list[Tree] | None = None


def read_proc_par_value(r: Reader) -> ProcParValue:
    r.list_header(2)
    choice = r.uint(8)
    if choice == 1:
        return ProcParValue(ProcParKind.VALUE, read_value(r))
    if choice == 2:
        return ProcParValue(ProcParKind.PERIOD_ENTRY, read_period_entry(r))
    if choice == 3:
        return ProcParValue(ProcParKind.TUPEL_ENTRY, read_tupel_entry(r))
    if choice == 4:
        return ProcParValue(ProcParKind.TIME, read_time(r))
    if choice == 5:
        return ProcParValue(ProcParKind.LIST_ENTRY, read_list_entry(r))
    raise SmlTypeError(f"unknown SML_ProcParValue choice {choice} at offset {r.pos}")


def write_proc_par_value(out: bytearray, p: ProcParValue) -> None:
    try:
        kind = ProcParKind(p.kind)
    except ValueError:
        raise SmlEncodeError(f"unknown ProcParValue kind {p.kind!r}") from None
    out += bytes((0x72, 0x62, int(kind)))
    if kind is ProcParKind.VALUE:
        write_value(out, p.value)  # type: ignore[arg-type]
    elif kind is ProcParKind.PERIOD_ENTRY and type(p.value) is PeriodEntry:
        write_period_entry(out, p.value)
    elif kind is ProcParKind.TUPEL_ENTRY and type(p.value) is TupelEntry:
        write_tupel_entry(out, p.value)
    elif kind is ProcParKind.TIME and type(p.value) in (SecIndex, Timestamp, LocalTimestamp):
        write_time(out, p.value)  # type: ignore[arg-type]
    elif kind is ProcParKind.LIST_ENTRY and type(p.value) is ListEntry:
        write_list_entry(out, p.value)
    else:
        raise SmlEncodeError(f"ProcParValue {kind.name} cannot carry {type(p.value).__name__}")


def read_tree(r: Reader, depth: int = 0) -> Tree:
    if depth > MAX_DEPTH:
        raise SmlTypeError(f"SML_Tree nested deeper than {MAX_DEPTH} at offset {r.pos}")
    r.list_header(3)
    name = r.octets()
    value = None if r.skip_absent() else read_proc_par_value(r)
    children = None
    if not r.skip_absent():
        n = r.list_header()
        children = [read_tree(r, depth + 1) for _ in range(n)]
    return Tree(name, value, children)


def read_opt_tree(r: Reader) -> Tree | None:
    if r.skip_absent():
        return None
    return read_tree(r)


def write_tree(out: bytearray, t: Tree | None, depth: int = 0) -> None:
    if t is None:
        out.append(0x01)
        return
    if depth > MAX_DEPTH:
        raise SmlEncodeError(f"SML_Tree nested deeper than {MAX_DEPTH}")
    out.append(0x73)
    write_octets(out, t.parameter_name)
    if t.parameter_value is None:
        out.append(0x01)
    else:
        write_proc_par_value(out, t.parameter_value)
    if t.child_list is None:
        out.append(0x01)
    else:
        write_tl(out, T_LIST, len(t.child_list))
        for child in t.child_list:
            write_tree(out, child, depth + 1)


def read_octet_list(r: Reader) -> list[bytes]:
    """SML_TreePath and the other lists of octet strings."""
    n = r.list_header()
    return [r.octets() for _ in range(n)]


def read_opt_octet_list(r: Reader) -> list[bytes] | None:
    if r.skip_absent():
        return None
    return read_octet_list(r)


def write_octet_list(out: bytearray, items: list[bytes] | None) -> None:
    if items is None:
        out.append(0x01)
        return
    write_tl(out, T_LIST, len(items))
    for item in items:
        write_octets(out, item)


# ------------------------------------------------------------------------------------- profile pack entries


@dataclass(slots=True)
class ProfObjHeaderEntry:
    """SML_ProfObjHeaderEntry ``[objName, unit, scaler]`` (GetProfilePack.Res header_List)."""

    obj_name: bytes
    unit: int
    scaler: int


@dataclass(slots=True)
class ValueEntry:
    """SML_ValueEntry ``[value, valueSignature]``."""

    value: SmlValue
    value_signature: bytes | None = None


@dataclass(slots=True)
class ProfObjPeriodEntry:
    """SML_ProfObjPeriodEntry ``[valTime, status, value_List, periodSignature]``."""

    val_time: SmlTime
    status: int
    value_list: list[ValueEntry]
    period_signature: bytes | None = None


def read_header_entry(r: Reader) -> ProfObjHeaderEntry:
    r.list_header(3)
    return ProfObjHeaderEntry(r.octets(), r.uint(8), r.sint(8))


def write_header_entry(out: bytearray, e: ProfObjHeaderEntry) -> None:
    out.append(0x73)
    write_octets(out, e.obj_name)
    write_uint_fixed(out, e.unit, 8)
    write_int_fixed(out, e.scaler, 8)


def read_value_entry(r: Reader) -> ValueEntry:
    r.list_header(2)
    return ValueEntry(read_value(r), r.opt_octets())


def write_value_entry(out: bytearray, e: ValueEntry) -> None:
    out.append(0x72)
    write_value(out, e.value)
    write_octets(out, e.value_signature)


def read_prof_period_entry(r: Reader) -> ProfObjPeriodEntry:
    r.list_header(4)
    val_time = read_time(r)
    status = r.uint(64)
    n = r.list_header()
    values = [read_value_entry(r) for _ in range(n)]
    return ProfObjPeriodEntry(val_time, status, values, r.opt_octets())


def write_prof_period_entry(out: bytearray, e: ProfObjPeriodEntry) -> None:
    out.append(0x74)
    write_time(out, e.val_time)
    write_uint_fixed(out, e.status, 64)
    write_list(out, e.value_list, write_value_entry)
    write_octets(out, e.period_signature)


__all__ = [
    "CosemScalerUnit", "Integer", "ListEntry", "LocalTimestamp", "PeriodEntry", "ProcParKind", "ProcParValue",
    "ProfObjHeaderEntry", "ProfObjPeriodEntry", "SecIndex", "SimpleValue", "SmlTime", "SmlValue",
    "TimestampedValue", "Timestamp", "Tree", "TupelEntry", "Unsigned", "ValueEntry",
]
