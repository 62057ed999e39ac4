"""Byte transports for asyncio over any pyserial URL: a device path, ``/dev/serial/by-id/...``, ``socket://``,
``rfc2217://``, ``loop://`` ... shared by the LMN side and the legacy drivers (protocol x transport).

* :class:`PortTransport` pushes received bytes to a callback. Where the port has a file descriptor (serial
  devices, ptys, sockets) it is read from the event loop with ``add_reader`` for the lowest latency (the LMN's
  slot timing needs it); otherwise a reader thread hands bytes to the loop. The optional kernel RS-485 mode
  (``TIOCSRS485``) drives the transmitter-enable line of a UART without automatic direction control.
* :class:`StreamTransport` is the same port as an awaitable stream (``await read()``, ``await write()`` that
  waits until the bytes have left the driver, as a D0 baud changeover needs), for the legacy drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import serial
import serial.rs485


class TransportError(OSError):
    """The port cannot be opened or configured; the message says which port and why."""


class TransportLost(ConnectionError):
    """The port went away while open (unplugged, closed by the other end)."""


class PortTransport:
    def __init__(self, url: str, baudrate: int = 921600, *, rs485: bool = False, bytesize: int = 8,
                 parity: str = serial.PARITY_NONE, stopbits: float = 1) -> None:
        self.url = url
        self.baudrate = baudrate
        self.rs485 = rs485
        self.serial_args = {"bytesize": bytesize, "parity": parity, "stopbits": stopbits}
        self.ser: serial.SerialBase | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.on_data: Callable[[bytes], None] = lambda data: None
        self.on_lost: Callable[[Exception | None], None] = lambda exc: None

    def open(self, on_data: Callable[[bytes], None],
             on_lost: Callable[[Exception | None], None] | None = None) -> None:
        """Open the port and start delivering received bytes to ``on_data`` (call inside the event loop)."""
        self.on_data = on_data
        if on_lost is not None:
            self.on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._closing = False  # a closed transport can be opened again (the LMN port returning)
        try:
            ser = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0, write_timeout=2,
                                        **self.serial_args)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from None
        if self.rs485:
            try:
                ser.rs485_mode = serial.rs485.RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
            except (ValueError, OSError, AttributeError) as exc:
                ser.close()
                raise TransportError(f"{self.url}: kernel RS-485 mode not available: {exc}") from None
        self.ser = ser
        try:
            self._fd = ser.fileno()
        except Exception:
            self._fd = None
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._readable)
        else:
            self._thread = threading.Thread(target=self._read_thread, name=f"read {self.url}", daemon=True)
            self._thread.start()

    def set_baudrate(self, baudrate: int) -> None:
        """Change the line speed (D0 baud changeover); raises TransportError if the port refuses."""
        self.baudrate = baudrate
        if self.ser is not None:
            try:
                self.ser.baudrate = baudrate
            except (serial.SerialException, OSError, ValueError) as exc:
                raise TransportError(f"{self.url}: cannot set {baudrate} baud: {exc}") from None

    def drain(self) -> None:
        """Block until written bytes have left the driver (tcdrain); call from a worker thread."""
        if self.ser is not None:
            self.ser.flush()

    def _readable(self) -> None:
        ser = self.ser
        if ser is None:
            return
        try:
            data = ser.read(65536)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
            return
        if data:
            self.on_data(data)
        elif self.url.startswith("socket://"):
            self._lost(TransportLost(f"{self.url}: connection closed by the peer"))

    def _read_thread(self) -> None:
        ser = self.ser
        assert ser is not None and self._loop is not None
        ser.timeout = 0.05
        while not self._closing:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                if not self._closing:
                    self._loop.call_soon_threadsafe(self._lost, exc)
                return
            if data:
                self._loop.call_soon_threadsafe(self.on_data, data)

    def write(self, data: bytes) -> None:
        ser = self.ser
        if ser is None:
            return
        try:
            ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self.close()
        self.on_lost(exc)

    def close(self) -> None:
        self._closing = True
        if self._fd is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            self._fd = None
        if self.ser is not None:
            with contextlib.suppress(Exception):
                self.ser.close()
            self.ser = None


class StreamTransport:
    """A :class:`PortTransport` as an awaitable byte stream (for the legacy drivers). Defaults to 7E1 (D0)."""

    def __init__(self, port: str, baudrate: int, *, bytesize: int = serial.SEVENBITS,
                 parity: str = serial.PARITY_EVEN, stopbits: float = serial.STOPBITS_ONE) -> None:
        self.port = port
        self._transport = PortTransport(port, baudrate, bytesize=bytesize, parity=parity, stopbits=stopbits)
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._lost: BaseException | None = None

    @property
    def baudrate(self) -> int:
        return self._transport.baudrate

    async def open(self) -> None:
        """Open and configure the port; raises :class:`TransportError` with the reason."""
        self._transport.open(self._queue.put_nowait, self._on_lost)

    def _on_lost(self, exc: Exception | None) -> None:
        self._queue.put_nowait(TransportLost(f"{self.port}: {exc or 'lost'}"))

    async def read(self) -> bytes:
        """The next chunk of received bytes; raises :class:`TransportLost` once the port is gone."""
        if self._lost is not None:
            raise TransportLost(str(self._lost))
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._lost = item
            raise TransportLost(str(item))
        return item

    async def write(self, data: bytes) -> None:
        """Send ``data`` and wait until it has left the port driver."""
        if self._lost is not None:
            raise TransportLost(str(self._lost))
        self._transport.write(data)
        try:
            await asyncio.to_thread(self._transport.drain)
        except (serial.SerialException, OSError) as exc:
            self._lost = TransportLost(f"{self.port}: {exc}")
            raise self._lost from None

    def discard_pending(self) -> int:
        """Drop received bytes nobody has read yet (a notice that the port was lost is kept); their count."""
        dropped, kept = 0, []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, BaseException):
                kept.append(item)
            else:
                dropped += len(item)
        for item in kept:
            self._queue.put_nowait(item)
        return dropped

    def set_baudrate(self, baudrate: int) -> None:
        """Change the line speed (the D0 core decides when)."""
        try:
            self._transport.set_baudrate(baudrate)
        except TransportError as exc:
            self.abort(str(exc))

    def abort(self, reason: str) -> None:
        """Mark the port as lost (e.g. on a hot-plug remove event); the next :meth:`read` raises."""
        self._queue.put_nowait(TransportLost(f"{self.port}: {reason}"))

    def close(self) -> None:
        """Close the port (idempotent)."""
        self._transport.close()
