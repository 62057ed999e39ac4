"""The BAB daemon (``bab run``): the meters of one configuration on one LMN port.

Everything protocol-related lives in the sans-I/O cores; this module wires them to asyncio: the LMN link
(a serial port or any pyserial URL, or an in-memory bus for ``bab demo``), the legacy drivers as tasks, the
meters' services, and logging of state changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bab.config import Config
from bab.lmn.node import LinkNode
from bab.lmn.runner import NodeRunner
from bab.mapping import MappedSink
from bab.meter import MeterRuntime
from bab.persist import WriteBehind
from bab.sim.control import SimControl, handle_request
from bab.transport import PortTransport

log = logging.getLogger("bab.daemon")


_HASH_MODULUS = 2**61 - 1  # CPython's numeric hash modulus on 64-bit platforms


def seed_from(u: float) -> int:
    """The integer seed that ``random.Random(u)`` uses for a float on 64-bit CPython (``hash(u)``).

    Seeding with the float itself goes through ``hash()``, whose modulus is 2**31 - 1 on 32-bit platforms
    (armhf): the same ``random_seed`` then chose other LMN addresses there, and a recorded session no longer
    replayed. This integer gives every platform the 64-bit platforms' choices (for 0 <= u < 1).
    """
    num, den = u.as_integer_ratio()
    return num * pow(den, -1, _HASH_MODULUS) % _HASH_MODULUS


class Link(Protocol):
    """A byte link towards the gateway (PortTransport, or a virtual bus port)."""

    def open(self, on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None] | None = None
             ) -> None: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Daemon:
    def __init__(self, config: Config, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random(config.lmn.random_seed)
        self.meters: list[MeterRuntime] = []
        self.runner: NodeRunner | None = None
        self.lost: asyncio.Future[Exception | None] | None = None
        self.port_open = False
        self.port_error: str | None = None  # why the LMN port is not open (missing at start, lost)
        self.port_retries = 0
        self.port_losses = 0
        self.port_last_loss: str | None = None
        self.started = time.monotonic()
        self.writer = WriteBehind()  # state files are fsync'ed off the event loop
        self._tasks: list[asyncio.Task] = []
        self.sim = SimControl(lambda: self.meters)  # the lab meter's run-time commands (bab sim, status socket)

    def handle_request(self, request: Mapping[str, Any]) -> dict:
        """A request line of the status socket (the lab meter's commands, :mod:`bab.sim.control`)."""
        return handle_request(self.sim, request)

    def build(self) -> None:
        loop = asyncio.get_running_loop()
        stations = lambda: [m.station for m in self.meters]  # noqa: E731
        for mc in self.config.meters:
            self.meters.append(MeterRuntime(mc, self.config.lmn, self.config.state_dir, clock=loop.time,
                                            rng=random.Random(seed_from(self.rng.random())), siblings=stations,
                                            writer=self.writer))

    def _on_step(self, now: float) -> None:
        for m in self.meters:
            m.handle_events()

    async def run(self, link: Link | None = None, ready: Callable[[], None] | None = None,
                  on_port: Callable[[str], None] | None = None) -> None:
        """Run until cancelled.

        The LMN port (a USB-RS485 adapter that can be missing at start or unplugged later) is opened, and
        reopened whenever it was lost, with a retry backoff from :attr:`PORT_RETRY_MIN` to
        :attr:`PORT_RETRY_MAX` seconds; an udev ``add`` of a tty wakes the retry early where pyudev can
        watch. Meanwhile the drivers keep collecting and ``bab status`` says "LMN port missing". ``ready`` is
        called once everything runs, port or not (systemd must not time the start out and restart-loop);
        ``on_port`` gets a one-line description at each port state change (the systemd status line).
        """
        if not self.meters:
            self.build()
        # A full garbage collection over the ~30,000 objects of the loaded stack takes ~8 ms here (more on a Pi):
        # longer than a slot's 5 ms reply window. Freeze everything that exists after start-up so collections
        # only scan what the running daemon allocates (bench/lmn_link.py: slot hit rate).
        gc.collect()
        gc.freeze()
        link = link or PortTransport(self.config.lmn.port, self.config.lmn.baudrate, rs485=self.config.lmn.rs485)
        node = LinkNode([m.endpoint for m in self.meters])
        runner = NodeRunner(node, link.write, on_step=self._on_step)
        self.runner = runner
        loop = asyncio.get_running_loop()
        for m in self.meters:
            self._tasks.append(asyncio.create_task(self._run_driver(m), name=f"driver {m.meter_id}"))
        self._tasks.append(asyncio.create_task(runner.run(), name="lmn"))
        self._tasks.append(asyncio.create_task(self._tick(), name="meter clocks"))
        try:
            await self._serve_port(link, runner, ready, on_port or (lambda text: None))
        finally:
            self.port_open = False
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            # A secondary cannot send DISC on its own in normal response mode: the open connections are closed
            # locally (their upper layers flush their state) and the gateway hears the meter fall silent.
            now = loop.time()
            for m in self.meters:
                m.station.disconnect("BAB shutting down")
                m.handle_events()
                m.sml.model.shutdown(now)  # the exact seconds index, so a restart resumes without a gap
            await asyncio.to_thread(self.writer.flush)  # every state file on disk before we exit
            link.close()

    #: Port retry backoff (seconds): the first retry after PORT_RETRY_MIN, doubling up to PORT_RETRY_MAX.
    PORT_RETRY_MIN = 0.5
    PORT_RETRY_MAX = 5.0

    async def _serve_port(self, link: Link, runner: NodeRunner, ready: Callable[[], None] | None,
                          on_port: Callable[[str], None]) -> None:
        """Open the LMN port, serve it until it is lost, and again; never returns (cancel it)."""
        from bab.transport import TransportError

        loop = asyncio.get_running_loop()
        port = self.config.lmn.port
        meters = ", ".join(m.meter_id for m in self.meters)
        delay = self.PORT_RETRY_MIN
        wake = asyncio.Event()
        watcher = _TtyWatcher(lambda: loop.call_soon_threadsafe(wake.set))
        watcher.start()
        try:
            while True:
                lost: asyncio.Future[Exception | None] = loop.create_future()

                def on_lost(exc: Exception | None, lost: asyncio.Future[Exception | None] = lost) -> None:
                    if not lost.done():
                        lost.set_result(exc)

                try:
                    link.open(runner.feed, on_lost)
                except (TransportError, OSError) as exc:
                    if self.port_error is None or self.port_error.startswith("lost"):
                        log.warning("LMN port missing: %s; the drivers keep collecting, retrying every %.1f-%.0f s",
                                    exc, self.PORT_RETRY_MIN, self.PORT_RETRY_MAX)
                        on_port(f"LMN port missing ({port}); waiting for it; drivers collecting")
                    self.port_error = str(exc)
                    self.port_retries += 1
                    if ready is not None:
                        ready()
                        ready = None
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await wake.wait()
                    delay = min(delay * 2, self.PORT_RETRY_MAX)
                    continue
                self.port_open = True
                self.port_error = None
                delay = self.PORT_RETRY_MIN
                log.info("LMN port %s open; presenting %s", port, meters)
                on_port(f"serving {len(self.meters)} meter(s) on {port}")
                if ready is not None:
                    ready()
                    ready = None
                exc = await lost
                self.port_open = False
                self.port_error = f"lost: {exc}"
                self.port_last_loss = str(exc)
                self.port_losses += 1
                log.warning("LMN port %s lost (%s); the drivers keep collecting, reopening when it returns",
                            port, exc)
                on_port(f"LMN port missing ({port}: lost); waiting for it; drivers collecting")
                with contextlib.suppress(Exception):
                    link.close()
                # The gateway lost us too: every connection is over (their upper layers flush their state).
                for m in self.meters:
                    m.station.disconnect("LMN port lost")
                    m.handle_events()
        finally:
            watcher.stop()

    async def _tick(self) -> None:
        """Once a second: each meter's seconds index persistence and 15-minute profile capture."""
        loop = asyncio.get_running_loop()
        while True:
            for m in self.meters:
                try:
                    m.sml.model.tick(loop.time(), time.time())
                except OSError as exc:
                    log.error("%s: cannot persist meter state: %s", m.meter_id, exc)
            await asyncio.sleep(1.0)

    async def _run_driver(self, m: MeterRuntime) -> None:
        """Run a driver; a crash is logged and the driver restarted after a pause, never taking BAB down."""
        from legacy_drivers.api import Health

        delay = 1.0
        while True:
            try:
                await m.driver.run(MappedSink(m.values, m.config.mapping))
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("%s: driver %s failed: %s; restarting in %.0f s", m.meter_id,
                              m.config.driver_type, exc, delay)
                m.values.set_health(Health.SOURCE_LOST, f"driver error: {exc}")
                m.counters["driver_errors"] = m.counters.get("driver_errors", 0) + 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)


    def status(self) -> dict:
        """The status document of ``bab status`` (shape: :mod:`bab.status`)."""
        from bab.status import reading_entry

        now = asyncio.get_running_loop().time()
        rx = self.runner.node.receiver.counters if self.runner else None
        meters = []
        for m in self.meters:
            st = m.station
            readings = []
            for obis, r in sorted(m.values.readings.items()):
                entry = reading_entry(m.values.get(obis) or r, now)
                entry["age_s"] = round(now - m.values.received_at.get(obis, now), 3)
                readings.append(entry)
            meters.append({
                "id": m.meter_id,
                "lmn": {
                    "state": st.state.value, "address": st.address, "selector": st.connected_selector,
                    "paired": m.security.paired, "tls_up": m.security.tls_up,
                    "last_request_age_s": None if st.last_request is None else round(now - st.last_request, 3),
                },
                "driver": {"type": m.config.driver_type, "health": m.values.health.value,
                           "detail": m.values.health_detail,
                           "counters": {k: v for k, v in sorted(getattr(m.driver, "stats", {}).items())}},
                "readings": readings,
                "errors": {
                    "bad_frames": (rx.bad_hcs + rx.bad_fcs) if rx else 0,
                    "tls_failures": m.counters.get("tls_failures", 0),
                    "sym_failures": m.counters.get("sym_failures", 0),
                    "driver_errors": m.counters.get("driver_errors", 0),
                    "slot_missed": st.counters.slot_missed,
                    "slot_late": st.counters.slot_late,
                    "sequence_errors": st.counters.sequence_errors,
                },
                "faults": m.faults.describe(),  # the lab meter: active faults, injections per kind
            })
        from bab import __version__

        return {
            "daemon": {"version": __version__, "pid": os.getpid(),
                       "uptime_s": round(time.monotonic() - self.started, 1), "config": self.config.source},
            "lmn": {"port": self.config.lmn.port, "baudrate": self.config.lmn.baudrate,
                    "port_open": self.port_open, "port_error": None if self.port_open else self.port_error,
                    "port_retries": self.port_retries, "port_losses": self.port_losses,
                    "port_last_loss": self.port_last_loss},
            "meters": meters,
        }


class _TtyWatcher:
    """Calls ``wake`` when udev adds a tty device (a USB-RS485 adapter plugged in), so a missing LMN port is
    retried at once instead of at the next backoff step. A no-op where pyudev or a udev monitor (netlink)
    is not available: the backoff retries find the port anyway."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._observer = None

    def start(self) -> None:
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("tty")

            def event(device: pyudev.Device) -> None:
                if device.action == "add":
                    self._wake()

            self._observer = pyudev.MonitorObserver(monitor, callback=event, name="bab udev tty")
            self._observer.start()
        except Exception as exc:  # no udev (container, chroot): retries only
            log.debug("no udev monitor for the LMN port (%s); retrying on a timer only", exc)
            self._observer = None

    def stop(self) -> None:
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
            self._observer = None
