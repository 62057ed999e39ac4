"""The simulated meter: registers from the configuration, adjustable at run time, with fault states.

Used by ``bab demo``, by the tests, and by test labs that need a meter with known values. Energy registers
advance with the configured power when ``advance: true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bab.obis import Obis
from bab.reading import Reading
from bab.schema import Bool, Custom, DictOf, Float

from .api import Driver, DriverContext, Health, ReadingSink

# Unit symbol for the quantities the simulated meter knows; others are unit-less counts.
_UNITS = {(1, 8): "kWh", (2, 8): "kWh", (16, 7): "W", (36, 7): "W", (56, 7): "W", (76, 7): "W",
          (32, 7): "V", (52, 7): "V", (72, 7): "V", (31, 7): "A", (51, 7): "A", (71, 7): "A", (14, 7): "Hz"}


def unit_symbol(obis: Obis) -> str:
    """The unit a simulated register of this OBIS code is configured in (energy kWh, power W, ...)."""
    if obis.c in (1, 2) and obis.d == 8:
        return "kWh"
    return _UNITS.get((obis.c, obis.d), "")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


class SimulatedDriver(Driver):
    """A meter whose values come from the YAML ``registers`` map (OBIS -> value in kWh, W, V, A, Hz)."""

    options_schema = {
        "registers": DictOf(
            key=Custom(convert=lambda v: Obis.parse(str(v)), what="an OBIS code such as '1-0:1.8.0'"),
            value=Custom(convert=_number, what="a number"),
            doc="OBIS code -> value (energy in kWh, power in W, voltage in V, current in A)",
            default=lambda: {Obis.parse("1-0:1.8.0"): Decimal("12345.678"), Obis.parse("1-0:2.8.0"): Decimal(0),
                             Obis.parse("1-0:16.7.0"): Decimal("432.1")},
        ),
        "interval": Float(doc="seconds between published readings", default=1.0, min=0.05),
        "advance": Bool(doc="advance 1.8.0/2.8.0 with the configured 16.7.0 power", default=False),
    }

    def __init__(self, options: Mapping[str, Any], context: DriverContext) -> None:
        super().__init__(options, context)
        self.values: dict[Obis, Decimal] = dict(options.get("registers") or {})
        self.fault: Health | None = None  # a forced fault state for gateway tests (stale, source lost)
        self._changed = asyncio.Event()

    def set_value(self, obis: Obis | str, value: Decimal | float | int | str) -> None:
        """Change a register at run time (seen by the gateway on its next poll)."""
        if isinstance(obis, str):
            obis = Obis.parse(obis)
        self.values[obis] = _number(value)
        self._changed.set()

    def set_fault(self, fault: Health | None) -> None:
        self.fault = fault
        self._changed.set()

    def readings(self, now: float) -> list[Reading]:
        return [Reading.from_text(obis, value, unit_symbol(obis), time=now) for obis, value in self.values.items()]

    def _advance(self, seconds: float) -> None:
        power = self.values.get(Obis(1, 0, 16, 7, 0))
        if power is None:
            return
        kwh = power * Decimal(str(seconds)) / Decimal(3_600_000)
        key = Obis(1, 0, 1, 8, 0) if power >= 0 else Obis(1, 0, 2, 8, 0)
        if key in self.values:
            self.values[key] += abs(kwh).quantize(Decimal("0.000001"))

    async def run(self, sink: ReadingSink) -> None:
        sink.set_health(Health.STARTING)
        last = time.monotonic()
        health: Health | None = None
        while True:
            now = time.monotonic()
            if self.options.get("advance"):
                self._advance(now - last)
            last = now
            want = self.fault or Health.OK
            if want != health:
                health = want
                sink.set_health(health, "simulated fault" if self.fault else "")
            if self.fault is None:
                sink.publish(self.readings(time.time()))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.get("interval", 1.0)):
                    await self._changed.wait()


__all__ = ["SimulatedDriver", "DriverContext"]
