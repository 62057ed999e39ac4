"""EN 13757-2 link layer frames (the FT 1.2 format of IEC 60870-5-1/-2 as wired M-Bus uses it).

Four telegram formats travel on the bus (11-bit characters: start, 8 data bits, even parity, stop):

* single character ``E5`` (acknowledgement of a slave);
* short frame ``10 C A CS 16`` (SND_NKE, REQ_UD2);
* control frame ``68 03 03 68 C A CI CS 16`` (a long frame without user data);
* long frame ``68 L L 68 C A CI data CS 16`` with L = 3 + len(data) (3..255) and CS = the arithmetic sum
  (mod 256) of every byte from C to the last data byte.

:class:`FrameReceiver` is a sans-I/O stream splitter: bytes in, :class:`Ack`, :class:`ShortFrame`,
:class:`LongFrame` or :class:`FrameError` out. A frame whose checksum, stop character or length fields are
wrong is never passed on as a frame: it becomes a :class:`FrameError` naming the reason (``bad_checksum``,
``bad_stop``, ``bad_length``), and the receiver resynchronises on the next start character. Bytes outside any
frame are counted as ``noise``. :meth:`FrameReceiver.flush` turns an incomplete frame into ``truncated``
(the caller decides when the line has been quiet long enough).
"""

from __future__ import annotations

from dataclasses import dataclass

ACK = 0xE5
START_SHORT = 0x10
START_LONG = 0x68
STOP = 0x16

# C field, master to slave (EN 13757-2 5.5); FCB/FCV are bits 5/4
SND_NKE = 0x40
SND_UD = 0x53
REQ_UD2 = 0x5B
REQ_UD1 = 0x5A
FCB = 0x20
FCV = 0x10
# C field, slave to master
RSP_UD = 0x08
ACD = 0x20
DFC = 0x10

# A field
ADDRESS_UNCONFIGURED = 0
ADDRESS_SECONDARY = 0xFD  # the slave selected by secondary addressing
ADDRESS_BROADCAST_REPLY = 0xFE
ADDRESS_BROADCAST = 0xFF

# CI field (EN 13757-3)
CI_SELECT = 0x52  # SND_UD to 0xFD: secondary address selection
CI_RSP_LONG = 0x72  # variable data response, 12-byte header with the slave's ID
CI_RSP_SHORT = 0x7A  # variable data response, 4-byte header
CI_RSP_NONE = 0x78  # variable data response without header
CI_APPLICATION_ERROR = 0x70  # the slave reports an application error


def checksum(data: bytes) -> int:
    """The link layer checksum: arithmetic sum of ``data`` modulo 256."""
    return sum(data) & 0xFF


def wire_time(nbytes: int, baudrate: int) -> float:
    """Seconds ``nbytes`` take on the bus (11 bits per character: 8E1)."""
    return nbytes * 11 / baudrate


@dataclass(frozen=True, slots=True)
class Ack:
    """The single character E5."""

    def encode(self) -> bytes:
        return bytes((ACK,))


@dataclass(frozen=True, slots=True)
class ShortFrame:
    c: int
    a: int

    def encode(self) -> bytes:
        return bytes((START_SHORT, self.c, self.a, checksum(bytes((self.c, self.a))), STOP))


@dataclass(frozen=True, slots=True)
class LongFrame:
    """A long frame (a control frame when ``data`` is empty)."""

    c: int
    a: int
    ci: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if len(self.data) > 252:
            raise ValueError(f"a long frame carries at most 252 data bytes, got {len(self.data)}")

    def encode(self) -> bytes:
        body = bytes((self.c, self.a, self.ci)) + self.data
        n = len(body)
        return bytes((START_LONG, n, n, START_LONG)) + body + bytes((checksum(body), STOP))


Frame = Ack | ShortFrame | LongFrame


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that looked like a frame but are not a valid one (never a frame's content)."""

    reason: str  # bad_checksum | bad_stop | bad_length | truncated
    detail: str
    raw: bytes = b""


class FrameReceiver:
    """Splits a byte stream into frames (see the module docstring). ``noise`` counts bytes outside frames."""

    def __init__(self, max_buffer: int = 1024) -> None:
        self._buf = bytearray()
        self.noise = 0
        self.max_buffer = max_buffer

    @property
    def pending(self) -> bool:
        """Part of a frame has been received."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self._buf += data
        out: list[Frame | FrameError] = []
        while self._buf:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def flush(self) -> FrameError | None:
        """Give up an incomplete frame (the line went quiet): ``truncated``, or None if nothing was pending."""
        if not self._buf:
            return None
        raw = bytes(self._buf)
        self._buf.clear()
        return FrameError("truncated", f"{len(raw)} bytes of an incomplete frame", raw)

    def _resync(self, skip: int, error: FrameError) -> FrameError:
        del self._buf[:skip]
        return error

    def _next(self) -> Frame | FrameError | None:
        buf = self._buf
        first = buf[0]
        if first == ACK:
            del buf[0]
            return Ack()
        if first == START_SHORT:
            if len(buf) < 5:
                return None
            raw = bytes(buf[:5])
            if raw[4] != STOP:
                return self._resync(1, FrameError("bad_stop", f"short frame ends with {raw[4]:#04x}", raw))
            if checksum(raw[1:3]) != raw[3]:
                return self._resync(1, FrameError("bad_checksum", f"short frame checksum {raw[3]:#04x}", raw))
            del buf[:5]
            return ShortFrame(raw[1], raw[2])
        if first == START_LONG:
            if len(buf) < 4:
                return None
            length, length2, start2 = buf[1], buf[2], buf[3]
            if length != length2 or start2 != START_LONG or length < 3:
                raw = bytes(buf[:4])
                return self._resync(1, FrameError("bad_length", f"long frame header {raw.hex(' ')}", raw))
            total = length + 6
            if len(buf) < total:
                if len(buf) > self.max_buffer:
                    return self._resync(len(buf), FrameError("bad_length", "frame longer than the buffer"))
                return None
            raw = bytes(buf[:total])
            body = raw[4:4 + length]
            if raw[-1] != STOP:
                return self._resync(1, FrameError("bad_stop", f"long frame (L={length}) ends with {raw[-1]:#04x}",
                                                  raw))
            if checksum(body) != raw[-2]:
                return self._resync(1, FrameError(
                    "bad_checksum", f"long frame checksum {raw[-2]:#04x}, computed {checksum(body):#04x}", raw))
            del buf[:total]
            return LongFrame(body[0], body[1], body[2], bytes(body[3:]))
        # not a start character: line noise (count it, look for the next start)
        i = 1
        while i < len(buf) and buf[i] not in (ACK, START_SHORT, START_LONG):
            i += 1
        self.noise += i
        del buf[:i]
        return None if not buf else self._next()
