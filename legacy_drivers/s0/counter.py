"""Sans-I/O S0 pulse counting: debounce by minimum pulse width and reconstruct the energy register.

EN 62053-31 (LMN-STACK.md section 9.3) requires a pulse to last at least 30 ms. :class:`PulseCounter` counts
a pulse on its trailing edge when the line was active for at least ``min_width`` seconds; shorter active
phases (contact bounce, interference) are counted as glitches and ignored, and a bounce at the start of a
pulse simply restarts it. The register is ``start_value + pulses / meter_constant`` kWh, computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from bab.obis import Obis
from bab.reading import Reading, ReadingStatus

from .edges import Edge

ENERGY_IMPORT = Obis(1, 0, 1, 8, 0)
#: The register is published in kWh with 6 decimals (mWh): scaler -3 on Wh.
RESOLUTION = Decimal("0.000001")


@dataclass
class PulseCounter:
    """Debounces edges into pulses (see the module docstring); ``pulses`` is the running total."""

    min_width_ns: int = 30_000_000
    pulses: int = 0
    glitches: int = 0
    _active_since: int | None = field(default=None, repr=False)

    def edge(self, edge: Edge) -> bool:
        """Feed one edge; True when it completed a valid pulse."""
        if edge.active:
            if self._active_since is None:
                self._active_since = edge.time_ns
            return False
        start, self._active_since = self._active_since, None
        if start is None:
            return False  # trailing edge without a leading one (started while we were not listening)
        if edge.time_ns - start >= self.min_width_ns:
            self.pulses += 1
            return True
        self.glitches += 1
        return False


@dataclass(frozen=True)
class Register:
    """An S0-derived energy register: start value (kWh), meter constant (impulses per kWh), pulses since."""

    start_kwh: Decimal
    meter_constant: int
    pulses: int = 0
    configured_start: Decimal | None = None  # the start value as configured (start_kwh may hold folded pulses)

    @property
    def configured(self) -> Decimal:
        return self.start_kwh if self.configured_start is None else self.configured_start

    @property
    def kwh(self) -> Decimal:
        return (self.start_kwh + Decimal(self.pulses) / Decimal(self.meter_constant)).quantize(
            RESOLUTION, rounding=ROUND_DOWN)

    def reading(self, time: float | None = None, obis: Obis = ENERGY_IMPORT) -> Reading:
        """The register as a reading with status ESTIMATED (a pulse count is derived, not read)."""
        return Reading.from_text(obis, self.kwh, "kWh", status=ReadingStatus.ESTIMATED, time=time)

    def to_json(self) -> dict[str, object]:
        return {"version": 1, "start_kwh": str(self.start_kwh), "meter_constant": self.meter_constant,
                "pulses": self.pulses, "configured_start_kwh": str(self.configured)}

    @classmethod
    def from_json(cls, obj: object) -> Register:
        """Parse a stored register; ValueError when it is not one."""
        if not isinstance(obj, dict) or obj.get("version") != 1:
            raise ValueError("not an S0 register state (version 1)")
        try:
            start = Decimal(str(obj["start_kwh"]))
            configured = Decimal(str(obj.get("configured_start_kwh", obj["start_kwh"])))
            constant, pulses = obj["meter_constant"], obj["pulses"]
        except (KeyError, ArithmeticError) as exc:
            raise ValueError(f"bad S0 register state: {exc}") from None
        if not isinstance(constant, int) or constant <= 0 or not isinstance(pulses, int) or pulses < 0:
            raise ValueError("bad S0 register state: meter_constant and pulses must be whole numbers")
        if not start.is_finite() or not configured.is_finite():
            raise ValueError("bad S0 register state: start_kwh")
        return cls(start, constant, pulses, configured)

    def reconfigured(self, start_kwh: Decimal, meter_constant: int) -> Register:
        """This register under a (possibly) changed configuration.

        A new start value starts a new count from it (the installer set the register). A new meter constant
        alone folds the pulses so far into the start value, so no energy is lost or rescaled."""
        if start_kwh != self.configured:
            return Register(start_kwh, meter_constant, 0, start_kwh)
        if meter_constant != self.meter_constant:
            return Register(self.kwh, meter_constant, 0, self.configured)
        return self

    def with_pulses(self, pulses: int) -> Register:
        return Register(self.start_kwh, self.meter_constant, pulses, self.configured_start)
