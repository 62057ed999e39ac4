"""A simulated M-Bus slave (and a bus of several) for tests, benchmarks and demos, on a pty or in memory.

:class:`MbusSlaveSim` answers like a wired M-Bus meter: ``E5`` to SND_NKE at its primary address (which
resets its FCB state), the RSP_UD telegrams it holds to REQ_UD2 (the next one of a multi-telegram answer when
the FCB toggled, the same one again when not), ``E5`` to a secondary-address selection that matches it
(and silence otherwise; a non-matching selection or SND_NKE to 253 deselects it). It can be made to misbehave
in its next RSP_UD answers: ``faults`` is a list consumed one per REQ_UD2, each ``"ok"``, ``"bad_checksum"``,
``"wrong_length"`` (the L field disagrees with the frame), ``"truncated"`` (only the first half is sent),
``"garbage"`` (line noise) or ``"silent"``.

:func:`serve_fd` runs slaves on a pty master in a thread: a request is heard only after its wire time
(11 bits per character at the slave's rate), the slave waits its ``reaction`` time and sends its answer paced
at the wire speed, as on a real bus.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass, field

from .frame import (
    ADDRESS_BROADCAST_REPLY,
    ADDRESS_SECONDARY,
    CI_SELECT,
    FCB,
    FCV,
    RSP_UD,
    SND_NKE,
    SND_UD,
    Ack,
    FrameReceiver,
    LongFrame,
    ShortFrame,
    wire_time,
)
from .records import bcd_digits, manufacturer_code


@dataclass
class MbusSlaveSim:
    address: int
    telegrams: list[tuple[int, bytes]]  # (CI, user data) of each RSP_UD
    ident: str | None = None  # secondary address; None: those of the first telegram's CI 72 header
    manufacturer: str | None = None
    version: int | None = None
    medium: int | None = None
    reaction: float = 0.010  # seconds between the end of a request and the start of the answer
    faults: list[str] = field(default_factory=list)
    selected: bool = False
    requests: int = 0
    _index: int = 0
    _last_fcb: bool | None = None

    def __post_init__(self) -> None:
        ci, data = self.telegrams[0]
        long_header = ci == 0x72 and len(data) >= 12
        if self.ident is None:
            self.ident = bcd_digits(data[0:4]) if long_header else None
            self.ident = self.ident or "00000000"
        if self.manufacturer is None:
            self.manufacturer = manufacturer_code(int.from_bytes(data[4:6], "little")) if long_header else "BAB"
        if self.version is None:
            self.version = data[6] if long_header else 1
        if self.medium is None:
            self.medium = data[7] if long_header else 0x00

    def _answer(self, frame: bytes) -> bytes | None:
        if frame[0] != 0x68:
            return frame  # E5: the faults concern telegrams
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "silent":
            return None
        if fault == "garbage":
            return bytes((0x00, 0xFF, 0x55, 0xAA))
        if fault == "bad_checksum":
            return frame[:-2] + bytes(((frame[-2] + 1) & 0xFF, frame[-1]))
        if fault == "wrong_length":
            return frame[:1] + bytes((frame[1] + 2, frame[2] + 2)) + frame[3:]
        if fault == "truncated":
            return frame[: max(1, len(frame) // 2)]
        return frame

    def _matches(self, sel: bytes) -> bool:
        if len(sel) != 8:
            return False
        want = "".join(f"{b >> 4:X}{b & 0x0F:X}" for b in reversed(sel[:4]))
        if any(w != "F" and w != c for w, c in zip(want, str(self.ident), strict=True)):
            return False
        man = int.from_bytes(sel[4:6], "little")
        if man != 0xFFFF and manufacturer_code(man) != self.manufacturer:
            return False
        return sel[6] in (0xFF, self.version) and sel[7] in (0xFF, self.medium)

    def handle(self, frame: ShortFrame | LongFrame | Ack) -> bytes | None:
        """The bytes this slave sends in answer to ``frame`` (None: it stays silent)."""
        if isinstance(frame, Ack):
            return None
        if isinstance(frame, LongFrame):
            if frame.a == ADDRESS_SECONDARY and frame.ci == CI_SELECT and frame.c & 0x4F == SND_UD & 0x4F:
                self.selected = self._matches(frame.data)
                return self._answer(Ack().encode()) if self.selected else None
            return None
        mine = frame.a in (self.address, ADDRESS_BROADCAST_REPLY) or (frame.a == ADDRESS_SECONDARY and self.selected)
        if frame.c == SND_NKE:
            if frame.a == ADDRESS_SECONDARY:
                was, self.selected = self.selected, False
                return self._answer(Ack().encode()) if was else None
            if not mine:
                return None
            self._last_fcb = None
            self._index = 0
            return self._answer(Ack().encode())
        if frame.c & 0x4F == 0x4B and mine:  # REQ_UD2
            self.requests += 1
            if frame.c & FCV:
                fcb = bool(frame.c & FCB)
                if self._last_fcb is not None and fcb != self._last_fcb:
                    self._index = (self._index + 1) % len(self.telegrams)
                self._last_fcb = fcb
            ci, data = self.telegrams[self._index]
            return self._answer(LongFrame(RSP_UD, self.address, ci, data).encode())
        return None


def telegram_of(frame_hex: str) -> tuple[int, bytes]:
    """(CI, user data) of a published RSP_UD long frame in hex (its address and checksum are not kept)."""
    raw = bytes.fromhex(frame_hex)
    if raw[0] != 0x68 or raw[3] != 0x68 or raw[1] != raw[2] or len(raw) != raw[1] + 6:
        raise ValueError("not a long frame")
    return raw[6], raw[7:-2]


@dataclass
class SimBus:
    """Several slaves on one bus: every request goes to all of them."""

    slaves: list[MbusSlaveSim]
    baudrate: int = 2400
    rx: FrameReceiver = field(default_factory=FrameReceiver)

    def receive(self, data: bytes) -> list[tuple[float, bytes]]:
        """(reaction, answer) pairs for the frames completed by ``data``."""
        out = []
        for frame in self.rx.feed(data):
            if not isinstance(frame, (ShortFrame, LongFrame, Ack)):
                continue
            for s in self.slaves:
                answer = s.handle(frame)
                if answer is not None:
                    out.append((s.reaction, answer))
        return out


def serve_fd(fd: int, bus: SimBus, stop: threading.Event) -> threading.Thread:
    """Run ``bus`` on ``fd`` (a pty master) in a daemon thread until ``stop`` is set (see module docstring)."""

    def write_paced(data: bytes) -> None:
        chunk = max(1, bus.baudrate // 440)  # about 25 ms of line time per chunk
        t0 = time.monotonic()
        for i in range(0, len(data), chunk):
            part = data[i: i + chunk]
            delay = t0 + wire_time(i + len(part), bus.baudrate) - time.monotonic()
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
            time.sleep(wire_time(len(data), bus.baudrate))  # the request is on the wire until then
            for reaction, answer in bus.receive(data):
                time.sleep(reaction)
                try:
                    write_paced(answer)
                except OSError:
                    return

    thread = threading.Thread(target=loop, name="mbus-slave-sim", daemon=True)
    thread.start()
    return thread
