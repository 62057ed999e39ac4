"""SML transport v1 (LMN-STACK.md 6.1; TR-03109-1 IVb 8.1).

``1B1B1B1B 01010101 <escaped file> <0..3 fill bytes 00> 1B1B1B1B 1A k crc_lo crc_hi``: every 4-byte run
``1B1B1B1B`` in the file is doubled, fill bytes make the length up to the trailer a multiple of 4 and the
CRC-16/X-25 covers everything from the first ``1B`` through ``k``.

* :func:`encode_transport` frames an SML file, :func:`decode_transport` unframes exactly one frame.
* :class:`TransportDecoder` is the sans-I/O streaming decoder: ``feed(bytes)`` returns events, it resynchronises
  on the start sequence after garbage, counts what it drops and never holds more than ``max_frame`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bab.crc import crc16_kermit, crc16_x25

from .errors import SmlCrcError, SmlError, SmlFileTooLarge, SmlTransportError, SmlTruncated
from .quirks import Quirk

ESC = b"\x1b\x1b\x1b\x1b"
START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
_START_TAIL = b"\x01\x01\x01\x01"
_ESC2 = ESC + ESC
DEFAULT_MAX_FRAME = 64 * 1024


def encode_transport(payload: bytes | bytearray) -> bytes:
    """Wrap an SML file in transport v1: start sequence, escaping, fill bytes, end sequence and CRC."""
    body = bytes(payload).replace(ESC, _ESC2)
    k = -len(payload) % 4
    frame = bytearray(START)
    frame += body
    frame += bytes(k)
    frame += ESC
    frame.append(0x1A)
    frame.append(k)
    frame += crc16_x25(frame).to_bytes(2, "little")
    return bytes(frame)


class _Scan:
    """Result of scanning a buffer that starts with START."""

    NEED_MORE = 0
    END = 1  # frame ends at .pos (index of the end escape); total frame length .pos + 8
    RESTART = 2  # another start sequence at .pos
    BAD_ESCAPE = 3  # invalid escape sequence at .pos


def _scan(buf: bytes | bytearray, p: int) -> tuple[int, int]:
    """Look for the end of the frame starting at ``buf[0]`` (a START) from offset ``p``.

    Returns ``(kind, pos)``; for NEED_MORE ``pos`` is where scanning can resume.
    """
    n = len(buf)
    while True:
        i = buf.find(ESC, p)
        if i < 0:
            return _Scan.NEED_MORE, max(p, n - 3)
        if i + 8 > n:
            return _Scan.NEED_MORE, i
        nxt = buf[i + 4:i + 8]
        if nxt == ESC:  # escaped 1B1B1B1B in the data
            p = i + 8
            continue
        if nxt[0] == 0x1A:
            return _Scan.END, i
        if nxt == _START_TAIL:
            return _Scan.RESTART, i
        # The file ends with 1..3 bytes 1B and has no fill: the aligned end escape starts m bytes later.
        m = -i % 4
        if m and nxt[:m] == ESC[:m] and nxt[m] == 0x1A:
            p = i + m
            continue
        return _Scan.BAD_ESCAPE, i


def _check_frame(frame: bytes | bytearray, i: int, quirks: Quirk) -> bytes:
    """Validate the frame ``frame[:i + 8]`` whose end escape is at ``i``; return the SML file."""
    k = frame[i + 5]
    received = frame[i + 6] | frame[i + 7] << 8
    computed = crc16_x25(frame[:i + 6])
    if received != computed:
        kermit_ok = quirks & Quirk.HOLLEY_KERMIT_CRC and (frame[i + 6] << 8 | frame[i + 7]) == crc16_kermit(
            frame[:i + 6])
        if not kermit_ok:
            raise SmlCrcError("transport", received, computed)
    if i % 4:
        raise SmlTransportError(f"end sequence not aligned to 4 bytes (offset {i})")
    if k > 3:
        raise SmlTransportError(f"{k} fill bytes (0..3 allowed)")
    payload = bytes(frame[8:i]).replace(_ESC2, ESC)
    if k:
        if len(payload) < k or payload[-k:] != bytes(k):
            raise SmlTransportError(f"{k} fill bytes announced but the data does not end with {k} zero bytes")
        payload = payload[:-k]
    return payload


def decode_transport(data: bytes | bytearray, quirks: Quirk = Quirk.DEFAULT) -> bytes:
    """Unframe exactly one transport v1 frame (it must start at ``data[0]``); return the SML file.

    Raises SmlTransportError, SmlCrcError or SmlTruncated. Bytes after the frame are an error too.
    """
    if data[:8] != START:
        raise SmlTransportError("data does not start with the transport start sequence 1B1B1B1B 01010101")
    kind, i = _scan(data, 8)
    if kind == _Scan.NEED_MORE:
        raise SmlTruncated("transport frame has no end sequence")
    if kind == _Scan.RESTART:
        raise SmlTransportError(f"another start sequence at offset {i} before the end sequence")
    if kind == _Scan.BAD_ESCAPE:
        raise SmlTransportError(f"invalid escape sequence {bytes(data[i:i + 8]).hex()} at offset {i}")
    if len(data) > i + 8:
        raise SmlTransportError(f"{len(data) - i - 8} bytes after the end of the frame")
    return _check_frame(data, i, quirks)


# ------------------------------------------------------------------------------------------------ streaming


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """A complete, CRC-checked transport frame; ``payload`` is the SML file (unescaped, fill removed)."""

    payload: bytes
    size: int  # bytes on the wire


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that was dropped: bad CRC, broken escape / fill / alignment, or too large."""

    error: SmlError
    size: int  # bytes dropped with it


@dataclass(frozen=True, slots=True)
class BytesDiscarded:
    """Bytes outside any frame (garbage before a start sequence, an interrupted frame) were skipped."""

    count: int


TransportEvent = FrameReceived | FrameRejected | BytesDiscarded


@dataclass(slots=True)
class TransportStats:
    """Counters of a :class:`TransportDecoder` (for health reporting)."""

    frames_ok: int = 0
    frames_bad_crc: int = 0
    frames_bad_framing: int = 0
    frames_too_large: int = 0
    frames_interrupted: int = 0
    bytes_discarded: int = 0  # garbage and interrupted/oversized frames (not counting rejected frames)
    bytes_received: int = 0


class TransportDecoder:
    """Sans-I/O streaming decoder of transport v1.

    ``feed(data)`` returns the events that ``data`` completed; ``finish()`` flushes at end of stream. Garbage
    before a start sequence is reported as one :class:`BytesDiscarded` when the next start is found (or on
    ``finish``); a start sequence inside a frame abandons the unfinished frame (sml-rs does the same). A frame
    longer than ``max_frame`` bytes is dropped, so memory stays bounded whatever the input.
    """

    def __init__(self, quirks: Quirk = Quirk.DEFAULT, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 16:
            raise ValueError("max_frame must be at least 16 bytes")
        self.quirks = quirks
        self.max_frame = max_frame
        self.stats = TransportStats()
        self._buf = bytearray()
        self._in_frame = False
        self._scan_pos = 8
        self._pending_discard = 0

    @property
    def buffered(self) -> int:
        """Bytes currently held (at most ``max_frame + 8``)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[TransportEvent]:
        events: list[TransportEvent] = []
        self.stats.bytes_received += len(data)
        step = self.max_frame
        for off in range(0, len(data), step):
            self._buf += data[off:off + step]
            self._process(events)
        return events

    def finish(self) -> list[TransportEvent]:
        """End of stream: whatever is buffered (a partial frame, garbage) is discarded and reported."""
        events: list[TransportEvent] = []
        if self._in_frame and self._buf:
            self.stats.frames_interrupted += 1
        self._discard(len(self._buf))
        del self._buf[:]
        self._in_frame = False
        self._flush_discard(events)
        return events

    def _discard(self, n: int) -> None:
        self._pending_discard += n
        self.stats.bytes_discarded += n

    def _flush_discard(self, events: list[TransportEvent]) -> None:
        if self._pending_discard:
            events.append(BytesDiscarded(self._pending_discard))
            self._pending_discard = 0

    def _process(self, events: list[TransportEvent]) -> None:
        buf = self._buf
        while True:
            if not self._in_frame:
                j = buf.find(START)
                if j < 0:
                    keep = min(len(buf), 7)
                    self._discard(len(buf) - keep)
                    del buf[:len(buf) - keep]
                    return
                if j:
                    self._discard(j)
                    del buf[:j]
                self._flush_discard(events)
                self._in_frame = True
                self._scan_pos = 8
            kind, i = _scan(buf, self._scan_pos)
            if kind == _Scan.NEED_MORE:
                self._scan_pos = i
                if len(buf) > self.max_frame:
                    self.stats.frames_too_large += 1
                    size = len(buf) - 7
                    events.append(FrameRejected(SmlFileTooLarge(
                        f"no end sequence within {self.max_frame} bytes"), size))
                    del buf[:size]
                    self._in_frame = False
                    continue
                return
            self._in_frame = False
            if kind == _Scan.RESTART:
                self.stats.frames_interrupted += 1
                self._discard(i)
                del buf[:i]
                continue
            if kind == _Scan.BAD_ESCAPE:
                self.stats.frames_bad_framing += 1
                events.append(FrameRejected(SmlTransportError(
                    f"invalid escape sequence {bytes(buf[i:i + 8]).hex()} at offset {i}"), i + 4))
                del buf[:i + 4]
                continue
            size = i + 8
            if size > self.max_frame + 8:
                self.stats.frames_too_large += 1
                events.append(FrameRejected(SmlFileTooLarge(f"frame of {size} bytes"), size))
                del buf[:size]
                continue
            try:
                payload = _check_frame(buf, i, self.quirks)
            except SmlCrcError as e:
                self.stats.frames_bad_crc += 1
                events.append(FrameRejected(e, size))
            except SmlTransportError as e:
                self.stats.frames_bad_framing += 1
                events.append(FrameRejected(e, size))
            else:
                self.stats.frames_ok += 1
                events.append(FrameReceived(payload, size))
            del buf[:size]
