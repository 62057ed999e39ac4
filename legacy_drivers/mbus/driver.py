"""The wired M-Bus driver (``type: mbus``): gas, water and heat meters read by an M-Bus master.

The master is :class:`~legacy_drivers.mbus.link.MbusMaster` (sans-I/O) on a level converter (USB or Pi HAT)
at ``port``: a device path, ``/dev/serial/by-id/...``, ``usb:VID:PID[:SERIAL]`` or any pyserial URL, 8E1 at
``baudrate`` (2400 by default; 300 and 9600 are the other usual rates). Every ``interval`` seconds it reads
its slave, chosen by ``address`` (primary, 0..250) or ``secondary_address`` (8 digits, ``F`` = any digit,
optionally narrowed by ``manufacturer``, ``version`` and ``select_medium``), decodes the records
(:mod:`~legacy_drivers.mbus.records`) and publishes the readings of the meter's medium
(:mod:`~legacy_drivers.mbus.obis_map`). The medium is the first digit of the LMN meter ID: ``7...`` gas,
``8...`` cold water, ``9...`` warm/hot water, ``6...`` heat, ``5...`` cooling.

Several slaves on one bus are several meters in the configuration, each with this driver and the same
``port``: they share one open port and take turns (:mod:`~legacy_drivers.mbus.bus`).

Health, as for the other serial drivers: ``starting``; ``ok`` after a good readout; ``reduced data set``
after a failed readout or when a ``required`` register (default: the medium's main register) is missing;
``stale`` after ``stale_after`` failed readouts in a row; ``source lost`` while the port is gone. A failed
readout (no answer, bad checksum, wrong length, truncated, an application error, a slave of another medium)
is counted in :attr:`stats` under its reason and never publishes a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bab.medium import Medium
from bab.schema import Bool, Custom, Float, Int, ListOf, Nullable, Str

from ..api import DriverContext, ReadingSink
from ..hotplug import HotplugMonitor
from ..serial_driver import SERIAL_OPTIONS, SerialDriver, TransportFactory, obis_option
from .bus import BusHandle
from .link import CycleFailed, Dropped, Event, LinkTiming, MbusMaster, Primary, Readout, Secondary, Transmit
from .obis_map import MEDIUM_NAMES, SUPPORTED_MEDIA, map_readout, medium_fits

log = logging.getLogger(__name__)

BAUD_RATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)


def _baudrate(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in BAUD_RATES:
        raise ValueError("one of " + ", ".join(map(str, BAUD_RATES)))
    return value


def _secondary(value: Any) -> str:
    text = f"{value:08d}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    Secondary(text)  # raises ValueError with the reason
    return text.upper()


def _manufacturer(value: Any) -> str:
    text = str(value).upper()
    if len(text) != 3 or not text.isalpha() or not text.isascii():
        raise ValueError("three letters (the FLAG manufacturer ID, e.g. ACW)")
    return text


def meter_medium(meter_id: str) -> Medium:
    """The medium an M-Bus meter presents itself as: the first digit of its LMN meter ID."""
    medium = Medium.of_sparte(meter_id[:1])
    if medium not in SUPPORTED_MEDIA:
        names = ", ".join(f"{m.digit} {m.name.lower().replace('_', ' ')}" for m in SUPPORTED_MEDIA)
        raise ValueError(f"meter ID {meter_id} starts with {meter_id[:1]!r}: an M-Bus meter's ID must start with "
                         f"its medium's digit ({names})")
    return medium


class MbusDriver(SerialDriver):
    """One M-Bus slave (see the module docstring)."""

    name = "M-Bus"

    options_schema = {
        **SERIAL_OPTIONS,
        "required": Nullable(ListOf(item=Custom(convert=obis_option, what="an OBIS code")),
                             doc="registers whose absence makes the health 'reduced data set' (null: the main "
                                 "register of the meter's medium, e.g. 7-0:3.0.0 for gas)", default=None),
        "baudrate": Custom(convert=_baudrate, what="an M-Bus baud rate", doc="line speed, 8E1 (" +
                           ", ".join(map(str, BAUD_RATES)) + ")", default=2400),
        "address": Nullable(Int(min=0, max=250), doc="primary address of the slave (0..250)", default=None),
        "secondary_address": Nullable(Custom(convert=_secondary, what="8 digits, F = any digit"),
                                      doc="secondary address (identification number) of the slave",
                                      default=None),
        "manufacturer": Nullable(Custom(convert=_manufacturer, what="three letters"),
                                 doc="secondary addressing: the slave's manufacturer (FLAG ID)", default=None),
        "version": Nullable(Int(min=0, max=254), doc="secondary addressing: the slave's version", default=None),
        "select_medium": Nullable(Int(min=0, max=254), doc="secondary addressing: the slave's M-Bus medium code",
                                  default=None),
        "interval": Float(doc="seconds between readout starts", default=60.0, min=0.0),
        "snd_nke": Bool(doc="primary addressing: send SND_NKE before each readout (resets the FCB and the "
                            "multi-telegram sequence)", default=True),
        "retries": Int(doc="repetitions of a request without a good answer", default=2, min=0, max=5),
        "latency": Float(doc="seconds of converter/OS latency added to the standard's time-outs", default=0.05,
                         min=0.0, max=2.0),
        "max_telegrams": Int(doc="most telegrams of a multi-telegram readout", default=8, min=1, max=64),
        "meter_time": Str(doc="how the meter's clock is read (it has no time zone): local, utc, or ignore it",
                          choices=("local", "utc", "ignore"), default="local"),
        "check_medium": Bool(doc="refuse readouts whose medium does not fit the meter ID", default=True),
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], meter_id: str) -> tuple[str, str] | None:
        """Configuration check: (key, message) of the first problem, or None."""
        try:
            meter_medium(meter_id)
        except ValueError as exc:
            return "id", str(exc)
        if (options.get("address") is None) == (options.get("secondary_address") is None):
            return "address", "give either address (primary) or secondary_address"
        if options.get("secondary_address") is None:
            for key in ("manufacturer", "version", "select_medium"):
                if options.get(key) is not None:
                    return key, "only used with secondary_address"
        return None

    def __init__(self, options: Mapping[str, Any], context: DriverContext, *,
                 transport_factory: TransportFactory | None = None,
                 hotplug: HotplugMonitor | None = None) -> None:
        super().__init__(options, context, transport_factory=transport_factory, hotplug=hotplug)
        problem = self.check(self.opt, context.meter_id)
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        opt = self.opt
        self.medium = meter_medium(context.meter_id)
        if opt["required"] is None:
            main = self.medium.main_register
            opt["required"] = [main] if main is not None else []
        self.slave = Primary(opt["address"]) if opt["address"] is not None else Secondary(
            opt["secondary_address"], opt["manufacturer"], opt["version"], opt["select_medium"])
        self.timing = LinkTiming(opt["baudrate"], opt["latency"], opt["retries"], opt["max_telegrams"])
        self.master = MbusMaster(self.slave, self.timing, snd_nke=opt["snd_nke"])
        self.last_header = None

    def _make_transport(self, port: str, baudrate: int) -> Any:
        return BusHandle(port, baudrate)

    def _initial_baudrate(self) -> int:
        return self.timing.baudrate

    def _on_open(self) -> None:
        self.master = MbusMaster(self.slave, self.timing, snd_nke=self.opt["snd_nke"])

    # ---- one readout ---------------------------------------------------------------------------------

    async def _do(self, transport: Any, events: Sequence[Event]) -> Readout | CycleFailed | None:
        for ev in events:
            if isinstance(ev, Transmit):
                if ev.delay > 0:
                    await asyncio.sleep(ev.delay)
                await transport.write(ev.data)
            elif isinstance(ev, Dropped):
                self.stats[ev.reason] += 1
                log.debug("%s %s: dropped: %s", self.name, self.context.meter_id, ev.detail)
            else:
                return ev
        return None

    async def readout(self, transport: Any) -> Readout | CycleFailed:
        """One readout of the slave on an open transport (the caller holds the bus)."""
        master = self.master
        result = await self._do(transport, master.start(time.monotonic()))
        while result is None:
            deadline = master.deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                    data = await transport.read()
            except TimeoutError:
                result = await self._do(transport, master.tick(time.monotonic()))
                continue
            now = time.monotonic()
            result = await self._do(transport, [*master.receive(data, now), *master.tick(now)])
        return result

    def _got_readout(self, sink: ReadingSink, ev: Readout) -> None:
        header = ev.telegrams[0].header
        self.last_header = header
        if header is not None and header.medium is not None and self.opt["check_medium"] \
                and not medium_fits(self.medium, header.medium):
            self.stats["medium_mismatch"] += 1
            name = MEDIUM_NAMES.get(header.medium, f"{header.medium:#04x}")
            self._missed_readout(sink, "medium_mismatch", f"the slave reports medium {name}, the meter ID "
                                 f"{self.context.meter_id} says {self.medium.name.lower()}")
            return
        records = [r for t in ev.telegrams for r in t.records]
        mapped = map_readout(records, header, self.medium, capture_time=time.time(),
                             meter_time=self.opt["meter_time"])
        self.stats.update(mapped.drops)
        self._publish(sink, mapped.readings)

    async def _serve(self, transport: Any, sink: ReadingSink) -> None:
        while True:
            started = time.monotonic()
            self.stats["cycles"] += 1
            hold = transport.transaction() if hasattr(transport, "transaction") else contextlib.nullcontext()
            async with hold:
                result = await self.readout(transport)
            if isinstance(result, Readout):
                self.stats["readouts"] += 1
                self._got_readout(sink, result)
            else:
                self.stats[result.reason] += 1
                log.info("%s %s: readout failed: %s", self.name, self.context.meter_id, result.detail,
                         extra={"meter_id": self.context.meter_id, "layer": self.name})
                self._missed_readout(sink, result.reason, result.detail)
            delay = started + self.opt["interval"] - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
