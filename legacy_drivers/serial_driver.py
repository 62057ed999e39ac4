"""The common life of a driver that reads a meter through a serial port (D0, EDL).

It owns what is not protocol: opening the ``port`` (device path, ``/dev/serial/by-id/...`` path,
``usb:VID:PID[:SERIAL]`` or any pyserial URL), reopening it every ``reopen_interval`` or at once on a hot-plug
attach without a restart, aborting on an unplug, and the health state machine (starting, ok, reduced data set,
stale after ``stale_after`` missed readouts, source lost; each change logged once). Subclasses implement
:meth:`SerialDriver._serve` (the protocol on an open transport) and :meth:`SerialDriver._make_transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from bab.obis import Obis
from bab.reading import Reading
from bab.schema import Bool, Custom, Float, Int, ListOf, Str
from bab.transport import TransportError, TransportLost

from .api import Driver, DriverContext, Health, ReadingSink
from .hotplug import Attached, HeadIdentity, HotplugMonitor

log = logging.getLogger(__name__)

TransportFactory = Callable[[str, int], Any]  # (port, baudrate) -> object with StreamTransport's interface


def obis_option(value: Any) -> Obis:
    return Obis.parse(str(value))


#: Options every serial driver has.
SERIAL_OPTIONS = {
    "port": Str(doc="device path, /dev/serial/by-id/... path, usb:VID:PID[:SERIAL] or pyserial URL",
                example="/dev/serial/by-id/usb-FTDI_FT230X_Basic_UART_D30A1B2C-if00-port0"),
    "required": ListOf(item=Custom(convert=obis_option, what="an OBIS code"),
                       doc="registers whose absence makes the health 'reduced data set'",
                       default=lambda: [Obis(1, 0, 1, 8, 0)]),
    "stale_after": Int(doc="missed readouts in a row before the health is 'stale'", default=3, min=1),
    "reopen_interval": Float(doc="seconds between attempts to reopen a lost port", default=2.0, min=0.05),
    "hotplug": Bool(doc="follow the optical head with udev (by-id or usb: ports)", default=True),
}


class SerialDriver(Driver):
    """Base of serial-port drivers: port life cycle, hot-plug and health (see the module docstring)."""

    name = "serial"

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 transport_factory: TransportFactory | None = None,
                 hotplug: HotplugMonitor | None = None) -> None:
        super().__init__(options, context)
        opt = {k: t.default_value() for k, t in self.options_schema.items() if k != "port"}
        opt.update(options)
        self.opt = opt
        self.port: str = str(options["port"])
        self._factory = transport_factory or self._make_transport
        identity = HeadIdentity.from_port(self.port)
        if hotplug is None and identity is not None and opt["hotplug"]:
            hotplug = HotplugMonitor(identity)
        self.hotplug = hotplug
        self.stats: Counter[str] = Counter()
        self.health: Health | None = None
        self.last_readings: list[Reading] = []
        self._missed = 0
        self._reopen = asyncio.Event()
        self._transport: Any = None

    # ---- for subclasses ----------------------------------------------------------------------------------

    def _make_transport(self, port: str, baudrate: int) -> Any:
        raise NotImplementedError

    def _initial_baudrate(self) -> int:
        raise NotImplementedError

    def _on_open(self) -> None:
        """A fresh port: reset the protocol core."""

    async def _serve(self, transport: Any, sink: ReadingSink) -> None:
        raise NotImplementedError

    # ---- health ------------------------------------------------------------------------------------------

    def _set_health(self, sink: ReadingSink, health: Health, detail: str = "") -> None:
        if health == self.health:
            return
        self.health = health
        (log.warning if health in (Health.STALE, Health.SOURCE_LOST) else log.info)(
            "%s %s: %s%s", self.name, self.context.meter_id, health.value, f" ({detail})" if detail else "",
            extra={"meter_id": self.context.meter_id, "layer": self.name})
        sink.set_health(health, detail)

    def _missed_readout(self, sink: ReadingSink, reason: str, detail: str) -> None:
        self._missed += 1
        self.stats["missed"] += 1
        log.debug("%s %s: missed readout: %s", self.name, self.context.meter_id, detail)
        if self._missed >= self.opt["stale_after"]:
            self._set_health(sink, Health.STALE, f"{self._missed} missed readouts, last: {reason}")
        elif self.health in (Health.OK, Health.REDUCED):
            self._set_health(sink, Health.REDUCED, f"missed readout: {reason}")

    def _publish(self, sink: ReadingSink, readings: list[Reading], reduced: str | None = None) -> None:
        """A good readout: publish it and set ok, or reduced (with why) if required values are missing."""
        self._missed = 0
        self.last_readings = readings
        if readings:
            sink.publish(readings)
        present = {r.obis for r in readings}
        missing = [str(o) for o in self.opt["required"] if o not in present]
        if missing:
            self._set_health(sink, Health.REDUCED, "missing " + ", ".join(missing))
        elif reduced:
            self._set_health(sink, Health.REDUCED, reduced)
        else:
            self._set_health(sink, Health.OK)

    # ---- main loop ---------------------------------------------------------------------------------------

    async def run(self, sink: ReadingSink) -> None:
        self._set_health(sink, Health.STARTING)
        watcher = asyncio.create_task(self._watch_hotplug()) if self.hotplug else None
        try:
            while True:
                transport = await self._open(sink)
                if transport is None:
                    await self._wait_reopen()
                    continue
                self._transport = transport
                try:
                    await self._serve(transport, sink)
                except TransportLost as exc:
                    self.stats["source_lost"] += 1
                    self._set_health(sink, Health.SOURCE_LOST, str(exc))
                except Exception:  # a bug must not end the meter's driver: log it, reopen, go on
                    self.stats["internal_errors"] += 1
                    log.exception("%s %s: internal error; reopening the port", self.name, self.context.meter_id)
                finally:
                    self._transport = None
                    transport.close()
                await self._wait_reopen()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    def _resolve_port(self) -> str | None:
        node = self.hotplug.find() if self.hotplug else None  # also tells the tracker where the head is
        if self.port.startswith("usb:"):
            return node
        return self.port

    async def _open(self, sink: ReadingSink) -> Any:
        port = self._resolve_port()
        if port is None:
            self._set_health(sink, Health.SOURCE_LOST, f"optical head {self.port} not present")
            return None
        transport = self._factory(port, self._initial_baudrate())
        try:
            await transport.open()
        except (TransportError, OSError) as exc:
            self._set_health(sink, Health.SOURCE_LOST, str(exc))
            return None
        if self.health is Health.SOURCE_LOST:
            log.info("%s %s: port %s reopened", self.name, self.context.meter_id, port)
            self._missed = 0
            self.health = None  # the next readout reports ok/reduced again
            self._set_health(sink, Health.STARTING, "port reopened")
        self._on_open()
        return transport

    async def _wait_reopen(self) -> None:
        """Wait ``reopen_interval`` or until a hot-plug attach (one that came early is not lost)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.opt["reopen_interval"]):  # wait_for can swallow a cancel (3.11)
                await self._reopen.wait()
        self._reopen.clear()

    async def _watch_hotplug(self) -> None:
        assert self.hotplug is not None
        try:
            async for change in self.hotplug.changes():
                if isinstance(change, Attached):
                    log.info("%s %s: optical head %s attached at %s", self.name, self.context.meter_id,
                             self.hotplug.identity, change.device_node)
                    self._reopen.set()
                elif self._transport is not None:
                    self._transport.abort("optical head unplugged")
        except Exception as exc:  # no netlink socket (container): fall back to periodic reopening
            log.info("%s %s: hot-plug events unavailable (%s); reopening by polling", self.name,
                     self.context.meter_id, exc)
