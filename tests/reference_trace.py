"""Replaying a reference-gateway session trace (``tests/vectors/reference-smgw``, format in its README) against a
meter on a byte stream, the way the reference gateway talks (LMN-STACK.md section 13): write one frame, then read
for 900 ms after a broadcast, or until one whole frame after a unicast (at most ``unicast_timeout``), never
flushing. Each answer is compared with the recorded one; a run of RNR answers is one exchange whatever its length
(the meter's computing time decides it), polled with RR as the reference does.
"""

from __future__ import annotations

import os
import select
import time
from dataclasses import dataclass, field
from pathlib import Path

from bab.hdlc.frame import Kind, control_rr, decode_frame, encode_frame, kind_of
from bab.sml.errors import SmlError
from bab.sml.messages import PublicOpenRes, decode_file
from bab.sml.transport import decode_transport

BROADCAST_LISTEN = 0.9
UNICAST_TIMEOUT = 1.0
STRAY_WINDOW = 0.03  # after a unicast answer: any byte within this much is a stray byte
MAX_RNR = 150  # the reference gateway crashes after ~196 RNRs in a row


@dataclass
class TracedExchange:
    """One ``>`` line and its ``<`` lines."""

    t: float
    request: bytes
    replies: list[bytes] = field(default_factory=list)
    no_reply: bool = False

    @property
    def broadcast(self) -> bool:
        return self.request[3] == 0xFE

    @property
    def selector(self) -> int:
        return self.request[4] >> 1


def load_trace(path: Path) -> tuple[list[str], list[TracedExchange]]:
    comments, exchanges = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        t, arrow, data = line.split()
        if arrow == ">":
            exchanges.append(TracedExchange(float(t), bytes.fromhex(data)))
        elif data == "none":
            exchanges[-1].no_reply = True
        else:
            exchanges[-1].replies.append(bytes.fromhex(data))
    return comments, exchanges


def comparable(frame: bytes) -> object:
    """What must be equal between a recorded answer and a replayed one: the bytes, except for an SML answer
    (an I frame on selector 3), whose PublicOpen.Res carries the meter's seconds index (refTime, time-dependent):
    that is compared decoded, with refTime left out (and so its CRCs)."""
    try:
        f = decode_frame(frame)
    except ValueError:
        return frame
    if f.kind is not Kind.I or f.src_selector != 3:
        return frame
    try:
        sml = decode_file(decode_transport(f.info))
    except SmlError:
        return frame
    for m in sml.messages:
        if isinstance(m.body, PublicOpenRes):
            m.body.ref_time = None
    return (frame[:8], sml)


def is_rnr(frame: bytes) -> bool:
    return len(frame) >= 9 and kind_of(frame[7]) is Kind.RNR


@dataclass
class ReplayResult:
    """What the meter answered to each exchange replayed (``answers[i]`` for ``exchanges[i]``)."""

    exchanges: list[TracedExchange]
    answers: list[list[bytes]] = field(default_factory=list)
    rnr_runs: list[int] = field(default_factory=list)
    broadcast_reply_delays: list[float] = field(default_factory=list)
    strays: list[bytes] = field(default_factory=list)


class Replayer:
    """Plays the gateway's side of a trace on ``fd`` (the gateway end of a pty pair, raw mode)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def _read_until(self, deadline: float, want: int | None) -> None:
        while True:
            if want is not None and len(self.buf) >= want:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                self.buf += os.read(self.fd, 4096)

    def _frame_length(self) -> int | None:
        if len(self.buf) < 3:
            return None
        return ((self.buf[1] & 0x07) << 8 | self.buf[2]) + 2

    def unicast(self, frame: bytes) -> tuple[bytes | None, bytes]:
        """Write a frame, read one whole frame back (or None after the timeout) and any stray bytes after it."""
        self.buf.clear()
        os.write(self.fd, frame)
        deadline = time.monotonic() + UNICAST_TIMEOUT
        self._read_until(deadline, 3)
        n = self._frame_length()
        if n is None:
            return None, bytes(self.buf)
        self._read_until(deadline, n)
        if len(self.buf) < n:
            return None, bytes(self.buf)
        answer = bytes(self.buf[:n])
        del self.buf[:n]
        self._read_until(time.monotonic() + STRAY_WINDOW, None)
        stray = bytes(self.buf)
        self.buf.clear()
        return answer, stray

    def broadcast(self, frame: bytes) -> tuple[list[bytes], float | None]:
        """Write a broadcast, read for 900 ms, split by length; also when the first answer byte came."""
        self.buf.clear()
        t0 = time.monotonic()
        os.write(self.fd, frame)
        first: float | None = None
        deadline = t0 + BROADCAST_LISTEN
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if r:
                data = os.read(self.fd, 4096)
                if data and first is None:
                    first = time.monotonic() - t0
                self.buf += data
        out, pos, raw = [], 0, bytes(self.buf)
        while pos + 3 <= len(raw) and raw[pos] == 0x7E:
            n = ((raw[pos + 1] & 0x07) << 8 | raw[pos + 2]) + 2
            out.append(raw[pos : pos + n])
            pos += n
        if pos != len(raw):
            out.append(raw[pos:])  # garbage: compared (and failing) like a frame
        return out, first

    def play(self, exchanges: list[TracedExchange], *, stop_before_selector: int | None = None,
             gap: float = 0.02) -> ReplayResult:
        """Play from the first exchange the meter answered in the recording; stop before the first I frame on
        ``stop_before_selector`` (TLS records cannot be replayed)."""
        start = next(i for i, e in enumerate(exchanges) if e.replies)
        todo = exchanges[start:]
        res = ReplayResult([])
        i = 0
        while i < len(todo):
            ex = todo[i]
            if stop_before_selector is not None and not ex.broadcast and ex.selector == stop_before_selector \
                    and kind_of(ex.request[7]) is Kind.I:
                break
            if ex.broadcast:
                got, first = self.broadcast(ex.request)
                if first is not None:
                    res.broadcast_reply_delays.append(first)
                res.exchanges.append(ex)
                res.answers.append(got)
                i += 1
                time.sleep(gap)
                continue
            # a run "request -> RNR, RR -> RNR, ... RR -> answer" is one exchange: skip to its final answer
            j = i
            while j + 1 < len(todo) and todo[j].replies and is_rnr(todo[j].replies[0]):
                j += 1
            final = todo[j]
            answer, stray = self.unicast(ex.request)
            rnrs = 0
            request = decode_frame(ex.request)
            poll = encode_frame(request.dst, request.dst_selector, request.src, request.src_selector,
                                control_rr(request.nr))
            while answer is not None and is_rnr(answer) and rnrs < MAX_RNR:
                rnrs += 1
                if stray:
                    res.strays.append(stray)
                answer, stray = self.unicast(poll)
            if stray:
                res.strays.append(stray)
            res.rnr_runs.append(rnrs)
            merged = TracedExchange(ex.t, ex.request, final.replies, final.no_reply)
            res.exchanges.append(merged)
            res.answers.append([] if answer is None else [answer])
            i = j + 1
            time.sleep(gap)
        return res
