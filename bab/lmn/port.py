"""Byte transports for asyncio over any pyserial URL: a device path, ``socket://``, ``rfc2217://``, ``loop://``...

Where the port has a file descriptor (serial devices, ptys, sockets) it is read from the event loop with
``add_reader`` for the lowest latency; otherwise a reader thread hands bytes to the loop. The optional kernel
RS-485 mode (``TIOCSRS485``) drives the transmitter-enable line of a UART without automatic direction control.
The same class serves the LMN port and the legacy drivers' serial ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import serial
import serial.rs485


class PortError(OSError):
    """The port cannot be opened or was lost; the message says which port and why."""


class SerialTransport:
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
        try:
            ser = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0, write_timeout=2,
                                        **self.serial_args)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(f"cannot open {self.url}: {exc}") from None
        if self.rs485:
            try:
                ser.rs485_mode = serial.rs485.RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
            except (ValueError, OSError, AttributeError) as exc:
                ser.close()
                raise PortError(f"{self.url}: kernel RS-485 mode not available: {exc}") from None
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
        """Change the line speed (D0 baud changeover)."""
        self.baudrate = baudrate
        if self.ser is not None:
            self.ser.baudrate = baudrate

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
            self._lost(PortError(f"{self.url}: connection closed by the peer"))

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
