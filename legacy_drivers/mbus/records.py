"""EN 13757-3 variable data structure: the fixed header and the data records of an RSP_UD, decoded exactly.

A response long frame carries, after its CI field, a header and data records:

* CI ``72``: 12-byte header = identification number (8 BCD digits, LSB first), manufacturer (2 bytes, three
  letters of 5 bits each, A = 1), version, medium, access number, status, signature; CI ``7A``: 4-byte header
  (access number, status, signature); CI ``78``: no header.
* A record is DIF [DIFE...] VIF [VIFE...] data. The DIF gives the data field (bits 0-3), the function
  (bits 4-5: instantaneous, maximum, minimum, value during error) and the least significant storage bit
  (bit 6); each DIFE adds 4 storage bits, 2 tariff bits and 1 subunit bit. The VIF names the quantity and
  its decimal exponent (primary table, for example ``0001 0nnn`` = volume in 10^(nnn-6) m³); ``FB``/``FD``
  select the extension tables, ``7C``/``FC`` a plain-text unit, ``7F``/``FF`` manufacturer specific.
* DIF ``0F`` / ``1F``: manufacturer specific data up to the end (``1F``: more records follow in the next
  telegram); DIF ``2F`` is a filler byte.

Values stay exact: an integer or BCD field becomes an integer mantissa, the VIF's exponent becomes the scaler
(``04 13 87 D6 12 00`` is 1234567 x 10^-3 m³). Integers are signed (type B); a BCD field whose top nibble is
``F`` is negative; a BCD field with any other non-decimal digit has no value (:attr:`Record.error`), as has a
type F time stamp flagged invalid. CI ``70`` (the slave reports an application error) and a telegram whose
structure is broken (a record cut short, too many extension bytes, an unknown CI) raise
:class:`TelegramError`: nothing of it is used.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import struct
from dataclasses import dataclass, field

from bab.units import Unit

from .frame import CI_APPLICATION_ERROR, CI_RSP_LONG, CI_RSP_NONE, CI_RSP_SHORT

MAX_EXTENSIONS = 10  # DIFEs / VIFEs per record (EN 13757-3)


class TelegramError(ValueError):
    """The variable data structure cannot be decoded; ``reason`` is a short counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Function(enum.IntEnum):
    INSTANTANEOUS = 0
    MAXIMUM = 1
    MINIMUM = 2
    ERROR_STATE = 3


class Quantity(enum.Enum):
    """What a primary-table VIF measures (EN 13757-3 table of primary VIF codes)."""

    ENERGY = "energy"
    VOLUME = "volume"
    MASS = "mass"
    ON_TIME = "on time"
    OPERATING_TIME = "operating time"
    POWER = "power"
    VOLUME_FLOW = "volume flow"
    MASS_FLOW = "mass flow"
    FLOW_TEMPERATURE = "flow temperature"
    RETURN_TEMPERATURE = "return temperature"
    TEMPERATURE_DIFFERENCE = "temperature difference"
    EXTERNAL_TEMPERATURE = "external temperature"
    PRESSURE = "pressure"
    DATE = "date"
    DATE_TIME = "date and time"
    HCA_UNITS = "units for H.C.A."
    AVERAGING_DURATION = "averaging duration"
    ACTUALITY_DURATION = "actuality duration"
    FABRICATION_NUMBER = "fabrication number"
    IDENTIFICATION = "identification"
    BUS_ADDRESS = "bus address"


@dataclass(frozen=True, slots=True)
class VifMeaning:
    quantity: Quantity | None
    unit: Unit | None = None
    exponent: int = 0


_DURATION_UNITS = (Unit.SECOND, Unit.MINUTE, Unit.HOUR, Unit.DAY)


def primary_vif(code: int) -> VifMeaning | None:
    """The meaning of a primary VIF code (the VIF without its extension bit), None for codes outside it."""
    n3, n2 = code & 0x07, code & 0x03
    group = code & 0x78
    table: dict[int, tuple[Quantity, Unit, int]] = {
        0x00: (Quantity.ENERGY, Unit.WH, n3 - 3),
        0x08: (Quantity.ENERGY, Unit.J, n3),
        0x10: (Quantity.VOLUME, Unit.M3, n3 - 6),
        0x18: (Quantity.MASS, Unit.KG, n3 - 3),
        0x28: (Quantity.POWER, Unit.W, n3 - 3),
        0x30: (Quantity.POWER, Unit.J_PER_H, n3),
        0x38: (Quantity.VOLUME_FLOW, Unit.M3_PER_H, n3 - 6),
        0x50: (Quantity.MASS_FLOW, Unit.KG, n3 - 3),  # kg/h: no DLMS unit of its own
    }
    if group in table:
        q, u, e = table[group]
        return VifMeaning(q, u, e)
    if group == 0x40:
        return VifMeaning(Quantity.VOLUME_FLOW, None, n3 - 7)  # m³/min
    if group == 0x48:
        return VifMeaning(Quantity.VOLUME_FLOW, None, n3 - 9)  # m³/s
    fours: dict[int, tuple[Quantity, Unit | None, int]] = {
        0x20: (Quantity.ON_TIME, _DURATION_UNITS[n2], 0),
        0x24: (Quantity.OPERATING_TIME, _DURATION_UNITS[n2], 0),
        0x58: (Quantity.FLOW_TEMPERATURE, Unit.CELSIUS, n2 - 3),
        0x5C: (Quantity.RETURN_TEMPERATURE, Unit.CELSIUS, n2 - 3),
        0x60: (Quantity.TEMPERATURE_DIFFERENCE, Unit.K, n2 - 3),
        0x64: (Quantity.EXTERNAL_TEMPERATURE, Unit.CELSIUS, n2 - 3),
        0x68: (Quantity.PRESSURE, Unit.BAR, n2 - 3),
        0x70: (Quantity.AVERAGING_DURATION, _DURATION_UNITS[n2], 0),
        0x74: (Quantity.ACTUALITY_DURATION, _DURATION_UNITS[n2], 0),
    }
    if code & 0x7C in fours:
        q, u, e = fours[code & 0x7C]
        return VifMeaning(q, u, e)
    singles = {0x6C: Quantity.DATE, 0x6D: Quantity.DATE_TIME, 0x6E: Quantity.HCA_UNITS,
               0x78: Quantity.FABRICATION_NUMBER, 0x79: Quantity.IDENTIFICATION, 0x7A: Quantity.BUS_ADDRESS}
    if code in singles:
        return VifMeaning(singles[code])
    return None


#: Names of a few codes of the second extension table (VIF FD), for display only (never mapped).
FD_NAMES = {0x08: "access number", 0x09: "medium", 0x0A: "manufacturer", 0x0B: "parameter set identification",
            0x0C: "model/version", 0x0D: "hardware version", 0x0E: "firmware version", 0x0F: "software version",
            0x10: "customer location", 0x11: "customer", 0x16: "password", 0x17: "error flags",
            0x1A: "digital output", 0x1B: "digital input", 0x3A: "dimensionless"}


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed part of a variable data response (CI 72 gives all fields, CI 7A the last three)."""

    access_number: int
    status: int
    signature: int
    ident: str | None = None  # 8 decimal digits
    manufacturer: str | None = None  # three letters
    version: int | None = None
    medium: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One data record; ``value`` is the exact mantissa (scaled by 10^``exponent``) when it has one."""

    dif: int
    difes: tuple[int, ...]
    vif: int | None
    vifes: tuple[int, ...]
    data: bytes
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: Function = Function.INSTANTANEOUS
    meaning: VifMeaning | None = None  # primary-table meaning (None for extension tables, text units ...)
    plain_unit: str | None = None  # VIF 7C / FC
    value: int | None = None  # integer or BCD mantissa
    real: float | None = None  # data field type 5 (32-bit IEEE 754)
    text: str | None = None  # variable length ASCII
    time: dt.datetime | dt.date | None = None  # type F / G time stamps (naive: the meter's local time)
    error: str | None = None  # why a field that should have a value has none

    @property
    def header_bytes(self) -> bytes:
        return bytes((self.dif, *self.difes, *((self.vif,) if self.vif is not None else ()), *self.vifes))

    @property
    def exponent(self) -> int:
        return self.meaning.exponent if self.meaning is not None else 0

    @property
    def plain(self) -> bool:
        """A record without DIFE-selected tariff/subunit and without VIF extensions: its VIF says it all."""
        return not self.vifes and self.tariff == 0 and self.subunit == 0 and self.vif is not None \
            and self.vif < 0x80

    def describe(self) -> str:
        if self.meaning is not None and self.meaning.quantity is not None:
            what = self.meaning.quantity.value
        elif self.vif is not None and self.vif & 0x7F == 0x7D and self.vifes:
            what = FD_NAMES.get(self.vifes[0] & 0x7F, f"FD {self.vifes[0]:02X}")
        else:
            what = self.plain_unit or (f"VIF {self.vif:02X}" if self.vif is not None else "no VIF")
        return f"{self.header_bytes.hex(' ').upper()}: {what}"


@dataclass(slots=True)
class Telegram:
    """A decoded RSP_UD: its header, its records, and whether more telegrams follow."""

    ci: int
    header: Header | None
    records: list[Record] = field(default_factory=list)
    more_follows: bool = False
    manufacturer_data: bytes = b""


def bcd_digits(raw: bytes) -> str | None:
    """The digits of a BCD field, most significant first (None if a nibble is not a decimal digit)."""
    out = []
    for b in reversed(raw):
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            return None
        out.append(f"{hi}{lo}")
    return "".join(out)


def manufacturer_code(raw: int) -> str:
    """The three letters of the 2-byte manufacturer field (EN 62056-21 FLAG ID)."""
    return "".join(chr(((raw >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def manufacturer_field(letters: str) -> int:
    """The inverse of :func:`manufacturer_code`."""
    if len(letters) != 3 or not all("A" <= c <= "Z" for c in letters.upper()):
        raise ValueError(f"a manufacturer is three letters A-Z, got {letters!r}")
    a, b, c = (ord(ch) - 64 for ch in letters.upper())
    return (a << 10) | (b << 5) | c


def _bcd_value(raw: bytes) -> tuple[int | None, str | None]:
    """Mantissa of a BCD field; a top nibble F marks a negative number (EN 13757-3 type A). An empty field (a
    variable-length BCD record of length 0) has no value."""
    if not raw:
        return None, "empty BCD field"
    if raw[-1] >> 4 == 0x0F:
        digits = bcd_digits(raw[:-1] + bytes((raw[-1] & 0x0F,)))
        return (-int(digits), None) if digits is not None else (None, "invalid BCD digit")
    digits = bcd_digits(raw)
    return (int(digits), None) if digits is not None else (None, "invalid BCD digit")


def _year(low: int, high: int) -> int:
    yy = low | high
    return 2000 + yy if yy <= 80 else 1900 + yy


def date_type_g(raw: bytes) -> dt.date | None:
    """Type G (2 bytes): day, month, year in 7 bits; None for an invalid or unset date."""
    b0, b1 = raw
    day, month = b0 & 0x1F, b1 & 0x0F
    try:
        return dt.date(_year((b0 & 0xE0) >> 5, (b1 & 0xF0) >> 1), month, day)
    except ValueError:
        return None


def datetime_type_f(raw: bytes) -> dt.datetime | None:
    """Type F (4 bytes): minute, hour, day, month, year; None when flagged invalid (IV bit) or impossible."""
    b0, b1, b2, b3 = raw
    if b0 & 0x80:
        return None
    try:
        return dt.datetime(_year((b2 & 0xE0) >> 5, (b3 & 0xF0) >> 1), b3 & 0x0F, b2 & 0x1F, b1 & 0x1F,
                           b0 & 0x3F)
    except ValueError:
        return None


_FIXED_LENGTH = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 4, 6: 6, 7: 8, 8: 0, 9: 1, 10: 2, 11: 3, 12: 4, 14: 6}


def decode_response(ci: int, data: bytes) -> Telegram:
    """Decode the CI field and user data of an RSP_UD long frame; raises :class:`TelegramError`."""
    if ci == CI_RSP_LONG:
        if len(data) < 12:
            raise TelegramError("bad_header", f"CI 72 needs a 12-byte header, got {len(data)} bytes")
        ident = bcd_digits(data[0:4])
        header = Header(data[8], data[9], int.from_bytes(data[10:12], "little"), ident,
                        manufacturer_code(int.from_bytes(data[4:6], "little")), data[6], data[7])
        body = data[12:]
    elif ci == CI_RSP_SHORT:
        if len(data) < 4:
            raise TelegramError("bad_header", f"CI 7A needs a 4-byte header, got {len(data)} bytes")
        header = Header(data[0], data[1], int.from_bytes(data[2:4], "little"))
        body = data[4:]
    elif ci == CI_RSP_NONE:
        header, body = None, data
    elif ci == CI_APPLICATION_ERROR:
        code = data[0] if data else None
        raise TelegramError("application_error", f"the slave reports an application error (CI 70, code "
                            f"{'none' if code is None else f'{code:#04x}'})")
    else:
        raise TelegramError("unsupported_ci", f"CI {ci:#04x} is not a variable data response")
    telegram = Telegram(ci, header)
    _records(body, telegram)
    return telegram


def _take(body: bytes, i: int, n: int, what: str) -> bytes:
    if i + n > len(body):
        raise TelegramError("bad_record", f"record cut short: {what} needs {n} bytes at offset {i}")
    return body[i:i + n]


def _records(body: bytes, telegram: Telegram) -> None:
    i = 0
    while i < len(body):
        start = i
        dif = body[i]
        i += 1
        if dif == 0x2F:  # idle filler
            continue
        if dif in (0x0F, 0x1F):
            telegram.manufacturer_data = bytes(body[i:])
            telegram.more_follows = dif == 0x1F
            return
        if dif & 0x0F == 0x0F:
            raise TelegramError("bad_record", f"special DIF {dif:#04x} at offset {start}")
        difes: list[int] = []
        ext = dif & 0x80
        while ext:
            b = _take(body, i, 1, "a DIFE")[0]
            i += 1
            difes.append(b)
            if len(difes) > MAX_EXTENSIONS:
                raise TelegramError("bad_record", f"more than {MAX_EXTENSIONS} DIFEs at offset {start}")
            ext = b & 0x80
        vif = _take(body, i, 1, "the VIF")[0]
        i += 1
        plain_unit = None
        if vif & 0x7F == 0x7C:
            n = _take(body, i, 1, "a plain-text VIF length")[0]
            plain_unit = _take(body, i + 1, n, "a plain-text VIF")[::-1].decode("ascii", "replace")
            i += 1 + n
        vifes: list[int] = []
        ext = vif & 0x80
        while ext:
            b = _take(body, i, 1, "a VIFE")[0]
            i += 1
            vifes.append(b)
            if len(vifes) > MAX_EXTENSIONS:
                raise TelegramError("bad_record", f"more than {MAX_EXTENSIONS} VIFEs at offset {start}")
            ext = b & 0x80
        kind = dif & 0x0F
        if kind == 0x0D:
            lvar = _take(body, i, 1, "the LVAR byte")[0]
            i += 1
            n = _lvar_length(lvar, start)
            raw = _take(body, i, n, "variable length data")
        else:
            raw = _take(body, i, _FIXED_LENGTH[kind], f"data type {kind:X}")
            lvar = None
        i += len(raw)
        telegram.records.append(_record(dif, tuple(difes), vif, tuple(vifes), raw, plain_unit, lvar))


def _lvar_length(lvar: int, offset: int) -> int:
    if lvar <= 0xBF:
        return lvar
    if 0xC0 <= lvar <= 0xDF:
        return lvar & 0x0F
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)
    if lvar == 0xF5:
        return 6
    if lvar == 0xF6:
        return 8
    raise TelegramError("bad_record", f"reserved LVAR {lvar:#04x} at offset {offset}")


def _record(dif: int, difes: tuple[int, ...], vif: int, vifes: tuple[int, ...], raw: bytes,
            plain_unit: str | None, lvar: int | None) -> Record:
    storage, tariff, subunit = (dif >> 6) & 0x01, 0, 0
    for k, b in enumerate(difes):
        storage |= (b & 0x0F) << (1 + 4 * k)
        tariff |= ((b >> 4) & 0x03) << (2 * k)
        subunit |= ((b >> 6) & 0x01) << k
    code = vif & 0x7F
    meaning = primary_vif(code) if code <= 0x7A else None
    rec: dict = {"storage": storage, "tariff": tariff, "subunit": subunit, "function": Function((dif >> 4) & 0x03),
                 "meaning": meaning, "plain_unit": plain_unit}
    kind = dif & 0x0F
    quantity = meaning.quantity if meaning else None
    if kind in (1, 2, 3, 4, 6, 7):
        number = int.from_bytes(raw, "little", signed=True)
        if quantity is Quantity.DATE and kind == 2:
            rec["time"] = date_type_g(raw)
            rec["error"] = None if rec["time"] else "invalid date"
        elif quantity is Quantity.DATE_TIME and kind == 4:
            rec["time"] = datetime_type_f(raw)
            rec["error"] = None if rec["time"] else "invalid time stamp"
        elif quantity in (Quantity.DATE, Quantity.DATE_TIME):
            rec["error"] = f"time stamp in data type {kind:X} not decoded"
        else:
            rec["value"] = number
    elif kind == 5:
        (real,) = struct.unpack("<f", raw)
        if math.isfinite(real):
            rec["real"] = real
        else:
            rec["error"] = "not a finite number"
    elif kind in (9, 10, 11, 12, 14):
        rec["value"], rec["error"] = _bcd_value(raw)
    elif kind == 0x0D:
        assert lvar is not None
        if lvar <= 0xBF:
            rec["text"] = raw[::-1].decode("latin-1")
        elif lvar <= 0xDF:
            value, err = _bcd_value(raw)
            rec["value"], rec["error"] = (-value if value is not None and lvar >= 0xD0 else value), err
        else:
            rec["value"] = int.from_bytes(raw, "little", signed=True)
    return Record(dif, difes, vif, vifes, raw, **rec)
