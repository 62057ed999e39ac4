"""``bab bridge``: a TCP listener whose every connection is one HDLC connection on a meter's selector 1.

The asyncio side of :mod:`bab.gateway.bridge`: it runs the software gateway (the HDLC primary station) on an
LMN port, any pyserial URL (a USB-RS485 adapter, ``socket://`` of ``bab bus``, ...), and listens on TCP
(127.0.0.1 by default). For each TCP client it opens a :class:`~bab.gateway.bridge.StreamLayer` channel and
only moves bytes: the client's bytes into the channel, the meter's bytes back to the client. When the meter
ends the connection (DM, e.g. after a fatal TLS alert) the TCP connection is closed after the meter's last
bytes; when the client closes, the gateway sends DISC once the client's bytes are out and the meter has been
quiet for ``linger`` seconds (so that an answer still on its way is not cut off).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass

from bab.gateway.bridge import SelectorBridge, StreamLayer

LINGER = 0.3  # seconds of meter silence after the client's end of stream before the gateway sends DISC


@dataclass
class BridgeStats:
    connections: int = 0
    clean: int = 0
    failed: int = 0


async def serve_bridge(bridge: SelectorBridge, poke: Callable[[], None], host: str = "127.0.0.1",
                       port: int = 4433, *, linger: float = LINGER,
                       report: Callable[[str], None] = print) -> tuple[asyncio.Server, BridgeStats]:
    """Listen on ``host:port``; ``poke()`` wakes the runner of the node that holds ``bridge``."""
    loop = asyncio.get_running_loop()
    stats = BridgeStats()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats.connections += 1
        n = stats.connections
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ended = asyncio.Event()
        last_down = [loop.time()]

        def on_data(data: bytes) -> None:
            last_down[0] = loop.time()
            if not writer.is_closing():
                writer.write(data)

        def on_end(reason: str | None) -> None:
            ended.set()

        layer = StreamLayer(on_data, on_end, tls_records=True)
        bridge.open_channel(layer, loop.time())
        poke()

        async def upstream() -> None:
            try:
                while data := await reader.read(65536):
                    layer.feed(data)
                    poke()
            except (ConnectionError, OSError):
                layer.finish()  # the client is gone: nothing to wait for
                poke()
                return
            # End of stream: let the meter's answer to the last bytes arrive before the DISC.
            while not ended.is_set():
                quiet = loop.time() - last_down[0]
                if layer.pending == 0 and quiet >= linger:
                    break
                await asyncio.sleep(max(0.01, linger - quiet))
            layer.finish()
            poke()

        up = asyncio.create_task(upstream())
        try:
            await ended.wait()
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            if layer.result is None:
                stats.clean += 1
            else:
                stats.failed += 1
            how = "closed by the client" if layer.result is None else f"ended: {layer.result}"
            report(f"connection {n} from {_addr(peer)}: {how} ({layer.bytes_up} bytes to the meter, "
                   f"{layer.bytes_down} back)")
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()
                await writer.wait_closed()

    server = await asyncio.start_server(client, host, port)
    return server, stats


def _addr(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


__all__ = ["BridgeStats", "LINGER", "serve_bridge"]
