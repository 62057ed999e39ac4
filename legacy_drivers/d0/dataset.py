"""D0 data lines (IEC 62056-21 data sets ``ID(value*unit)``) -> :class:`bab.reading.Reading` objects.

A data set is an identifier followed by one or more value groups in brackets: ``1.8.0(012345.678*kWh)``,
``1.6.1(0002.134*kW)(2311201215)`` (a maximum with its time stamp), ``0.0.0(12345678)`` (no unit). One line may
hold several data sets. The identifier is an OBIS code in full (``1-0:1.8.0*255``) or reduced form (``1.8.0``,
``1.8.0*02``, ``1.8.0&02``, ``C.1.0``, ``F.F``), with the letters C, F, L, P standing for 96, 97, 98, 99
(IEC 62056-61). Reduced codes get A-B = 1-0 (electricity) or 0-0 for abstract objects (C >= 96), E = 0 when
omitted and F = 255.

The first value group of a set is the value; further groups (time stamps) are kept in :class:`DataSet` but do
not become readings. Numbers are exact decimals: ``012345.678*kWh`` is 12345678 Wh x 10^0 (the unit prefix is
folded into the scaler by :meth:`Reading.from_text`). Values that are not plain decimal numbers (dates,
times, serial numbers) and the clock registers ``0.9.x`` are skipped without counting as errors; unknown
units and unmappable identifiers are counted drops. The error register ``F.F`` (0-0:97.97.0) is a hex bit
field: when it is not zero, every reading of the readout carries :attr:`ReadingStatus.METER_ERROR`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from bab.obis import Obis
from bab.reading import Reading, ReadingStatus
from bab.units import Unit

log = logging.getLogger(__name__)

_SET = re.compile(r"(?P<id>[^()]*)(?P<values>(?:\([^()]*\))+)")
_GROUP = re.compile(r"\(([^()]*)\)")
_ID = re.compile(
    r"^(?:(?P<a>\d{1,3})-(?P<b>\d{1,3}):)?(?P<c>\d{1,3}|[CFLP])\.(?P<d>\d{1,3}|[CFLP])"
    r"(?:\.(?P<e>\d{1,3}))?(?:[*&](?P<f>\d{1,3}))?$"
)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
ERROR_REGISTER = Obis(0, 0, 97, 97, 0)


@dataclass(frozen=True)
class DataSet:
    """One ``ID(value*unit)(...)`` data set as text."""

    ident: str
    values: tuple[tuple[str, str], ...]  # (value, unit) per bracket group; unit "" when absent


@dataclass
class ParseResult:
    """Readings from one data message and what was dropped on the way."""

    readings: list[Reading] = field(default_factory=list)
    error_register: int | None = None  # the F.F value when present
    drops: Counter[str] = field(default_factory=Counter)

    @property
    def meter_error(self) -> bool:
        return bool(self.error_register)


def obis_of(ident: str) -> Obis:
    """The OBIS code of a D0 identifier (full or reduced); ValueError when it is not one."""
    m = _ID.match(ident.strip())
    if not m:
        raise ValueError(f"not an OBIS identifier: {ident!r}")
    g = m.groupdict()

    def group(text: str) -> int:
        return _LETTERS[text] if text in _LETTERS else int(text)

    c, d = group(g["c"]), group(g["d"])
    if g["a"] is not None:
        a, b = int(g["a"]), int(g["b"])
    else:
        a, b = (0, 0) if c >= 96 else (1, 0)
    return Obis(a, b, c, d, int(g["e"] or 0), int(g["f"]) if g["f"] is not None else 255)


def data_sets(text: str) -> list[DataSet]:
    """Split data message text into data sets (lines, several sets per line, the end mark ``!`` ignored)."""
    out: list[DataSet] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "!":
            continue
        for m in _SET.finditer(line):
            values = []
            for g in _GROUP.findall(m.group("values")):
                value, _, unit = g.partition("*")
                values.append((value.strip(), unit.strip()))
            out.append(DataSet(m.group("id").strip(), tuple(values)))
    return out


def _unit(symbol: str) -> str:
    """A unit symbol as bab.units knows it (D0 meters also write ``KWH``, ``kwh``)."""
    try:
        Unit.parse(symbol)
        return symbol
    except ValueError:
        pass
    for known in ("kWh", "kW", "Wh", "W", "kvarh", "kvar", "varh", "var", "kVAh", "kVA", "VAh", "VA",
                  "MWh", "MW", "V", "A", "Hz"):
        if symbol.lower() == known.lower():
            return known
    raise ValueError(f"unknown unit {symbol!r}")


def parse_readout(text: str, time: float | None = None) -> ParseResult:
    """Readings of one D0 data message (see the module docstring for the rules)."""
    result = ParseResult()
    seen: set[Obis] = set()
    for ds in data_sets(text):
        if not ds.ident:
            result.drops["no_identifier"] += 1
            continue
        try:
            obis = obis_of(ds.ident)
        except ValueError:
            result.drops["unmapped_identifier"] += 1
            log.debug("D0: unmapped identifier %r", ds.ident)
            continue
        value, unit = ds.values[0]
        if obis.c == 97 and obis.d == 97:  # error register (hex bit field)
            try:
                result.error_register = int(value, 16) if value else 0
            except ValueError:
                result.drops["bad_error_register"] += 1
                continue
            if obis not in seen:
                seen.add(obis)
                result.readings.append(Reading(obis, result.error_register, 0, Unit.COUNT, time=time))
            continue
        if not _NUMBER.match(value) or (obis.c == 0 and obis.d == 9):
            continue  # a date, time or serial number (0.9.1 time and 0.9.2 date may be all digits)
        if obis in seen:
            result.drops["duplicate"] += 1
            continue
        try:
            reading = Reading.from_text(obis, value, _unit(unit), time=time)
        except ValueError:
            result.drops["bad_value"] += 1
            log.debug("D0: cannot use %s(%s*%s)", ds.ident, value, unit)
            continue
        seen.add(obis)
        result.readings.append(reading)
    if result.meter_error:
        result.readings = [
            Reading(r.obis, r.value, r.scaler, r.unit, r.status | ReadingStatus.METER_ERROR, r.time)
            for r in result.readings
        ]
    return result
