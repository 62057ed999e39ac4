"""DLMS/COSEM unit codes (IEC 62056-62) used by SML and by the reading model.

The codes are those of the DLMS unit enumeration (e.g. 13 = m³, 25 = J, 30 = Wh, 52 = K); the symbols are how
configurations and legacy telegrams write them (``"l"`` is folded into m³ with scaler -3).
"""

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
    M3 = 13  # volume (gas at metering conditions, water)
    M3_CORRECTED = 14  # gas volume converted to base conditions
    M3_PER_H = 15  # volume flow
    LITRE = 19
    KG = 20
    BAR = 24
    J = 25  # energy (heat meters in MJ / GJ)
    J_PER_H = 26  # thermal power
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
    K = 52  # temperature difference (heat meters)
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
    "m3": (Unit.M3, 0), "m³": (Unit.M3, 0), "l": (Unit.M3, -3), "m3/h": (Unit.M3_PER_H, 0),
    "m³/h": (Unit.M3_PER_H, 0), "J": (Unit.J, 0), "kJ": (Unit.J, 3), "MJ": (Unit.J, 6), "GJ": (Unit.J, 9),
    "J/h": (Unit.J_PER_H, 0), "K": (Unit.K, 0), "°C": (Unit.CELSIUS, 0), "bar": (Unit.BAR, 0),
    "kg": (Unit.KG, 0),
    "": (Unit.COUNT, 0),
}


def scale_of(symbol: str) -> int:
    """Power of ten from ``symbol`` to its base unit: ``scale_of("kWh") == 3``."""
    try:
        return _SYMBOLS[symbol.strip()][1]
    except KeyError:
        raise ValueError(f"unknown unit {symbol!r}") from None
