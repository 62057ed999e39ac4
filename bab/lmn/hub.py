"""A virtual RS-485 bus over TCP (``bab bus --listen HOST:PORT``).

Every TCP client is a station on one :class:`~bab.lmn.asyncbus.AsyncBus`: what one sends, all others receive,
with the bus's timing, collisions and optional noise. BAB processes and the software gateway join it with
``socket://HOST:PORT`` as their port, so several processes can share one simulated LMN (CI, labs).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from .asyncbus import AsyncBus
from .bus import VirtualBus


async def serve_bus(host: str, port: int, bus: VirtualBus | None = None) -> asyncio.Server:
    abus = AsyncBus(bus)
    counter = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        counter += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bport = abus.attach(f"tcp-{counter}", lambda data, t: writer.write(data))
        try:
            while data := await reader.read(4096):
                bport.write(data)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a client went away, or the hub is shutting down
        finally:
            abus.detach(bport)
            writer.close()

    return await asyncio.start_server(client, host, port)
