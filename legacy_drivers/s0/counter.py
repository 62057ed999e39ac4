"""Sans-I/O pulse counting: debounce and reconstruct the register (S0 energy pulses, reed-contact volume pulses).

EN 62053-31 (LMN-STACK.md section 9.3) requires an S0 pulse to last at least 30 ms. :class:`PulseCounter`
counts a pulse when the line was active for at least ``min_width``; shorter active phases (contact bounce,
interference) are counted as glitches and ignored, and a bounce at the start of a pulse simply restarts it.

Reed contacts of gas and water meters also bounce when they *open*, and a slowly turning magnet can hold a
contact closed for minutes. With ``min_gap`` > 0 a pulse ends only after the line has been inactive for
``min_gap``: an interruption shorter than that (bounce, vibration) belongs to the same pulse, and the pulse
is counted once the gap is confirmed, by the next active edge after it or by :meth:`PulseCounter.tick`.
With ``min_gap`` = 0 (S0 default) the pulse counts on its trailing edge.

The register is ``start_value + pulses / meter_constant`` (impulses per kWh, S0) or ``start_value + pulses x
pulse_value`` (units per impulse, e.g. 0.01 m³/imp for a gas meter), computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from bab.obis import Obis
from bab.reading import Reading, ReadingStatus

from .edges import Edge

ENERGY_IMPORT = Obis(1, 0, 1, 8, 0)
#: The register is published with 6 decimals of its unit (kWh: mWh).
RESOLUTION = Decimal("0.000001")
UNITS = ("kWh", "m3")


@dataclass
class PulseCounter:
    """Debounces edges into pulses (see the module docstring); ``pulses`` is the running total."""

    min_width_ns: int = 30_000_000
    min_gap_ns: int = 0
    pulses: int = 0
    glitches: int = 0
    _active_since: int | None = field(default=None, repr=False)
    _released_at: int | None = field(default=None, repr=False)

    def _finish(self) -> bool:
        start, end = self._active_since, self._released_at
        self._active_since = self._released_at = None
        assert start is not None and end is not None
        if end - start >= self.min_width_ns:
            self.pulses += 1
            return True
        self.glitches += 1
        return False

    def edge(self, edge: Edge) -> bool:
        """Feed one edge; True when it completed a valid pulse."""
        if edge.active:
            counted = False
            if self._active_since is not None and self._released_at is not None:
                if edge.time_ns - self._released_at < self.min_gap_ns:
                    self._released_at = None  # a bounce inside the pulse: it goes on
                    return False
                counted = self._finish()
            if self._active_since is None:
                self._active_since = edge.time_ns
            return counted
        if self._active_since is None:
            return False  # trailing edge without a leading one (started while we were not listening)
        self._released_at = edge.time_ns
        if self.min_gap_ns <= 0:
            return self._finish()
        return False

    def tick(self, now_ns: int) -> bool:
        """The time passed without an edge: a pulse whose gap is now confirmed is finished (True if counted)."""
        if self._released_at is not None and now_ns - self._released_at >= self.min_gap_ns:
            return self._finish()
        return False


@dataclass(frozen=True)
class Register:
    """A pulse-derived register: start value, impulses per unit (``meter_constant``) or units per impulse
    (``pulse_value``), pulses since the start; the unit is kWh (energy) or m3 (volume)."""

    start_kwh: Decimal  # the start value in ``unit`` (named for the S0 energy register it first was)
    meter_constant: int | None
    pulses: int = 0
    configured_start: Decimal | None = None  # the start value as configured (start_kwh may hold folded pulses)
    pulse_value: Decimal | None = None
    unit: str = "kWh"

    def __post_init__(self) -> None:
        if (self.meter_constant is None) == (self.pulse_value is None):
            raise ValueError("a pulse register has either a meter constant or a pulse value")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}")

    @property
    def start(self) -> Decimal:
        return self.start_kwh

    @property
    def configured(self) -> Decimal:
        return self.start_kwh if self.configured_start is None else self.configured_start

    @property
    def value(self) -> Decimal:
        """The register in its unit, rounded down to :data:`RESOLUTION`."""
        if self.pulse_value is not None:
            raw = self.start_kwh + self.pulses * self.pulse_value
        else:
            assert self.meter_constant is not None
            raw = self.start_kwh + Decimal(self.pulses) / Decimal(self.meter_constant)
        return raw.quantize(RESOLUTION, rounding=ROUND_DOWN)

    @property
    def kwh(self) -> Decimal:
        return self.value

    def reading(self, time: float | None = None, obis: Obis = ENERGY_IMPORT) -> Reading:
        """The register as a reading with status ESTIMATED (a pulse count is derived, not read)."""
        return Reading.from_text(obis, self.value, self.unit, status=ReadingStatus.ESTIMATED, time=time)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"version": 1, "start_kwh": str(self.start_kwh), "meter_constant": self.meter_constant,
                                  "pulses": self.pulses, "configured_start_kwh": str(self.configured)}
        if self.pulse_value is not None or self.unit != "kWh":
            out.update(version=2, pulse_value=None if self.pulse_value is None else str(self.pulse_value),
                       unit=self.unit)
        return out

    @classmethod
    def from_json(cls, obj: object) -> Register:
        """Parse a stored register; ValueError when it is not one."""
        if not isinstance(obj, dict) or obj.get("version") not in (1, 2):
            raise ValueError("not an S0 register state (version 1 or 2)")
        try:
            start = Decimal(str(obj["start_kwh"]))
            configured = Decimal(str(obj.get("configured_start_kwh", obj["start_kwh"])))
            constant, pulses = obj["meter_constant"], obj["pulses"]
            raw_value = obj.get("pulse_value") if obj["version"] == 2 else None
            pulse_value = None if raw_value is None else Decimal(str(raw_value))
            unit = obj.get("unit", "kWh") if obj["version"] == 2 else "kWh"
        except (KeyError, ArithmeticError) as exc:
            raise ValueError(f"bad S0 register state: {exc}") from None
        if pulse_value is None and (not isinstance(constant, int) or isinstance(constant, bool) or constant <= 0):
            raise ValueError("bad S0 register state: meter_constant must be a positive whole number")
        if pulse_value is not None and (constant is not None or not pulse_value.is_finite() or pulse_value <= 0):
            raise ValueError("bad S0 register state: pulse_value")
        if not isinstance(pulses, int) or isinstance(pulses, bool) or pulses < 0:
            raise ValueError("bad S0 register state: pulses must be a whole number")
        if not start.is_finite() or not configured.is_finite():
            raise ValueError("bad S0 register state: start_kwh")
        if unit not in UNITS:
            raise ValueError("bad S0 register state: unit")
        return cls(start, constant, pulses, configured, pulse_value, unit)

    def reconfigured(self, start_kwh: Decimal, meter_constant: int | None, pulse_value: Decimal | None = None,
                     unit: str = "kWh") -> Register:
        """This register under a (possibly) changed configuration.

        A new start value or unit starts a new count from the start value (the installer set the register). A
        new meter constant or pulse value alone folds the pulses so far into the start value, so nothing
        counted is lost or rescaled."""
        if start_kwh != self.configured or unit != self.unit:
            return Register(start_kwh, meter_constant, 0, start_kwh, pulse_value, unit)
        if meter_constant != self.meter_constant or pulse_value != self.pulse_value:
            return Register(self.value, meter_constant, 0, self.configured, pulse_value, unit)
        return self

    def with_pulses(self, pulses: int) -> Register:
        return Register(self.start_kwh, self.meter_constant, pulses, self.configured_start, self.pulse_value,
                        self.unit)
