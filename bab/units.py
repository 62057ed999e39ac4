"""DLMS/COSEM unit codes (IEC 62056-62) used by SML and by the reading model."""

from __future__ import annotations

from enum import IntEnum


class Unit(IntEnum):
    """The unit codes a meter on the LMN uses (SML ``unit`` field, COSEM scaler_unit)."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8
    CELSIUS = 9
    W = 27
    VA = 28
    VAR = 29
    WH = 30
    VAH = 31
    VARH = 32
    A = 33
    C = 34
    V = 35
    HZ = 44
    IMP_PER_WH = 45  # meter constant for active energy (impulses per Wh)
    PERCENT = 56
    AH = 57
    COUNT = 255  # "no unit" / count

    @classmethod
    def parse(cls, text: str) -> Unit:
        """Parse a unit symbol as it appears in configs and D0 telegrams (``kWh`` -> WH, see scale_of)."""
        key = text.strip()
        if key in _SYMBOLS:
            return _SYMBOLS[key][0]
        raise ValueError(f"unknown unit {text!r} (known: {', '.join(sorted(_SYMBOLS))})")


# symbol -> (unit, power of ten that converts a value in this symbol to the base unit)
_SYMBOLS: dict[str, tuple[Unit, int]] = {
    "W": (Unit.W, 0), "kW": (Unit.W, 3), "MW": (Unit.W, 6),
    "Wh": (Unit.WH, 0), "kWh": (Unit.WH, 3), "MWh": (Unit.WH, 6),
    "var": (Unit.VAR, 0), "kvar": (Unit.VAR, 3),
    "varh": (Unit.VARH, 0), "kvarh": (Unit.VARH, 3),
    "VA": (Unit.VA, 0), "kVA": (Unit.VA, 3), "VAh": (Unit.VAH, 0), "kVAh": (Unit.VAH, 3),
    "V": (Unit.V, 0), "A": (Unit.A, 0), "Hz": (Unit.HZ, 0), "%": (Unit.PERCENT, 0),
    "s": (Unit.SECOND, 0), "min": (Unit.MINUTE, 0), "h": (Unit.HOUR, 0),
    "": (Unit.COUNT, 0),
}


def scale_of(symbol: str) -> int:
    """Power of ten from ``symbol`` to its base unit: ``scale_of("kWh") == 3``."""
    try:
        return _SYMBOLS[symbol.strip()][1]
    except KeyError:
        raise ValueError(f"unknown unit {symbol!r}") from None
