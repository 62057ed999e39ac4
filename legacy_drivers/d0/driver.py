"""The D0 (IEC 62056-21) driver: asyncio around :class:`~legacy_drivers.d0.protocol.D0Client`.

It opens the ``port`` (device path, ``/dev/serial/by-id/...`` path, ``usb:VID:PID[:SERIAL]`` or any pyserial
URL) at 7E1, runs a readout cycle every ``interval`` seconds (modes A-C) or listens to pushed telegrams
(mode D), turns each data message into readings (:mod:`legacy_drivers.d0.dataset`) and publishes them.

Health: ``starting`` until the first readout; ``ok`` after a good one; ``reduced data set`` after a missed
readout or when a ``required`` register is missing; ``stale`` after ``stale_after`` missed readouts in a row;
``source lost`` while the port cannot be opened or is gone (reported once; reopened every
``reopen_interval`` seconds, at once on a hot-plug attach, without a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bab.obis import Obis
from bab.reading import Reading
from bab.schema import Bool, Custom, Float, Int, ListOf, Str
from bab.transport import StreamTransport, TransportError, TransportLost

from ..api import Driver, DriverContext, Health, ReadingSink
from ..hotplug import Attached, HeadIdentity, HotplugMonitor
from .dataset import parse_readout
from .protocol import BAUD_C, ChangeBaud, CycleFailed, D0Client, D0Config, D0Mode, Dropped, Event, Readout, Transmit

log = logging.getLogger(__name__)

TransportFactory = Callable[[str, int], Any]  # (port, baudrate) -> object with StreamTransport's interface


def _obis(value: Any) -> Obis:
    return Obis.parse(str(value))


def _baud_char(allowed: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value)
        if isinstance(value, bool) or len(text) != 1 or text not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return text
    return convert


class D0Driver(Driver):
    """IEC 62056-21 meter on an optical head (or any serial/URL transport)."""

    options_schema = {
        "port": Str(doc="device path, /dev/serial/by-id/... path, usb:VID:PID[:SERIAL] or pyserial URL",
                    example="/dev/serial/by-id/usb-FTDI_FT230X_Basic_UART_D30A1B2C-if00-port0"),
        "mode": Str(doc="IEC 62056-21 protocol mode (B and C negotiate by the meter's baud character)",
                    choices=("A", "B", "C", "D"), default="C"),
        "address": Str(doc="device address in the sign-on /?address! (empty: any meter)", default=""),
        "baudrate": Int(doc="sign-on rate (modes A-C) or push rate (mode D); default 300, mode D 2400",
                        default=None, min=300, max=115200),
        "max_baudrate": Int(doc="highest rate accepted in the mode C negotiation", default=19200,
                            min=300, max=19200),
        "interval": Float(doc="seconds between readout starts (modes A-C)", default=10.0, min=0.0),
        "reaction_delay": Float(doc="seconds the client waits before answering the meter", default=0.2,
                                min=0.0, max=1.5),
        "fast_reaction": Bool(doc="use 20 ms when the meter's 3rd FLAG letter is lower case", default=True),
        "changeover_delay": Float(doc="extra seconds after the ACK left the wire before the baud change",
                                  default=0.03, min=0.0, max=1.0),
        "response_timeout": Float(doc="longest silence (seconds) while waiting for the meter", default=2.0,
                                  min=0.1),
        "ack_baud_char": Custom(convert=_baud_char("".join(BAUD_C)), what="a mode C baud character 0-6",
                                doc="force the baud character Z of the ACK (meters that lie)", default=None),
        "ident_baud_char": Custom(convert=_baud_char("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                                  what="a baud character (0-6 mode C, A-I mode B, other: mode A)",
                                  doc="treat the identification as if it had this baud character", default=None),
        "password": Str(doc="P1 password/PIN (mode C programming mode, then R1 reads)", default=None),
        "password_registers": ListOf(item=Str(), doc="registers read with R1 after the password",
                                     default=lambda: ["1.8.0", "2.8.0"]),
        "required": ListOf(item=Custom(convert=_obis, what="an OBIS code"),
                           doc="registers whose absence makes the health 'reduced data set'",
                           default=lambda: [Obis(1, 0, 1, 8, 0)]),
        "stale_after": Int(doc="missed readouts in a row before the health is 'stale'", default=3, min=1),
        "push_timeout": Float(doc="mode D: seconds without a telegram that count as a missed readout",
                              default=10.0, min=0.5),
        "reopen_interval": Float(doc="seconds between attempts to reopen a lost port", default=2.0, min=0.05),
        "hotplug": Bool(doc="follow the optical head with udev (by-id or usb: ports)", default=True),
        "max_message_bytes": Int(doc="receive buffer bound; longer messages are dropped", default=16384,
                                 min=256),
    }

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 transport_factory: TransportFactory | None = None,
                 hotplug: HotplugMonitor | None = None) -> None:
        super().__init__(options, context)
        opt = {k: t.default_value() for k, t in self.options_schema.items() if k != "port"}
        opt.update(options)
        self.opt = opt
        mode = D0Mode(opt["mode"])
        baud = opt["baudrate"] or (2400 if mode is D0Mode.D else 300)
        self.config = D0Config(
            mode=mode, address=opt["address"], initial_baudrate=baud, max_baudrate=opt["max_baudrate"],
            reaction_delay=opt["reaction_delay"], honour_fast_reaction=opt["fast_reaction"],
            changeover_delay=opt["changeover_delay"], response_timeout=opt["response_timeout"],
            ack_baud_char=opt["ack_baud_char"], ident_baud_char=opt["ident_baud_char"],
            password=opt["password"], password_registers=tuple(opt["password_registers"]),
            max_message_bytes=opt["max_message_bytes"],
        )
        self.port: str = str(options["port"])
        self._factory = transport_factory or (lambda port, rate: StreamTransport(port, rate))
        identity = HeadIdentity.from_port(self.port)
        if hotplug is None and identity is not None and opt["hotplug"]:
            hotplug = HotplugMonitor(identity)
        self.hotplug = hotplug
        self.client = D0Client(self.config)
        self.stats: Counter[str] = Counter()  # cycles, failures, drops (plus the protocol counters)
        self.health: Health | None = None
        self.last_readings: list[Reading] = []
        self._missed = 0
        self._reopen = asyncio.Event()
        self._transport: Any = None

    # ---- health ------------------------------------------------------------------------------------------

    def _set_health(self, sink: ReadingSink, health: Health, detail: str = "") -> None:
        if health == self.health:
            return
        self.health = health
        (log.warning if health in (Health.STALE, Health.SOURCE_LOST) else log.info)(
            "D0 %s: %s%s", self.context.meter_id, health.value, f" ({detail})" if detail else "")
        sink.set_health(health, detail)

    def _missed_readout(self, sink: ReadingSink, reason: str, detail: str) -> None:
        self._missed += 1
        self.stats["missed"] += 1
        log.debug("D0 %s: missed readout: %s", self.context.meter_id, detail)
        if self._missed >= self.opt["stale_after"]:
            self._set_health(sink, Health.STALE, f"{self._missed} missed readouts, last: {reason}")
        elif self.health in (Health.OK, Health.REDUCED):
            self._set_health(sink, Health.REDUCED, f"missed readout: {reason}")

    def _got_readout(self, sink: ReadingSink, readout: Readout) -> None:
        result = parse_readout(readout.data, time=time.time())
        self.stats.update(result.drops)
        self._missed = 0
        self.last_readings = result.readings
        if result.readings:
            sink.publish(result.readings)
        present = {r.obis for r in result.readings}
        missing = [str(o) for o in self.opt["required"] if o not in present]
        if missing:
            self._set_health(sink, Health.REDUCED, "missing " + ", ".join(missing))
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
                    log.exception("D0 %s: internal error; reopening the port", self.context.meter_id)
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
        transport = self._factory(port, self.config.initial_baudrate)
        try:
            await transport.open()
        except (TransportError, OSError) as exc:
            self._set_health(sink, Health.SOURCE_LOST, str(exc))
            return None
        if self.health is Health.SOURCE_LOST:
            log.info("D0 %s: port %s reopened", self.context.meter_id, port)
            self._missed = 0
            self.health = None  # the next readout reports ok/reduced again
            self._set_health(sink, Health.STARTING, "port reopened")
        self.client = D0Client(self.config)
        return transport

    async def _wait_reopen(self) -> None:
        """Wait ``reopen_interval`` or until a hot-plug attach (one that came early is not lost)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reopen.wait(), self.opt["reopen_interval"])
        self._reopen.clear()

    async def _watch_hotplug(self) -> None:
        assert self.hotplug is not None
        try:
            async for change in self.hotplug.changes():
                if isinstance(change, Attached):
                    log.info("D0 %s: optical head %s attached at %s", self.context.meter_id, self.hotplug.identity,
                             change.device_node)
                    self._reopen.set()
                elif self._transport is not None:
                    self._transport.abort("optical head unplugged")
        except Exception as exc:  # no netlink socket (container): fall back to periodic reopening
            log.info("D0 %s: hot-plug events unavailable (%s); reopening by polling", self.context.meter_id, exc)

    async def _do(self, transport: Any, events: Sequence[Event], sink: ReadingSink) -> None:
        for ev in events:
            if isinstance(ev, Transmit):
                await transport.write(ev.data)
            elif isinstance(ev, ChangeBaud):
                transport.set_baudrate(ev.baudrate)
            elif isinstance(ev, Readout):
                self.stats["readouts"] += 1
                self._got_readout(sink, ev)
            elif isinstance(ev, CycleFailed):
                self.stats[ev.reason] += 1
                self._missed_readout(sink, ev.reason, ev.detail)
            elif isinstance(ev, Dropped):
                self.stats[ev.reason] += 1
                log.debug("D0 %s: dropped: %s", self.context.meter_id, ev.detail)

    async def _read_until(self, transport: Any, until: float | None, sink: ReadingSink) -> bool:
        """Feed received bytes to the core until ``until`` (monotonic) or until the core's next deadline.

        Returns False when the wait ended by time-out."""
        client = self.client
        deadline = client.deadline()
        if until is not None:
            deadline = until if deadline is None else min(deadline, until)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            data = await asyncio.wait_for(transport.read(), timeout)
        except TimeoutError:
            await self._do(transport, client.tick(time.monotonic()), sink)
            return False
        now = time.monotonic()
        await self._do(transport, client.receive(data, now), sink)
        await self._do(transport, client.tick(now), sink)
        return True

    async def _serve(self, transport: Any, sink: ReadingSink) -> None:
        if self.config.mode is D0Mode.D:
            await self._serve_push(transport, sink)
            return
        while True:
            started = time.monotonic()
            self.stats["cycles"] += 1
            await self._do(transport, self.client.start(started), sink)
            while self.client.busy:
                await self._read_until(transport, None, sink)
            next_start = started + self.opt["interval"]
            while time.monotonic() < next_start:
                await self._read_until(transport, next_start, sink)  # stray bytes are counted by the core

    async def _serve_push(self, transport: Any, sink: ReadingSink) -> None:
        await self._do(transport, self.client.start(time.monotonic()), sink)
        last = time.monotonic()
        while True:
            before = self.stats["readouts"]
            until = last + self.opt["push_timeout"]
            await self._read_until(transport, until, sink)
            now = time.monotonic()
            if self.stats["readouts"] != before:
                last = now
            elif now >= until:
                last = now
                self._missed_readout(sink, "timeouts", "no push telegram")
