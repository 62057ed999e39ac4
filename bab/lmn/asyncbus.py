"""The virtual RS-485 bus in real time for asyncio: ``bab demo``, the TCP bus hub and real-time tests.

Wraps :class:`~bab.lmn.bus.VirtualBus` (collisions, noise) with the loop clock: a port's ``write`` puts bytes on
the bus now, and every other port's receiver gets them when their last byte has crossed the line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .bus import BusPort, VirtualBus


class AsyncBus:
    def __init__(self, bus: VirtualBus | None = None) -> None:
        self.bus = bus or VirtualBus()
        self._receivers: dict[int, Callable[[bytes, float], None]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, name: str, receive: Callable[[bytes, float], None]) -> AsyncBusPort:
        port = self.bus.attach(name)
        self._receivers[id(port)] = receive
        return AsyncBusPort(self, port)

    def detach(self, port: AsyncBusPort) -> None:
        port.port.listening = False
        self._receivers.pop(id(port.port), None)

    def _transmit(self, port: BusPort, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.bus.transmit(port, data, loop.time())
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        t = self.bus.next_delivery()
        if t is None:
            return
        if self._timer is not None:
            if self._timer.when() <= t:
                return
            self._timer.cancel()
        self._timer = loop.call_at(t, self._deliver)

    def _deliver(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        for port, data, t in self.bus.deliveries_due(loop.time()):
            receive = self._receivers.get(id(port))
            if receive is not None:
                receive(data, t)
        self._arm(loop)


class AsyncBusPort:
    def __init__(self, owner: AsyncBus, port: BusPort) -> None:
        self.owner = owner
        self.port = port

    def write(self, data: bytes) -> None:
        self.owner._transmit(self.port, data)


class BusLink:
    """The daemon's LMN link (``open``/``write``/``close``, like its serial link) on a port of an
    :class:`AsyncBus`: how ``bab demo`` and the tests run a daemon on an in-memory bus."""

    def __init__(self, bus: AsyncBus, name: str) -> None:
        self.bus, self.name = bus, name
        self.port: AsyncBusPort | None = None

    def open(self, on_data: Callable[[bytes], None], on_lost: Callable[..., None] | None = None) -> None:
        self.port = self.bus.attach(self.name, lambda data, t: on_data(data))

    def write(self, data: bytes) -> None:
        if self.port is not None:
            self.port.write(data)

    def close(self) -> None:
        if self.port is not None:
            self.bus.detach(self.port)
            self.port = None

