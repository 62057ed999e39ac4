"""The S0 pulse driver: counts debounced pulses of a GPIO line into a persisted energy register.

The register (start value + pulses / meter constant) is published as ``obis`` (default 1-0:1.8.0) with
status ESTIMATED every ``interval`` seconds. The pulse count is written to ``<state_dir>/s0-register.json``
through :func:`bab.persist.write_json` (atomic, fsync'ed) at most every ``persist_interval`` seconds and when
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

from bab.obis import Obis
from bab.persist import read_json, write_json
from bab.schema import Bool, Custom, Float, Int, Str

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
        "meter_constant": Int(doc="impulses per kWh (printed on the meter, e.g. 1000 imp/kWh)", min=1),
        "start_value": Custom(convert=_decimal, what="a number (kWh)",
                              doc="register value in kWh when counting starts", default=Decimal(0)),
        "obis": Custom(convert=lambda v: Obis.parse(str(v)), what="an OBIS code", doc="register published",
                       default=ENERGY_IMPORT),
        "interval": Float(doc="seconds between published readings", default=1.0, min=0.05),
        "persist_interval": Float(doc="seconds between writes of the pulse count (power-cut loss bound)",
                                  default=60.0, min=0.0),
        "reopen_interval": Float(doc="seconds between attempts to reopen the GPIO line", default=5.0, min=0.05),
    }

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 edge_source: EdgeSource | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options, context)
        opt = {k: t.default_value() for k, t in self.options_schema.items()
               if k not in ("line", "meter_constant")}
        opt.update(options)
        self.opt = opt
        self.state_path = os.path.join(context.state_dir, STATE_FILE)
        self._source = edge_source
        self._clock = clock
        self.counter = PulseCounter(min_width_ns=int(opt["min_pulse_width"] * 1e9))
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
        start, constant = self.opt["start_value"], int(self.opt["meter_constant"])
        # temporary files of writes cut short by a power cut (the state file itself is always whole)
        for leftover in glob.glob(os.path.join(glob.escape(self.context.state_dir), f".{STATE_FILE}.*.tmp")):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        stored = read_json(self.state_path)
        if stored is None:
            return Register(start, constant, 0, start)
        return Register.from_json(stored).reconfigured(start, constant)

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

    async def _consume(self, source: EdgeSource) -> None:
        async for edge in source.edges():
            if self.counter.edge(edge) and self.register is not None:
                self.register = self.register.with_pulses(self.register.pulses + 1)

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
