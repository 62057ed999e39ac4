"""The pulse driver: counts debounced pulses of a GPIO line into a persisted register (S0 energy, or the reed
contact of a gas or water meter).

The register (start value + pulses / meter constant, or start value + pulses x pulse value) is published as
``obis`` (default 1-0:1.8.0) with status ESTIMATED every ``interval`` seconds. Its unit follows the medium of
``obis`` (:mod:`bab.medium`): kWh for electricity and heat, m³ for gas (7-0:3.0.0) and water (8-0:1.0.0,
9-0:1.0.0); the meter ID must start with that medium's digit. For reed contacts ``min_pulse_gap`` debounces
the opening of the contact as well (:mod:`~legacy_drivers.s0.counter`).

The pulse count is written to ``<state_dir>/s0-register.json`` through :func:`bab.persist.write_json` (atomic,
fsync'ed) at most every ``persist_interval`` seconds and when
the driver stops, so a power cut loses at most the pulses of one interval and never corrupts the file.

Health: ``starting``; ``ok`` while the GPIO line is held; ``source lost`` with the reason when libgpiod's
binding is missing, the chip or line cannot be requested, or the state file is unreadable (the file is then
left untouched and nothing is counted: a wrong register must not be published or overwritten).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bab.medium import Medium
from bab.obis import Obis
from bab.persist import read_json, write_json
from bab.schema import Bool, Custom, Float, Int, Nullable, Str

from ..api import Driver, DriverContext, Health, ReadingSink
from .counter import ENERGY_IMPORT, PulseCounter, Register
from .edges import EdgeSource, EdgeSourceError, GpiodEdgeSource

log = logging.getLogger(__name__)

STATE_FILE = "s0-register.json"


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a number: {value!r}")
    dec = Decimal(str(value))
    if not dec.is_finite() or dec < 0:
        raise ValueError(f"not a non-negative number: {value!r}")
    return dec


def _positive(value: Any) -> Decimal:
    dec = _decimal(value)
    if dec <= 0:
        raise ValueError(f"not a positive number: {value!r}")
    return dec


def register_unit(obis: Obis) -> str | None:
    """The register unit for ``obis``'s medium: kWh (electricity, heat, cooling), m3 (gas, water), else None."""
    medium = Medium.of_obis(obis)
    if medium in (Medium.ELECTRICITY, Medium.HEAT, Medium.COOLING):
        return "kWh"
    if medium in (Medium.GAS, Medium.COLD_WATER, Medium.HOT_WATER):
        return "m3"
    return None


def _line(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError("expected a line offset or name")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a line offset is >= 0")
        return value
    if isinstance(value, str) and value:
        return value
    raise ValueError("expected a line offset or name")


class S0Driver(Driver):
    """S0 pulse output of a meter on a GPIO input (EN 62053-31 class A/B via optocoupler)."""

    options_schema = {
        "chip": Str(doc="GPIO chip device", default="/dev/gpiochip0"),
        "line": Custom(convert=_line, what="a GPIO line offset or line name", doc="GPIO line of the S0 input"),
        "active_low": Bool(doc="the line is low during a pulse (optocoupler to ground, pull-up)", default=True),
        "bias": Str(doc="input bias", choices=("pull-up", "pull-down", "disabled", "as-is"), default="pull-up"),
        "min_pulse_width": Float(doc="shortest pulse counted, seconds (EN 62053-31: >= 30 ms)", default=0.030,
                                 min=0.001, max=10.0),
        "min_pulse_gap": Float(doc="seconds the line must stay inactive to end a pulse (reed contacts: e.g. "
                                   "0.05; 0 = the trailing edge ends it)", default=0.0, min=0.0, max=10.0),
        "meter_constant": Nullable(Int(min=1), doc="impulses per kWh (printed on the meter, e.g. 1000 imp/kWh)",
                                   default=None),
        "pulse_value": Nullable(Custom(convert=_positive, what="a positive number"),
                                doc="units per impulse instead of a meter constant (e.g. 0.01 m³/imp)",
                                default=None),
        "start_value": Custom(convert=_decimal, what="a number (kWh or m³)",
                              doc="register value (in its unit) when counting starts", default=Decimal(0)),
        "obis": Custom(convert=lambda v: Obis.parse(str(v)), what="an OBIS code",
                       doc="register published: 1-0:1.8.0 (kWh), 7-0:3.0.0 gas or 8-0:1.0.0 water (m³) ...",
                       default=ENERGY_IMPORT),
        "interval": Float(doc="seconds between published readings", default=1.0, min=0.05),
        "persist_interval": Float(doc="seconds between writes of the pulse count (power-cut loss bound)",
                                  default=60.0, min=0.0),
        "reopen_interval": Float(doc="seconds between attempts to reopen the GPIO line", default=5.0, min=0.05),
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], meter_id: str) -> tuple[str, str] | None:
        if (options.get("meter_constant") is None) == (options.get("pulse_value") is None):
            return "meter_constant", "give either meter_constant (impulses per kWh) or pulse_value (units per impulse)"
        obis = options.get("obis", ENERGY_IMPORT)
        if register_unit(obis) is None:
            return "obis", f"{obis} is no register of electricity, heat, cooling, gas or water"
        medium = Medium.of_obis(obis)
        if medium is not None and medium is not Medium.ELECTRICITY and not meter_id.startswith(medium.digit):
            return "obis", (f"{obis} is a {medium.name.lower().replace('_', ' ')} register: the meter ID must start "
                            f"with {medium.digit}, not {meter_id[:1]!r}")
        return None

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 edge_source: EdgeSource | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options, context)
        opt = {k: t.default_value() for k, t in self.options_schema.items() if k != "line"}
        opt.update(options)
        self.opt = opt
        problem = self.check(opt, context.meter_id)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        self.unit = register_unit(opt["obis"]) or "kWh"
        self.state_path = os.path.join(context.state_dir, STATE_FILE)
        self._source = edge_source
        self._clock = clock
        self.counter = PulseCounter(min_width_ns=int(opt["min_pulse_width"] * 1e9),
                                    min_gap_ns=int(opt["min_pulse_gap"] * 1e9))
        self.register: Register | None = None
        self.health: Health | None = None
        self._persisted = -1
        self._last_persist = 0.0

    def _set_health(self, sink: ReadingSink, health: Health, detail: str = "") -> None:
        if health == self.health:
            return
        self.health = health
        (log.warning if health is Health.SOURCE_LOST else log.info)(
            "S0 %s: %s%s", self.context.meter_id, health.value, f" ({detail})" if detail else "")
        sink.set_health(health, detail)

    def load(self) -> Register:
        """The register from the state file under the current configuration (ValueError if corrupt)."""
        start, constant, value = self.opt["start_value"], self.opt["meter_constant"], self.opt["pulse_value"]
        # temporary files of writes cut short by a power cut (the state file itself is always whole)
        for leftover in glob.glob(os.path.join(glob.escape(self.context.state_dir), f".{STATE_FILE}.*.tmp")):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        stored = read_json(self.state_path)
        if stored is None:
            return Register(start, constant, 0, start, value, self.unit)
        return Register.from_json(stored).reconfigured(start, constant, value, self.unit)

    def persist(self, force: bool = False) -> None:
        """Write the pulse count if it changed (and ``persist_interval`` passed, unless ``force``)."""
        reg = self.register
        if reg is None:
            return
        now = self._clock()
        if reg.pulses == self._persisted and not force:
            return
        if not force and now - self._last_persist < self.opt["persist_interval"]:
            return
        write_json(self.state_path, reg.to_json())
        self._persisted = reg.pulses
        self._last_persist = now

    def _edge_source(self) -> EdgeSource:
        if self._source is not None:
            return self._source
        return GpiodEdgeSource(self.opt["chip"], self.opt["line"], active_low=self.opt["active_low"],
                               bias=self.opt["bias"])

    def _count(self, counted: bool) -> None:
        if counted and self.register is not None:
            self.register = self.register.with_pulses(self.register.pulses + 1)

    async def _consume(self, source: EdgeSource) -> None:
        async for edge in source.edges():
            self._count(self.counter.edge(edge))

    async def run(self, sink: ReadingSink) -> None:
        self._set_health(sink, Health.STARTING)
        while self.register is None:
            try:
                self.register = self.load()
            except (ValueError, OSError) as exc:
                self._set_health(sink, Health.SOURCE_LOST, f"S0 state file {self.state_path} unusable: {exc}")
                await asyncio.sleep(self.opt["reopen_interval"])
        self.persist(force=True)  # a reconfiguration is stored at once
        try:
            while True:
                source = self._edge_source()
                try:
                    await source.open()
                except EdgeSourceError as exc:
                    self._set_health(sink, Health.SOURCE_LOST, str(exc))
                    await asyncio.sleep(self.opt["reopen_interval"])
                    continue
                self._set_health(sink, Health.OK)
                consumer = asyncio.create_task(self._consume(source))
                try:
                    while not consumer.done():
                        self._count(self.counter.tick(int(self._clock() * 1e9)))  # a gap confirmed by time
                        sink.publish([self.register.reading(time.time(), self.opt["obis"])])
                        self.persist()
                        await asyncio.wait({consumer}, timeout=self.opt["interval"])
                    exc = consumer.exception()
                    reason = f"GPIO edge source failed: {exc}" if exc else "GPIO edge source ended"
                    self._set_health(sink, Health.SOURCE_LOST, reason)
                finally:
                    consumer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await consumer
                    source.close()
                self.persist(force=True)
                await asyncio.sleep(self.opt["reopen_interval"])
        finally:
            with contextlib.suppress(OSError):
                self.persist(force=True)
