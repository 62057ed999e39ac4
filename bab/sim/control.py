"""Run-time control of the lab meter: the commands of ``bab sim``, the status socket and the web API.

:class:`SimControl` is held by the daemon (``daemon.sim``). Every method checks the whole command first and
raises :class:`SimCommandError` with a clear message, changing nothing, when anything is wrong (unknown meter,
kind, parameter, OBIS code, bit, or a register of a meter that is not simulated). Each returns a JSON-friendly
``dict`` saying what it did. The methods run on the daemon's event loop (the status socket calls them there);
the wrappers in :mod:`bab.sim` read the changed state at the next frame.

:func:`handle_request` maps one JSON request of the status socket (``{"command": "sim.fault", ...}``) to
these methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bab.cosem.status_word import StatusBit
from bab.mapping import MappedSink
from bab.obis import Obis
from bab.schema import ConfigError

from .catalogue import KINDS, Fault, parse_fault
from .scenario import SECONDS_INDEX, Scheduler, Step, load_scenario, read_scenario, status_bit, switch

if TYPE_CHECKING:
    from bab.meter import MeterRuntime

log = logging.getLogger("bab.sim")


class SimCommandError(ValueError):
    """A lab-meter command that cannot be carried out (nothing was changed); the message says why."""


def _simulated(m: MeterRuntime) -> Any:
    from legacy_drivers.simulated import SimulatedDriver

    return m.driver if isinstance(m.driver, SimulatedDriver) else None


class SimControl:
    """The lab meter's commands over the meters of one daemon (see the module docstring).

    ``meters``: the daemon's meter runtimes (a callable, as the daemon builds them after start).
    ``scheduler(delay, action)``: runs scenario steps (default: the running event loop's ``call_later``).
    """

    def __init__(self, meters: Callable[[], Sequence[MeterRuntime]], *, scheduler: Scheduler | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._meters = meters
        self._scheduler = scheduler
        self._wall = wall_clock
        self.scenarios_started = 0
        self.steps_run = 0

    # --- commands -----------------------------------------------------------------------------------------

    def show(self, meter: str | None = None) -> dict:
        """Values, status word, seconds index and faults of one meter (or all)."""
        meters = [self._meter(meter)] if meter is not None else list(self._meters())
        return {"meters": [self._describe(m) for m in meters]}

    def set_value(self, meter: str, obis: str, value: Any) -> dict:
        """Set a simulated register (``1-0:1.8.0`` in kWh, power in W, ...), or jump the seconds index
        (``1-0:94.49.0*1``, any meter)."""
        m = self._meter(meter)
        code = self._obis(obis)
        if code == SECONDS_INDEX:
            index = self._index(value)
            m.sml.model.seconds_index.jump(index, m.values.clock())
            log.warning("%s: seconds index set to %d", m.meter_id, index,
                        extra={"meter_id": m.meter_id, "layer": "sim"})
            return {"meter": m.meter_id, "obis": str(code), "value": str(index)}
        driver = _simulated(m)
        if driver is None:
            raise SimCommandError(f"{m.meter_id} has a {m.config.driver_type} driver: only a simulated meter's "
                                  "registers can be set")
        from legacy_drivers.simulated import _number

        try:
            number = _number(value)
        except ValueError as exc:
            raise SimCommandError(str(exc)) from None
        kept = driver.set_value(code, number)
        MappedSink(m.values, m.config.mapping).publish(driver.readings(self._wall()))  # served at once
        log.warning("%s: %s set to %s", m.meter_id, code, kept, extra={"meter_id": m.meter_id, "layer": "sim"})
        return {"meter": m.meter_id, "obis": str(code), "value": str(kept)}

    def set_status(self, meter: str, bit: str | int, on: bool | None) -> dict:
        """Force a status word bit on (True) or off (False), or back to what BAB computes (None)."""
        m = self._meter(meter)
        try:
            mask = status_bit(bit)
            state = switch(on)
        except ValueError as exc:
            raise SimCommandError(str(exc)) from None
        model = m.sml.model
        model.status_forced_on &= ~mask
        model.status_forced_off &= ~mask
        if state is True:
            model.status_forced_on |= mask
        elif state is False:
            model.status_forced_off |= mask
        name = _bit_name(mask)
        log.warning("%s: status bit %s %s", m.meter_id, name, {True: "on", False: "off", None: "auto"}[state],
                    extra={"meter_id": m.meter_id, "layer": "sim"})
        return {"meter": m.meter_id, "bit": name, "state": {True: "on", False: "off", None: "auto"}[state],
                "status_word": f"0x{model.status_word():08X}"}

    def fault(self, meter: str, kind: str, **params: Any) -> dict:
        """Switch a fault on (``probability`` and ``count`` go with the kind's own parameters)."""
        m = self._meter(meter)
        try:
            fault = parse_fault(kind, params)
        except ConfigError as exc:
            raise SimCommandError(f"fault {kind}: {exc.path + ': ' if exc.path else ''}{exc.message}") from None
        m.faults.install(fault)
        return {"meter": m.meter_id, "fault": fault.describe()}

    def clear(self, meter: str, kind: str | None = None) -> dict:
        """Switch off one fault kind, or all of the meter's faults."""
        m = self._meter(meter)
        if kind is not None and kind != "all" and kind not in KINDS:
            raise SimCommandError(f"no fault kind {kind!r} (kinds: {', '.join(KINDS)})")
        cleared = m.faults.clear(None if kind in (None, "all") else kind)
        return {"meter": m.meter_id, "cleared": cleared}

    def scenario(self, path_or_text: str) -> dict:
        """Validate a scenario file (or YAML text) and start it: its steps run at their times from now."""
        try:
            text, source = read_scenario(path_or_text)
            meters = list(self._meters())
            steps = load_scenario(text, source, [m.meter_id for m in meters],
                                  [m.meter_id for m in meters if _simulated(m) is not None])
        except ConfigError as exc:
            raise SimCommandError(str(exc)) from None
        schedule = self._scheduler
        if schedule is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise SimCommandError("a scenario needs the running daemon's event loop") from None
            schedule = loop.call_later
        self.scenarios_started += 1
        for step in steps:
            schedule(step.at, lambda step=step: self._run_step(step, source))
        log.warning("scenario %s started: %d steps over %g s", source, len(steps), steps[-1].at,
                    extra={"layer": "sim"})
        return {"scenario": source, "steps": len(steps), "duration_s": steps[-1].at}

    # --- helpers ------------------------------------------------------------------------------------------

    def _run_step(self, step: Step, source: str) -> None:
        try:
            if step.action == "fault":
                m = self._meter(step.meter)
                m.faults.install(Fault.from_mapping(step.value))
            elif step.action == "clear":
                self.clear(step.meter, step.value)
            elif step.action == "set":
                for obis, value in step.value.items():
                    self.set_value(step.meter, str(obis), value)
            elif step.action == "status":
                for mask, state in step.value.items():
                    self.set_status(step.meter, _bit_name(mask), state)
            self.steps_run += 1
        except SimCommandError as exc:  # e.g. a meter gone since the scenario was checked
            log.error("scenario %s, step at %g s: %s", source, step.at, exc, extra={"layer": "sim"})

    def _meter(self, meter: str | None) -> MeterRuntime:
        meters = list(self._meters())
        text = str(meter or "").strip().upper()
        for m in meters:
            if m.meter_id.upper() == text:
                return m
        raise SimCommandError(f"no meter {meter!r} (meters: {', '.join(m.meter_id for m in meters) or 'none'})")

    @staticmethod
    def _obis(obis: str) -> Obis:
        try:
            return Obis.parse(str(obis))
        except ValueError as exc:
            raise SimCommandError(f"not an OBIS code: {obis!r} ({exc})") from None

    @staticmethod
    def _index(value: Any) -> int:
        try:
            index = int(str(value))
        except ValueError:
            raise SimCommandError(f"a seconds index is a whole number, got {value!r}") from None
        if not 0 <= index <= 0xFFFFFFFF:
            raise SimCommandError("a seconds index is 0..4294967295")
        return index

    def _describe(self, m: MeterRuntime) -> dict:
        model = m.sml.model
        driver = _simulated(m)
        word = model.status_word()
        return {
            "id": m.meter_id,
            "driver": m.config.driver_type,
            "simulated": driver is not None,
            "registers": {str(o): str(v) for o, v in sorted(driver.values.items())} if driver else None,
            "reduced": driver.reduced if driver else None,
            "status_word": f"0x{word:08X}",
            "status_bits": [b.name for b in StatusBit if b.name and word & b],
            "status_forced": {"on": _bit_names(model.status_forced_on), "off": _bit_names(model.status_forced_off)},
            "seconds_index": model.sec_index(),
            "faults": [f.describe() for f in m.faults.active.values()],
            "injected": dict(sorted(m.faults.injected.items())),
        }


def _bit_name(mask: int) -> str:
    try:
        name = StatusBit(mask).name
    except ValueError:
        name = None
    return name or str(mask.bit_length() - 1)


def _bit_names(word: int) -> list[str]:
    return [_bit_name(1 << i) for i in range(32) if word & (1 << i)]


#: Status-socket commands -> (method, required keys, optional keys)
_COMMANDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "sim.show": ("show", (), ("meter",)),
    "sim.set": ("set_value", ("meter", "obis", "value"), ()),
    "sim.status": ("set_status", ("meter", "bit", "on"), ()),
    "sim.fault": ("fault", ("meter", "kind"), ("params",)),
    "sim.clear": ("clear", ("meter",), ("kind",)),
    "sim.scenario": ("scenario", ("scenario",), ()),
}


def handle_request(control: SimControl, request: Mapping[str, Any]) -> dict:
    """One status-socket request -> its answer: ``{"ok": true, "result": ...}`` or ``{"error": ..., "code":
    "bad_command"}``."""
    command = request.get("command")
    if command not in _COMMANDS:
        return {"error": f"unknown command {command!r} (commands: {', '.join(_COMMANDS)})", "code": "bad_command"}
    method, required, optional = _COMMANDS[command]
    unknown = set(request) - {"command", *required, *optional}
    missing = [k for k in required if k not in request]
    if unknown or missing:
        what = f"missing {', '.join(missing)}" if missing else f"unknown keys {', '.join(sorted(unknown))}"
        return {"error": f"{command}: {what}", "code": "bad_command"}
    args = {k: request[k] for k in (*required, *optional) if k in request and k != "params"}
    params = request.get("params") or {}
    if not isinstance(params, dict):
        return {"error": f"{command}: params must be an object", "code": "bad_command"}
    try:
        if method == "scenario":
            result = control.scenario(str(args["scenario"]))
        elif method == "fault":
            result = control.fault(str(args["meter"]), str(args["kind"]), **params)
        else:
            result = getattr(control, method)(**args)
    except SimCommandError as exc:
        return {"error": str(exc), "code": "bad_command"}
    return {"ok": True, "result": result}
