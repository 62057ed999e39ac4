"""One M-Bus line shared by the drivers of all slaves on it.

Each slave on a bus is its own LMN meter with its own driver, but the bus has one serial port and carries
one transaction at a time. :class:`BusHandle` is what an :class:`~legacy_drivers.mbus.driver.MbusDriver`
uses as its transport: every handle of the same ``port`` in the process shares one
:class:`~bab.transport.StreamTransport` (opened by the first, closed by the last) and one lock;
:meth:`BusHandle.transaction` holds the bus for one readout, sets that slave's baud rate and throws away
bytes left on the line by an earlier transaction. When the port is lost every handle sees it, and the next
open creates a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import serial

from bab.transport import StreamTransport, TransportLost

TransportMaker = Callable[[str, int], Any]


def _mbus_transport(port: str, baudrate: int) -> StreamTransport:
    return StreamTransport(port, baudrate, bytesize=serial.EIGHTBITS, parity=serial.PARITY_EVEN,
                           stopbits=serial.STOPBITS_ONE)


class _SharedPort:
    def __init__(self, port: str, baudrate: int, maker: TransportMaker) -> None:
        self.port = port
        self.transport = maker(port, baudrate)
        self.users = 0
        self.opened = False
        self.dead = False
        self.lock = asyncio.Lock()
        self._opening = asyncio.Lock()

    async def ensure_open(self) -> None:
        async with self._opening:
            if not self.opened:
                await self.transport.open()
                self.opened = True


_ports: dict[str, _SharedPort] = {}


class BusHandle:
    """A slave's view of the shared bus (the transport interface :class:`SerialDriver` expects)."""

    def __init__(self, port: str, baudrate: int, maker: TransportMaker = _mbus_transport) -> None:
        self.port = port
        self.baudrate = baudrate
        self._maker = maker
        self._shared: _SharedPort | None = None
        self.discarded = 0

    async def open(self) -> None:
        shared = _ports.get(self.port)
        if shared is None or shared.dead:
            shared = _SharedPort(self.port, self.baudrate, self._maker)
            _ports[self.port] = shared
        shared.users += 1
        self._shared = shared
        try:
            await shared.ensure_open()
        except BaseException:
            self.close()
            raise

    def _port(self) -> _SharedPort:
        if self._shared is None:
            raise TransportLost(f"{self.port}: not open")
        return self._shared

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        shared = self._port()
        async with shared.lock:
            if shared.dead:
                raise TransportLost(f"{self.port}: lost")
            t = shared.transport
            if getattr(t, "baudrate", self.baudrate) != self.baudrate:
                t.set_baudrate(self.baudrate)
            self._discard()
            yield

    def _discard(self) -> None:
        """Drop bytes already received (late answers of an earlier transaction); a loss notice is kept."""
        discard = getattr(self._port().transport, "discard_pending", None)
        if discard is not None:
            self.discarded += discard()

    async def read(self) -> bytes:
        shared = self._port()
        try:
            return await shared.transport.read()
        except TransportLost:
            shared.dead = True
            raise

    async def write(self, data: bytes) -> None:
        shared = self._port()
        try:
            await shared.transport.write(data)
        except TransportLost:
            shared.dead = True
            raise

    def set_baudrate(self, baudrate: int) -> None:
        self.baudrate = baudrate
        self._port().transport.set_baudrate(baudrate)

    def abort(self, reason: str) -> None:
        if self._shared is not None:
            self._shared.dead = True
            self._shared.transport.abort(reason)

    def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            if _ports.get(self.port) is shared:
                del _ports[self.port]
            shared.transport.close()
