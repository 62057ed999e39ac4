"""Splits a received byte stream into HDLC frames (LMN-STACK.md 3.1, 2 "implementation notes").

The LMN has no byte stuffing, so frames are delimited by their length field. The receiver

* skips garbage before a flag and repeated flags (``7E7E``),
* checks the header CRC (HCS) as soon as the header is in, so a bogus "start" inside garbage is given up
  without waiting for the length it claims,
* waits for the rest of a frame split across reads and returns several frames from one read,
* drops and counts frames with a bad HCS/FCS or a missing closing flag, and never returns them,
* gives up a partial frame when the line was idle for longer than ``idle_timeout`` (sans-I/O: the caller
  passes the time of each read), resynchronising on the bytes after its start flag.

Memory is bounded: it never holds more than one maximal frame plus the bytes of one read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .frame import FLAG, Frame, frame_length, header_ok, parse_body


@dataclass
class ReceiverCounters:
    frames: int = 0
    bytes_in: int = 0
    garbage_bytes: int = 0  # bytes skipped while looking for a frame start
    bad_hcs: int = 0
    bad_fcs: int = 0  # bad FCS, bad address extension bits or missing closing flag
    idle_drops: int = 0  # partial frames abandoned after the line went idle


class FrameReceiver:
    """Stream-to-frame splitter; ``feed(data, now)`` returns the complete valid frames in order."""

    def __init__(self, idle_timeout: float = 0.05) -> None:
        self.idle_timeout = idle_timeout
        self.counters = ReceiverCounters()
        self._buf = bytearray()
        self._last = 0.0

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes, now: float = 0.0) -> list[Frame]:
        frames: list[Frame] = []
        if self._buf and now - self._last > self.idle_timeout:
            # The line went quiet in the middle of a frame: give up this start, keep looking behind it.
            self.counters.idle_drops += 1
            del self._buf[:1]
            self._scan(frames, final=True)
        self._last = now
        self.counters.bytes_in += len(data)
        self._buf += data
        self._scan(frames, final=False)
        return frames

    def _scan(self, out: list[Frame], final: bool) -> None:
        buf = self._buf
        c = self.counters
        while buf:
            start = buf.find(FLAG)
            if start < 0:
                c.garbage_bytes += len(buf)
                buf.clear()
                return
            if start:
                c.garbage_bytes += start
                del buf[:start]
            # buf[0] is a flag. Skip repeated flags.
            if len(buf) >= 2 and buf[1] == FLAG:
                del buf[:1]
                continue
            if len(buf) < 3:
                if final:
                    c.garbage_bytes += len(buf)
                    buf.clear()
                return
            length = frame_length(buf[1], buf[2])
            if length is None:
                c.garbage_bytes += 1
                del buf[:1]
                continue
            if length >= 11:
                if len(buf) < 10:
                    if final:
                        del buf[:1]
                        c.garbage_bytes += 1
                        continue
                    return
                if not header_ok(memoryview(buf)[1:10]):
                    c.bad_hcs += 1
                    del buf[:1]
                    continue
            total = length + 2
            if len(buf) < total:
                if final:
                    c.idle_drops += 1
                    del buf[:1]
                    continue
                return
            frame = None
            if buf[total - 1] == FLAG:
                with memoryview(buf) as mv:
                    frame = parse_body(mv[1 : total - 1], hcs_checked=True)  # checked when the header came
            if frame is None:
                c.bad_fcs += 1
                del buf[:1]
                continue
            c.frames += 1
            out.append(frame)
            # Keep the closing flag: it may also open the next frame.
            del buf[: total - 1]
