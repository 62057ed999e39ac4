"""Which M-Bus data records become which LMN readings: one table per medium (EN 13757-3 -> OBIS/COSEM).

The medium is that of the LMN meter, i.e. the first digit of its meter ID (:mod:`bab.medium`); the slave's
header must name a matching M-Bus medium (gas ``03``; water ``07``/cold water ``16``; warm ``06``/hot water
``15``; heat ``04``/``0C``, cooling ``0A``/``0B``, heat/cooling ``0D``), otherwise nothing is published.

===========  ==================================  ================  ===========================================
medium       M-Bus record (primary VIF)          OBIS              unit
===========  ==================================  ================  ===========================================
gas          volume ``0001 0nnn``                7-0:3.0.0         m³ (scaler nnn-6)
water        volume ``0001 0nnn``                8-0:1.0.0 (cold)  m³; 9-0:1.0.0 for warm/hot water meters
water        volume flow ``0011 1nnn``           8-0:2.0.0         m³/h
heat/cool    energy ``0000 0nnn`` / ``0000 1nnn``  6-0:1.0.0       Wh (scaler nnn-3) or J (scaler nnn): kWh/GJ
heat/cool    volume ``0001 0nnn``                6-0:2.0.0         m³
heat/cool    power ``0010 1nnn``                 6-0:8.0.0         W
heat/cool    volume flow ``0011 1nnn``           6-0:9.0.0         m³/h
heat/cool    flow / return temperature           6-0:10.0.0/11.0.0 °C (``0101 10nn`` / ``0101 11nn``)
heat/cool    temperature difference              6-0:12.0.0        K (``0110 00nn``)
===========  ==================================  ================  ===========================================

(cooling meters use A = 5 in place of 6.) Only *plain current* records are mapped: function instantaneous,
storage number 0, tariff 0, subunit 0 and no VIF extension (a VIFE changes the meaning, e.g. ``94 7F`` is a
manufacturer-specific volume, and tariff/storage records are other registers). Of several such records for
one OBIS code the first is taken if they agree; if they disagree, none is published (counted
``ambiguous``). A record without a usable value (bad BCD, invalid time) is never mapped.

The meter's own clock (the first plain date-and-time record, type F) becomes the capture time of every
reading of the readout; the header's status byte sets METER_ERROR on every reading when any of its bits 0-4
(application busy/error, power low, permanent error, temporary error) is set, and is itself published as
the error register 0-0:97.97.0.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from bab.medium import Medium
from bab.obis import Obis
from bab.reading import Reading, ReadingStatus
from bab.units import Unit

from .records import Function, Header, Quantity, Record

ERROR_REGISTER = Obis(0, 0, 97, 97, 0)
STATUS_ERROR_BITS = 0x1F

#: M-Bus medium codes (header byte) that fit each LMN medium.
MBUS_MEDIA: dict[Medium, frozenset[int]] = {
    Medium.GAS: frozenset({0x03}),
    Medium.COLD_WATER: frozenset({0x07, 0x16}),
    Medium.HOT_WATER: frozenset({0x06, 0x15}),
    Medium.HEAT: frozenset({0x04, 0x0C, 0x0D}),
    Medium.COOLING: frozenset({0x0A, 0x0B, 0x0D}),
}

MEDIUM_NAMES = {0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas", 0x04: "heat (outlet)",
                0x05: "steam", 0x06: "warm water", 0x07: "water", 0x08: "heat cost allocator",
                0x09: "compressed air", 0x0A: "cooling (outlet)", 0x0B: "cooling (inlet)", 0x0C: "heat (inlet)",
                0x0D: "heat/cooling", 0x0E: "bus/system", 0x15: "hot water", 0x16: "cold water"}


def _water(a: int) -> dict[Quantity, tuple[Obis, tuple[Unit, ...]]]:
    return {Quantity.VOLUME: (Obis(a, 0, 1, 0, 0), (Unit.M3,)),
            Quantity.VOLUME_FLOW: (Obis(a, 0, 2, 0, 0), (Unit.M3_PER_H,))}


def _thermal(a: int) -> dict[Quantity, tuple[Obis, tuple[Unit, ...]]]:
    return {Quantity.ENERGY: (Obis(a, 0, 1, 0, 0), (Unit.WH, Unit.J)),
            Quantity.VOLUME: (Obis(a, 0, 2, 0, 0), (Unit.M3,)),
            Quantity.POWER: (Obis(a, 0, 8, 0, 0), (Unit.W,)),
            Quantity.VOLUME_FLOW: (Obis(a, 0, 9, 0, 0), (Unit.M3_PER_H,)),
            Quantity.FLOW_TEMPERATURE: (Obis(a, 0, 10, 0, 0), (Unit.CELSIUS,)),
            Quantity.RETURN_TEMPERATURE: (Obis(a, 0, 11, 0, 0), (Unit.CELSIUS,)),
            Quantity.TEMPERATURE_DIFFERENCE: (Obis(a, 0, 12, 0, 0), (Unit.K,))}


RULES: dict[Medium, dict[Quantity, tuple[Obis, tuple[Unit, ...]]]] = {
    Medium.GAS: {Quantity.VOLUME: (Obis(7, 0, 3, 0, 0), (Unit.M3,))},
    Medium.COLD_WATER: _water(8),
    Medium.HOT_WATER: _water(9),
    Medium.HEAT: _thermal(6),
    Medium.COOLING: _thermal(5),
}

SUPPORTED_MEDIA = tuple(RULES)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_seconds(stamp: dt.datetime) -> float:
    """POSIX seconds of ``stamp``. An aware time is computed without the C library, so a meter clock after
    2038 works on platforms with a 32-bit ``time_t`` (Debian bookworm armhf), where ``timestamp()`` raises
    OverflowError; a naive (local) time needs the C library's time zone rules and may still raise there."""
    if stamp.tzinfo is not None:
        return (stamp - _EPOCH).total_seconds()
    return stamp.timestamp()


@dataclass
class MappedReadout:
    readings: list[Reading] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)
    meter_time: dt.datetime | None = None


def medium_fits(medium: Medium, mbus_medium: int) -> bool:
    return mbus_medium in MBUS_MEDIA.get(medium, frozenset())


def _current(r: Record) -> bool:
    return r.function is Function.INSTANTANEOUS and r.storage == 0 and r.plain


def _decimal(r: Record) -> Decimal | None:
    if r.error is not None:
        return None
    if r.value is not None:
        return Decimal(r.value).scaleb(r.exponent)
    if r.real is not None:
        return Decimal(repr(r.real)).scaleb(r.exponent)
    return None


def map_readout(records: Iterable[Record], header: Header | None, medium: Medium, *,
                capture_time: float | None = None, meter_time: str = "local") -> MappedReadout:
    """The LMN readings of one readout (all its telegrams' records, in order).

    ``capture_time`` (UNIX seconds) is used when the meter sends no clock or ``meter_time`` is ``"ignore"``;
    ``"local"`` / ``"utc"`` say how the meter's clock (which has no zone) is read.
    """
    out = MappedReadout()
    rules = RULES[medium]
    chosen: dict[Obis, tuple[Decimal, Unit]] = {}
    ambiguous: set[Obis] = set()
    for r in records:
        if not _current(r) or r.meaning is None or r.meaning.quantity is None:
            continue
        q = r.meaning.quantity
        if q is Quantity.DATE_TIME:
            if out.meter_time is None and isinstance(r.time, dt.datetime):
                out.meter_time = r.time
            continue
        rule = rules.get(q)
        if rule is None:
            continue
        obis, units = rule
        if r.meaning.unit not in units:
            out.drops["unit_not_mapped"] += 1
            continue
        value = _decimal(r)
        if value is None:
            out.drops["no_value"] += 1
            continue
        if obis in chosen:
            if chosen[obis] != (value, r.meaning.unit):
                ambiguous.add(obis)
            continue
        chosen[obis] = (value, r.meaning.unit)
    for obis in ambiguous:
        del chosen[obis]
        out.drops["ambiguous"] += 1
    when = capture_time
    if out.meter_time is not None and meter_time != "ignore":
        stamp = out.meter_time if meter_time == "local" else out.meter_time.replace(tzinfo=dt.UTC)
        try:
            when = epoch_seconds(stamp)
        except (OverflowError, OSError, ValueError):  # local time beyond the platform's time_t (32-bit ARM)
            out.drops["meter_time_out_of_range"] += 1
    status = ReadingStatus.OK
    if header is not None and header.status & STATUS_ERROR_BITS:
        status = ReadingStatus.METER_ERROR
    for obis, (value, unit) in chosen.items():
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        out.readings.append(Reading(obis, mantissa, exponent, unit, status, when))
    if header is not None:
        out.readings.append(Reading(ERROR_REGISTER, header.status, 0, Unit.COUNT, status, when))
    return out
