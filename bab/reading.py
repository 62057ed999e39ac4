"""The one reading model: what every legacy driver yields and what the COSEM object model serves.

A reading is exact: an integer mantissa ``value`` with a decimal ``scaler`` (value x 10^scaler in ``unit``),
as SML and COSEM carry it. Floats never enter the model, so 12345.678 kWh stays 12345678 Wh with scaler 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntFlag

from .obis import Obis
from .units import Unit, scale_of


class ReadingStatus(IntFlag):
    """Quality flags a driver attaches to a reading (mapped into the meter's status word by the COSEM layer)."""

    OK = 0
    STALE = 0x01  # the source has not delivered for longer than its stale timeout
    REDUCED = 0x02  # the meter sends a reduced data set (e.g. EDL without PIN: integer kWh, no power)
    WENT_BACKWARDS = 0x04  # an energy register reported less than before; the old value is kept
    SOURCE_LOST = 0x08  # the optical head / port is gone
    ESTIMATED = 0x10  # derived rather than read (e.g. S0 pulse count)
    METER_ERROR = 0x20  # the legacy meter reports an error (e.g. D0 F.F != 0)


@dataclass(frozen=True, slots=True)
class Reading:
    """A normalised reading: OBIS, exact value (mantissa x 10^scaler), unit, status flags, capture time."""

    obis: Obis
    value: int
    scaler: int = 0
    unit: Unit = Unit.COUNT
    status: ReadingStatus = ReadingStatus.OK
    time: float | None = field(default=None, compare=False)  # UNIX seconds when captured, if known

    def __post_init__(self) -> None:
        if not -128 <= self.scaler <= 127:
            raise ValueError(f"scaler {self.scaler} out of range -128..127")

    @property
    def decimal(self) -> Decimal:
        """The value as an exact Decimal in ``unit``."""
        return Decimal(self.value).scaleb(self.scaler)

    def rescaled(self, scaler: int) -> Reading:
        """The same quantity with another scaler (rounding half away from zero when precision is lost)."""
        if scaler == self.scaler:
            return self
        if scaler < self.scaler:
            value = self.value * 10 ** (self.scaler - scaler)
        else:
            div = 10 ** (scaler - self.scaler)
            q, r = divmod(abs(self.value), div)
            if 2 * r >= div:
                q += 1
            value = q if self.value >= 0 else -q
        return Reading(self.obis, value, scaler, self.unit, self.status, self.time)

    @classmethod
    def from_text(
        cls, obis: Obis | str, text: str | int | float | Decimal, unit: str = "", *,
        status: ReadingStatus = ReadingStatus.OK, time: float | None = None,
    ) -> Reading:
        """A reading from a decimal number in a unit symbol: ``from_text("1-0:1.8.0", "12.5", "kWh")``.

        The unit prefix is folded into the scaler (kWh -> Wh with scaler +3), the decimals into the mantissa.
        """
        if isinstance(obis, str):
            obis = Obis.parse(obis)
        if isinstance(text, float):
            text = repr(text)
        dec = Decimal(str(text).strip())
        if not dec.is_finite():
            raise ValueError(f"not a finite number: {text!r}")
        sign, digits, exponent = dec.as_tuple()
        mantissa = int("".join(map(str, digits)) or "0")
        if sign:
            mantissa = -mantissa
        assert isinstance(exponent, int)
        return cls(obis, mantissa, exponent + scale_of(unit), Unit.parse(unit), status, time)

    def __str__(self) -> str:
        return f"{self.obis} = {self.decimal} [{self.unit.name}]" + (
            f" status={self.status!r}" if self.status else ""
        )
