"""The latest readings of one meter: what its driver published, what the COSEM model serves.

Implements the driver API's :class:`~legacy_drivers.api.ReadingSink`. Energy registers (electricity OBIS
D = 8) and the main registers of the other media (gas volume 7-0:3.0.0, water 8/9-0:1.0.0, heat and cooling
energy 6/5-0:1.0.0, :mod:`bab.medium`) never go backwards: a smaller value is flagged (WENT_BACKWARDS),
logged once, and the old value kept.

Each register keeps one scaler, because COSEM's scaler_unit (attribute 3) is static: a gateway may read it
once and apply it to every later value. A reading with a coarser scaler than the register's is stored
rescaled, exactly (``1000 kWh`` after ``12345.678 kWh`` is served as 1000000 Wh, scaler 0, not 1000 with scaler
+3); only a reading with a finer scaler makes the register finer from then on, so no precision is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bab.medium import is_main_register
from bab.obis import Obis
from bab.reading import Reading, ReadingStatus
from legacy_drivers.api import Health

log = logging.getLogger("bab.values")


def is_energy_register(obis: Obis) -> bool:
    """A cumulative register that must not decrease (see the module docstring)."""
    if obis.a == 1:
        return obis.d == 8 and obis.c in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
    return is_main_register(Obis(obis.a, obis.b, obis.c, obis.d, obis.e))


@dataclass
class ValueStore:
    meter_id: str
    clock: Callable[[], float] = field(default=lambda: 0.0)
    readings: dict[Obis, Reading] = field(default_factory=dict)
    received_at: dict[Obis, float] = field(default_factory=dict)
    health: Health = Health.STARTING
    health_detail: str = ""
    backwards: int = 0
    updates: int = 0
    monotonic: bool = True  # False: energy registers may decrease (simulated meters only, see bab.meter)

    def publish(self, readings: Sequence[Reading]) -> None:
        now = self.clock()
        for r in readings:
            old = self.readings.get(r.obis)
            if old is not None and r.unit == old.unit and r.scaler > old.scaler:
                r = r.rescaled(old.scaler)  # exact: finer scaler, the mantissa grows
            if self.monotonic and old is not None and is_energy_register(r.obis) and r.unit == old.unit \
                    and r.decimal < old.decimal:
                self.backwards += 1
                if not old.status & ReadingStatus.WENT_BACKWARDS:
                    log.warning("%s: %s went backwards (%s -> %s); keeping %s", self.meter_id, r.obis,
                                old.decimal, r.decimal, old.decimal)
                self.readings[r.obis] = replace(old, status=old.status | ReadingStatus.WENT_BACKWARDS)
                continue
            self.readings[r.obis] = r
            self.received_at[r.obis] = now
        self.updates += 1

    def set_health(self, health: Health, detail: str = "") -> None:
        if health != self.health:
            log.info("%s: driver %s%s", self.meter_id, health.value, f" ({detail})" if detail else "")
        self.health, self.health_detail = health, detail

    def get(self, obis: Obis) -> Reading | None:
        r = self.readings.get(obis)
        if r is None:
            return None
        if self.health in (Health.STALE, Health.SOURCE_LOST):
            flag = ReadingStatus.STALE if self.health is Health.STALE else ReadingStatus.SOURCE_LOST
            return replace(r, status=r.status | flag)
        return r
