"""How a legacy meter's readings become the LMN meter's objects (one named, tested place for it).

The meter entry of the YAML may say which OBIS codes are served (``serve``) and where a served value comes
from (``map``: a target fed by one source, or by the sum of several). Without a ``map`` the defaults fit
common meters, so most users write none:

* 1-0:1.8.0 / 1-0:2.8.0 missing but tariff registers 1.8.1..1.8.9 / 2.8.1..2.8.9 present: their sum
  (two-tariff meters such as EMH eHZ-GW, Holley DTZ541-ZDBA, DZG DVS-7420 "heat pump");
* 1-0:16.7.0 missing: 1-0:1.7.0 (EMH eHZ sends the total power there), else the sum of 36/56/76.7.0.

A derived value carries the statuses of its sources (ORed) and the finest scaler among them. ``factor``
multiplies a served value exactly (e.g. the current-transformer ratio of a transformer-rated meter).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bab.obis import Obis
from bab.reading import Reading, ReadingStatus

log = logging.getLogger(__name__)

E_IMPORT, E_EXPORT, P_TOTAL = Obis(1, 0, 1, 8, 0), Obis(1, 0, 2, 8, 0), Obis(1, 0, 16, 7, 0)

DEFAULTS: dict[Obis, tuple[tuple[Obis, ...], ...]] = {
    # target: alternatives, tried in order; each alternative is summed
    E_IMPORT: (tuple(Obis(1, 0, 1, 8, t) for t in range(1, 10)),),
    E_EXPORT: (tuple(Obis(1, 0, 2, 8, t) for t in range(1, 10)),),
    P_TOTAL: ((Obis(1, 0, 1, 7, 0),), (Obis(1, 0, 36, 7, 0), Obis(1, 0, 56, 7, 0), Obis(1, 0, 76, 7, 0))),
}


class MappingError(ValueError):
    pass


def sum_readings(target: Obis, parts: Sequence[Reading]) -> Reading:
    """The sum of ``parts`` (same unit) as a reading of ``target``."""
    units = {p.unit for p in parts}
    if len(units) != 1:
        raise MappingError(f"cannot add {', '.join(str(p.obis) for p in parts)}: different units")
    scaler = min(p.scaler for p in parts)
    value = sum(p.rescaled(scaler).value for p in parts)
    status = ReadingStatus.OK
    for p in parts:
        status |= p.status
    times = [p.time for p in parts if p.time is not None]
    return Reading(target, value, scaler, parts[0].unit, status, min(times) if times else None)


def scale(r: Reading, factor: Decimal) -> Reading:
    """``r`` multiplied by ``factor``, exactly (the product's digits become mantissa and scaler)."""
    sign, digits, exponent = (r.decimal * factor).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    return Reading(r.obis, mantissa, exponent, r.unit, r.status, r.time)


@dataclass
class ReadingMap:
    explicit: Mapping[Obis, tuple[Obis, ...]] = field(default_factory=dict)
    serve: frozenset[Obis] | None = None  # None: everything the driver delivers (plus derived values)
    factor: Mapping[Obis, Decimal] = field(default_factory=dict)  # exact multipliers of served values
    skipped: int = 0  # derivations refused (sources in different units)

    def apply(self, readings: Iterable[Reading]) -> list[Reading]:
        by_obis = {r.obis: r for r in readings}
        out = dict(by_obis)
        for target, sources in self.explicit.items():
            parts = [by_obis[s] for s in sources if s in by_obis]
            if parts and len(parts) == len(sources):
                self._derive(out, target, parts)
        for target, alternatives in DEFAULTS.items():
            if target in out or target in self.explicit:
                continue
            for sources in alternatives:
                parts = [by_obis[s] for s in sources if s in by_obis]
                if parts and self._derive(out, target, parts):
                    break
        if self.serve is not None:
            out = {k: v for k, v in out.items() if k in self.serve}
        for obis, f in self.factor.items():
            if obis in out:
                out[obis] = scale(out[obis], f)
        return list(out.values())


    def _derive(self, out: dict[Obis, Reading], target: Obis, parts: list[Reading]) -> bool:
        try:
            out[target] = sum_readings(target, parts)
        except MappingError as exc:
            self.skipped += 1
            log.warning("%s not derived: %s", target, exc)
            return False
        return True


class MappedSink:
    """A ReadingSink that maps before it stores (wraps the meter's ValueStore)."""

    def __init__(self, inner, mapping: ReadingMap) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.mapping = mapping

    def publish(self, readings: Sequence[Reading]) -> None:
        self.inner.publish(self.mapping.apply(readings))

    def set_health(self, health, detail: str = "") -> None:  # type: ignore[no-untyped-def]
        self.inner.set_health(health, detail)
