"""Media of metered quantities: the OBIS value group A, the first character of a DIN 43863-5 meter ID.

A BAB presents a gas, water or heat meter to the gateway as an LMN meter *of that medium*: its meter ID starts
with the medium's digit (the "Sparte", byte 1 of the 10-byte SML server ID, LMN-STACK.md section 8) and its
main register carries the medium's OBIS code. The digits are the OBIS value group A codes (IEC 62056-61), as
the PTB's TRuDI tool also reads the server ID: 1 electricity, 4 heat cost allocator, 5 cooling, 6 heat,
7 gas, 8 cold water, 9 hot water.

Each medium has one *main register*, the cumulative quantity that is billed: 1-0:1.8.0 (Wh), 5-0:1.0.0 and
6-0:1.0.0 (cooling / heat energy, Wh or J), 7-0:3.0.0 (gas volume at metering conditions, m³), 8-0:1.0.0 and
9-0:1.0.0 (water volume, m³). Main registers never go backwards (:mod:`bab.values`) and are served as class
0x8002 registers with capture time and status (:mod:`bab.cosem.base_meter`).
"""

from __future__ import annotations

import enum

from .obis import Obis
from .units import Unit


class Medium(enum.IntEnum):
    """A medium by its OBIS value group A (= the DIN 43863-5 Sparte digit)."""

    ELECTRICITY = 1
    HEAT_COST_ALLOCATOR = 4
    COOLING = 5
    HEAT = 6
    GAS = 7
    COLD_WATER = 8
    HOT_WATER = 9

    @property
    def digit(self) -> str:
        return str(int(self))

    @property
    def main_register(self) -> Obis | None:
        return MAIN_REGISTERS.get(self)

    @property
    def main_units(self) -> tuple[Unit, ...]:
        """The units the main register may carry."""
        return _MAIN_UNITS.get(self, ())

    @classmethod
    def of_sparte(cls, sparte: str) -> Medium | None:
        """The medium of a meter ID's first character (None for letters and unassigned digits)."""
        if len(sparte) == 1 and sparte.isdigit() and int(sparte) in cls._value2member_map_:
            return cls(int(sparte))
        return None

    @classmethod
    def of_obis(cls, obis: Obis) -> Medium | None:
        return cls(obis.a) if obis.a in cls._value2member_map_ else None


MAIN_REGISTERS: dict[Medium, Obis] = {
    Medium.ELECTRICITY: Obis(1, 0, 1, 8, 0),
    Medium.COOLING: Obis(5, 0, 1, 0, 0),
    Medium.HEAT: Obis(6, 0, 1, 0, 0),
    Medium.GAS: Obis(7, 0, 3, 0, 0),
    Medium.COLD_WATER: Obis(8, 0, 1, 0, 0),
    Medium.HOT_WATER: Obis(9, 0, 1, 0, 0),
}

_MAIN_UNITS: dict[Medium, tuple[Unit, ...]] = {
    Medium.ELECTRICITY: (Unit.WH,),
    Medium.COOLING: (Unit.WH, Unit.J),
    Medium.HEAT: (Unit.WH, Unit.J),
    Medium.GAS: (Unit.M3,),
    Medium.COLD_WATER: (Unit.M3,),
    Medium.HOT_WATER: (Unit.M3,),
}

#: Further registers of heat/cooling and water meters (OBIS C codes of EN 13757-1 as used by OMS tools):
#: served as plain COSEM registers while the driver provides them.
AUXILIARY_REGISTERS: dict[Obis, str] = {
    **{Obis(a, 0, c, 0, 0): f"{name} ({'cooling' if a == 5 else 'heat'})" for a in (5, 6) for c, name in (
        (2, "volume"), (8, "power"), (9, "volume flow"), (10, "flow temperature"), (11, "return temperature"),
        (12, "temperature difference"))},
    Obis(8, 0, 2, 0, 0): "volume flow (cold water)",
    Obis(9, 0, 2, 0, 0): "volume flow (hot water)",
}


def is_main_register(obis: Obis) -> bool:
    return obis in _MAIN_SET


_MAIN_SET = frozenset(MAIN_REGISTERS.values())
