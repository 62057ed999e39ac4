"""Reading HDLC frames from the gateway's end of a pty, for the benchmarks that play a minimal gateway."""

from __future__ import annotations

import os
import select
import time

from bab.hdlc.frame import Frame
from bab.hdlc.receiver import FrameReceiver


def read_frames(fd: int, rx: FrameReceiver, timeout: float) -> list[tuple[float, Frame]]:
    """Frames arriving on ``fd`` within ``timeout`` seconds, each with the arrival time of its first chunk."""
    out: list[tuple[float, Frame]] = []
    end = time.perf_counter() + timeout
    while (left := end - time.perf_counter()) > 0:
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        t = time.perf_counter()
        out += [(t, f) for f in rx.feed(os.read(fd, 4096), t)]
    return out
