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
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bab.schema import Bool, Custom, Float, Int, ListOf, Str
from bab.transport import StreamTransport

from ..api import DriverContext, ReadingSink
from ..hotplug import HotplugMonitor
from ..serial_driver import SERIAL_OPTIONS, SerialDriver, TransportFactory
from .dataset import parse_readout
from .protocol import BAUD_C, ChangeBaud, CycleFailed, D0Client, D0Config, D0Mode, Dropped, Event, Readout, Transmit

log = logging.getLogger(__name__)


def _baud_char(allowed: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value)
        if isinstance(value, bool) or len(text) != 1 or text not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return text
    return convert


class D0Driver(SerialDriver):
    """IEC 62056-21 meter on an optical head (or any serial/URL transport)."""

    name = "D0"

    options_schema = {
        **SERIAL_OPTIONS,
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
        "push_timeout": Float(doc="mode D: seconds without a telegram that count as a missed readout",
                              default=10.0, min=0.5),
        "max_message_bytes": Int(doc="receive buffer bound; longer messages are dropped", default=16384,
                                 min=256),
    }

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 transport_factory: TransportFactory | None = None,
                 hotplug: HotplugMonitor | None = None) -> None:
        super().__init__(options, context, transport_factory=transport_factory, hotplug=hotplug)
        opt = self.opt
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
        self.client = D0Client(self.config)

    def _make_transport(self, port: str, baudrate: int) -> Any:
        return StreamTransport(port, baudrate)  # 7E1

    def _initial_baudrate(self) -> int:
        return self.config.initial_baudrate

    def _on_open(self) -> None:
        self.client = D0Client(self.config)

    def _got_readout(self, sink: ReadingSink, readout: Readout) -> None:
        result = parse_readout(readout.data, time=time.time())
        self.stats.update(result.drops)
        self._publish(sink, result.readings)

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
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                data = await transport.read()
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
