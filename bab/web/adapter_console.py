"""What the web console shows of a running BAB (``bab run``) and the lab meter's controls.

The views are the status document of ``bab status --json`` (:meth:`bab.daemon.Daemon.status`), per meter its
COSEM objects as served and its load profile (the ring buffer served by GetProfileList). While a page listens,
:meth:`AdapterConsole.run` publishes the status once a second on the event stream, plus an ``lmn`` event on
every change of a meter's LMN state, address or pairing.

The lab meter's controls go to the simulator's control object, looked up as ``daemon.sim`` when a request
comes (a :class:`bab.sim.control.SimControl`, or absent): ``show``, ``set_value``, ``set_status``, ``fault``,
``clear`` and ``scenario``. Without it the API answers 404 "no simulator"; its command error
(``SimCommandError``, recognised by class name so this module does not depend on the simulator) becomes 400.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bab.cosem.profile import ProfileEntry
from bab.status import reading_entry

from .events import EventHub
from .gateway_console import ConsoleError

SIM_METHODS = ("show", "set_value", "set_status", "fault", "clear", "scenario")


def is_sim_command_error(exc: BaseException) -> bool:
    """True for the simulator's command error (by class name along the MRO: no import of the simulator)."""
    return any(c.__name__ == "SimCommandError" for c in type(exc).__mro__)


class AdapterConsole:
    def __init__(self, daemon: Any, *, hub: EventHub | None = None, period: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.hub = hub or EventHub()
        self.period = period
        self.clock = clock
        self._last_lmn: dict[str, tuple] = {}

    # --- views ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self.daemon.status())

    def _runtime(self, meter_id: str) -> Any:
        for m in self.daemon.meters:
            if m.meter_id == meter_id:
                return m
        raise ConsoleError(404, f"no meter {meter_id} in this BAB (it presents "
                                f"{', '.join(m.meter_id for m in self.daemon.meters) or 'none'})")

    def meter(self, meter_id: str) -> dict[str, Any]:
        m = self._runtime(meter_id)
        entry = next((e for e in self.status().get("meters", []) if e.get("id") == meter_id), {"id": meter_id})
        model = m.sml.model
        objects = []
        now = asyncio.get_running_loop().time()
        readings = model.register_readings()
        for obj in model.table:
            name = obj.name
            row: dict[str, Any] = {"obis": str(name.obis), "class": name.class_id, "description": obj.description,
                                   "attributes": sorted(obj.attributes)}
            r = readings.get(name.obis)
            if r is not None:
                e = reading_entry(r, now)
                row.update(value=e["value"], unit=e["unit"], status=e["status"])
            objects.append(row)
        entry = dict(entry)
        entry["objects"] = objects
        entry["profile"] = {"period_s": model.profile.period, "entries": [_profile_json(e)
                                                                           for e in list(model.profile.entries)[-96:]]}
        entry["sim"] = getattr(self.daemon, "sim", None) is not None
        return entry

    def profile_plot(self, meter_id: str, obis: str = "1-0:1.8.0*255") -> str:
        from .svg import plot

        m = self._runtime(meter_id)
        entries = list(m.sml.model.profile.entries)[-96:]
        now = self.clock()
        pts = []
        unit = ""
        for e in entries:
            for v in e.values:
                if str(v.obis) == obis:
                    pts.append(((e.time - now) / 3600, v.value * 10.0 ** v.scaler))
                    unit = {30: "Wh", 27: "W", 13: "m³"}.get(v.unit, f"unit {v.unit}")
        if unit == "Wh":
            pts, unit = [(x, y / 1000) for x, y in pts], "kWh"
        return plot(pts, title=f"{meter_id}: load profile {obis}", x_label="hours ago", y_label=unit or "value",
                    empty_text=f"no capture yet (one every {m.sml.model.profile.period} s)")

    # --- live -----------------------------------------------------------------------------------------

    def publish_changes(self) -> None:
        for m in self.daemon.meters:
            st = m.station
            key = (st.state.value, st.address, m.security.paired, m.security.tls_up)
            if self._last_lmn.get(m.meter_id) != key:
                self._last_lmn[m.meter_id] = key
                self.hub.publish("lmn", meter=m.meter_id, state=key[0], address=key[1], paired=key[2],
                                 tls_up=key[3])

    async def run(self) -> None:
        """Publish LMN changes and, while someone listens, the status once per period (until cancelled)."""
        while True:
            self.publish_changes()
            if self.hub.has_subscribers:
                self.hub.publish("status", status=self.status())
            await asyncio.sleep(self.period)

    # --- lab meter (simulator) ------------------------------------------------------------------------

    def sim(self) -> Any:
        sim = getattr(self.daemon, "sim", None)
        if sim is None:
            raise ConsoleError(404, "no simulator: this BAB has no lab meter")
        return sim

    def sim_call(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if method not in SIM_METHODS:
            raise ConsoleError(404, f"no simulator command {method!r}")
        fn = getattr(self.sim(), method, None)
        if fn is None:
            raise ConsoleError(501, f"the simulator has no {method!r} command")
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if is_sim_command_error(exc):
                raise ConsoleError(400, str(exc)) from None
            raise
        if method != "show":
            self.hub.publish("sim", command=method, result=result)
        return {"ok": True, "result": result}


def _profile_json(e: ProfileEntry) -> dict[str, Any]:
    return {"time": e.time, "sec_index": e.sec_index, "status": e.status,
            "values": [{"obis": str(v.obis), "value": v.value, "scaler": v.scaler, "unit": v.unit, "status": v.status}
                       for v in e.values]}
