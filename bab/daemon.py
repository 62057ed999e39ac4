"""The BAB daemon (``bab run``): the meters of one configuration on one LMN port.

Everything protocol-related lives in the sans-I/O cores; this module wires them to asyncio: the LMN link
(a serial port or any pyserial URL, or an in-memory bus for ``bab demo``), the legacy drivers as tasks, the
meters' services, and logging of state changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Protocol

from bab.config import Config
from bab.lmn.node import LinkNode
from bab.lmn.port import SerialTransport
from bab.lmn.runner import NodeRunner
from bab.meter import MeterRuntime

log = logging.getLogger("bab.daemon")


class Link(Protocol):
    """A byte link towards the gateway (SerialTransport, or a virtual bus port)."""

    def open(self, on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None] | None = None
             ) -> None: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Daemon:
    def __init__(self, config: Config, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.meters: list[MeterRuntime] = []
        self.runner: NodeRunner | None = None
        self.lost: asyncio.Future[Exception | None] | None = None
        self._tasks: list[asyncio.Task] = []

    def build(self) -> None:
        loop = asyncio.get_running_loop()
        stations = lambda: [m.station for m in self.meters]  # noqa: E731
        for mc in self.config.meters:
            self.meters.append(MeterRuntime(mc, self.config.lmn, self.config.state_dir, clock=loop.time,
                                            rng=random.Random(self.rng.random()), siblings=stations))

    def _on_step(self, now: float) -> None:
        for m in self.meters:
            m.handle_events()

    async def run(self, link: Link | None = None, ready: Callable[[], None] | None = None) -> None:
        """Run until cancelled or the LMN port is lost (then raise the port error)."""
        if not self.meters:
            self.build()
        link = link or SerialTransport(self.config.lmn.port, self.config.lmn.baudrate, rs485=self.config.lmn.rs485)
        node = LinkNode([m.station for m in self.meters])
        runner = NodeRunner(node, link.write, on_step=self._on_step)
        self.runner = runner
        loop = asyncio.get_running_loop()
        self.lost = loop.create_future()

        def on_lost(exc: Exception | None) -> None:
            if not self.lost.done():
                self.lost.set_result(exc)

        link.open(runner.feed, on_lost)
        log.info("LMN port %s open; presenting %s", self.config.lmn.port,
                 ", ".join(m.meter_id for m in self.meters))
        for m in self.meters:
            self._tasks.append(asyncio.create_task(self._run_driver(m), name=f"driver {m.meter_id}"))
        self._tasks.append(asyncio.create_task(runner.run(), name="lmn"))
        if ready is not None:
            ready()
        try:
            exc = await self.lost
            raise ConnectionError(f"LMN port {self.config.lmn.port} lost: {exc}")
        finally:
            for t in self._tasks:
                t.cancel()
            for t in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            link.close()

    async def _run_driver(self, m: MeterRuntime) -> None:
        """Run a driver; a crash is logged and the driver restarted after a pause, never taking BAB down."""
        from legacy_drivers.api import Health

        delay = 1.0
        while True:
            try:
                await m.driver.run(m.values)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("%s: driver %s failed: %s; restarting in %.0f s", m.meter_id,
                              m.config.driver_type, exc, delay)
                m.values.set_health(Health.SOURCE_LOST, f"driver error: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
