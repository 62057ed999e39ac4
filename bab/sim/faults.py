"""The faults active on one presented meter: what fires when, and the record of what was injected.

The wrappers at the layer boundaries ask :meth:`FaultSet.fire` at every opportunity (a frame to send, a new
connection, an SML answer, ...). It answers with the fault when it hits (its probability drawn from the meter's
own random generator, its count decremented), logs the injection with the journald field ``BAB_FAULT`` and
counts it per kind for ``bab status``. With no fault active the wrappers' only work is one set lookup
(:attr:`FaultSet.on`).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable

from .catalogue import KINDS, Fault

log = logging.getLogger("bab.sim")


class FaultSet:
    """Active faults of one meter, by kind (one fault per kind; switching a kind on again replaces it)."""

    def __init__(self, meter_id: str, *, clock: Callable[[], float], rng: random.Random | None = None,
                 faults: Iterable[Fault] = ()) -> None:
        self.meter_id = meter_id
        self.clock = clock
        self.rng = rng or random.Random()
        self.active: dict[str, Fault] = {}
        self.injected: Counter[str] = Counter()  # since daemon start, per kind
        self.on: set[str] = set()  # the boundaries with an active fault (checked by the wrappers)
        for f in faults:
            self.install(f)

    def install(self, fault: Fault) -> Fault:
        """Switch a fault on (now)."""
        fault.since = self.clock()
        self.active[fault.kind] = fault
        self._update()
        log.warning("%s: fault %s switched on%s", self.meter_id, fault.kind, _params_text(fault),
                    extra={"meter_id": self.meter_id, "layer": "sim", "fault": fault.kind})
        return fault

    def clear(self, kind: str | None = None) -> list[str]:
        """Switch off one kind, or all; returns the kinds switched off."""
        kinds = list(self.active) if kind is None else [kind] if kind in self.active else []
        for k in kinds:
            del self.active[k]
            log.warning("%s: fault %s cleared", self.meter_id, k,
                        extra={"meter_id": self.meter_id, "layer": "sim", "fault": k})
        self._update()
        return kinds

    def get(self, kind: str) -> Fault | None:
        """The active fault of this kind (a timed one, ``rnr``, switches itself off when its time is up)."""
        fault = self.active.get(kind)
        if fault is not None and kind == "rnr" and self.clock() >= fault.since + fault.params["seconds"]:
            self.active.pop(kind, None)
            self._update()
            log.warning("%s: fault rnr ended after %g s", self.meter_id, fault.params["seconds"],
                        extra={"meter_id": self.meter_id, "layer": "sim", "fault": kind})
            return None
        return fault

    def fire(self, kind: str, what: str = "") -> Fault | None:
        """One opportunity for ``kind``: the fault if it hits (logged and counted), else None."""
        fault = self.get(kind)
        if fault is None:
            return None
        if fault.probability < 1.0 and self.rng.random() >= fault.probability:
            return None
        fault.injected += 1
        self.injected[kind] += 1
        if fault.count is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.active.pop(kind, None)
                self._update()
        log.warning("%s: injected fault %s%s", self.meter_id, kind, f": {what}" if what else "",
                    extra={"meter_id": self.meter_id, "layer": KINDS[kind].layer, "fault": kind})
        return fault

    def describe(self) -> dict:
        return {"active": [f.describe() for f in self.active.values()],
                "injected": dict(sorted(self.injected.items()))}

    def _update(self) -> None:
        self.on = {f.layer for f in self.active.values()}


def _params_text(fault: Fault) -> str:
    parts = [f"{k}={v}" for k, v in fault.describe()["params"].items()]
    if fault.probability < 1.0:
        parts.append(f"probability={fault.probability:g}")
    if fault.count is not None:
        parts.append(f"count={fault.count}")
    return f" ({', '.join(parts)})" if parts else ""
