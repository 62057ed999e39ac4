"""A simulated IEC 62056-21 meter (the tariff-device side), for tests, benchmarks and demo set-ups.

:class:`D0MeterSim` is sans-I/O like the client: :meth:`D0MeterSim.receive` takes the bytes the meter hears
at its current baud rate and returns :class:`MeterReply` items (bytes to send after a delay, at a rate).
:func:`serve_fd` runs it on a file descriptor (the master side of a pty) in a thread, pacing the output at
the wire speed of the rate the meter currently talks at, so a driver on the pty slave sees realistic timing.

Fault switches reproduce what real meters do wrong: announce a rate they cannot do (``works_up_to``), send
a data message without its end (``endless``), corrupt the BCC (``corrupt_bcc``), or stay silent.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass, field

from .protocol import ACK, BAUD_B, BAUD_C, CRLF, ETX, NAK, SOH, STX, bcc, wire_time


@dataclass(frozen=True)
class MeterReply:
    delay: float  # seconds after the end of the message that caused it
    data: bytes
    baudrate: int  # rate the bytes are sent at (the meter switches before sending)


def data_message(data: str, *, corrupt_bcc: bool = False) -> bytes:
    """``STX data ETX BCC`` (``data`` should end with ``!\\r\\n``)."""
    body = data.encode("ascii") + bytes([ETX])
    check = bcc(body) ^ (0x01 if corrupt_bcc else 0)
    return bytes([STX]) + body + bytes([check])


@dataclass
class D0MeterSim:
    """A meter answering sign-ons (modes A/B/C, password + R1 reads) or producing push telegrams (mode D)."""

    identification: str  # e.g. "/EMH5\\@01LZQJC0014F" (without CRLF)
    data: str  # data lines, "\r\n"-terminated, ending with "!\r\n"
    address: str = ""  # answer only sign-ons for this address (or for none)
    reaction: float = 0.2  # the meter's own reaction time tr
    password: str | None = None
    registers: dict[str, str] = field(default_factory=dict)  # R1 answers: ID -> "(value*unit)"
    works_up_to: int | None = None  # highest rate the meter really switches to (a "lying" meter)
    endless: int = 0  # >0: send this many bytes of data lines and never ETX
    corrupt_bcc: bool = False
    silent: bool = False
    baudrate: int = 300  # the rate the meter currently listens and talks at
    signons: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _state: str = "idle"

    @property
    def baud_char(self) -> str:
        return self.identification[4]

    def _data_bytes(self) -> bytes:
        if self.endless:
            line = "1.8.0(000123.456*kWh)\r\n"
            raw = (line * (self.endless // len(line) + 1))[: self.endless]
            return bytes([STX]) + raw.encode()
        return data_message(self.data, corrupt_bcc=self.corrupt_bcc)

    def _switch(self, rate: int) -> int:
        if self.works_up_to is not None:
            rate = min(rate, self.works_up_to)
        self.baudrate = rate
        return rate

    def push(self) -> bytes:
        """One mode D telegram (identification + data lines, no STX/ETX)."""
        return self.identification.encode() + CRLF + CRLF + self.data.encode()

    def receive(self, data: bytes) -> list[MeterReply]:
        self._buf += bytes(b & 0x7F for b in data)
        out: list[MeterReply] = []
        while True:
            reply = self._step()
            if reply is None:
                return out
            out.extend(reply)

    def _step(self) -> list[MeterReply] | None:
        buf = self._buf
        if self._state == "idle":
            start = buf.find(b"/?")
            end = buf.find(b"!\r\n", start)
            if start < 0 or end < 0:
                if start < 0:
                    buf.clear()
                return None
            addr = buf[start + 2:end].decode("ascii", "replace")
            del buf[: end + 3]
            if self.silent or (addr and addr != self.address):
                return []
            self.signons += 1
            reply = [MeterReply(self.reaction, self.identification.encode() + CRLF, self.baudrate)]
            z = self.baud_char
            if z in BAUD_C:
                self._state = "ack"
            elif z in BAUD_B:
                rate = self._switch(BAUD_B[z])
                reply.append(MeterReply(self.reaction, self._data_bytes(), rate))
                self._finish()
            else:
                reply.append(MeterReply(self.reaction, self._data_bytes(), self.baudrate))
                self._finish()
            return reply
        if self._state == "ack":
            i = buf.find(bytes([ACK]))
            if i < 0 or len(buf) < i + 6:
                if i < 0:
                    buf.clear()
                return None
            msg = bytes(buf[i: i + 6])
            del buf[: i + 6]
            z, y = chr(msg[2]), chr(msg[3])
            if z not in BAUD_C or msg[4:6] != CRLF:
                self._state = "idle"
                return []
            rate = self._switch(BAUD_C[z])
            if y == "1" and self.password is not None:
                self._state = "prog"
                body = b"P0" + bytes([STX]) + b"(12345678)" + bytes([ETX])
                return [MeterReply(self.reaction, bytes([SOH]) + body + bytes([bcc(body)]), rate)]
            self._finish()
            return [MeterReply(self.reaction, self._data_bytes(), rate)]
        if self._state in ("prog", "auth"):
            i = buf.find(bytes([SOH]))
            e = buf.find(bytes([ETX]), i + 1) if i >= 0 else -1
            if i < 0 or e < 0 or len(buf) < e + 2:
                return None
            msg = bytes(buf[i: e + 2])
            del buf[: e + 2]
            if bcc(msg[1:-1]) != msg[-1]:
                return [MeterReply(self.reaction, bytes([NAK]), self.baudrate)]
            cmd = msg[1:3]
            payload = msg[4:-2].decode("ascii", "replace") if msg[3] == STX else ""
            if cmd == b"B0":
                self._finish()
                return []
            if cmd == b"P1":
                if payload == f"({self.password})":
                    self._state = "auth"
                    return [MeterReply(self.reaction, bytes([ACK]), self.baudrate)]
                return [MeterReply(self.reaction, bytes([NAK]), self.baudrate)]
            if cmd == b"R1" and self._state == "auth":
                reg = payload.split("(")[0]
                value = self.registers.get(reg)
                body = (f"{reg}{value}" if value is not None else "(ERROR)").encode() + bytes([ETX])
                return [MeterReply(self.reaction, bytes([STX]) + body + bytes([bcc(body)]), self.baudrate)]
            return [MeterReply(self.reaction, bytes([NAK]), self.baudrate)]
        return None

    def reset(self) -> None:
        """Back to idle at the sign-on rate, as a real meter does after its inactivity time-out."""
        self._finish()

    def _finish(self) -> None:
        self._state = "idle"
        self._buf.clear()
        self.baudrate = 300  # back to the sign-on rate (after the usual inactivity time-out)


def serve_fd(fd: int, meter: D0MeterSim, stop: threading.Event, *, pace: bool = True) -> threading.Thread:
    """Run ``meter`` on ``fd`` (a pty master) in a daemon thread until ``stop`` is set.

    The meter hears what it reads only after the wire time of those bytes at its current rate; with ``pace``
    its output is also written in small chunks at the wire speed of the rate it talks at."""

    def write_paced(data: bytes, rate: int) -> None:
        if not pace:
            os.write(fd, data)
            return
        chunk = max(1, rate // 400)  # about 25 ms of line time per chunk
        t0 = time.monotonic()
        for i in range(0, len(data), chunk):
            part = data[i: i + chunk]
            delay = t0 + wire_time(i + len(part), rate) - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # a chunk is available once its last byte has come off the wire
            os.write(fd, part)

    def loop() -> None:
        while not stop.is_set():
            r, _, _ = select.select([fd], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            # the client's write returned at once on the pty; the meter hears the bytes after their wire time
            time.sleep(wire_time(len(data), meter.baudrate))
            for reply in meter.receive(data):
                time.sleep(reply.delay)
                try:
                    write_paced(reply.data, reply.baudrate)
                except OSError:
                    return

    thread = threading.Thread(target=loop, name="d0-meter-sim", daemon=True)
    thread.start()
    return thread
