"""Drives a sans-I/O :class:`~bab.lmn.node.LinkNode` from asyncio: the only place where LMN time is real.

Bytes from the transport go in with the loop time of their arrival; transmissions leave when due, on a timer
set to the node's next deadline. An ``on_step`` callback runs after every step so the owner can drain station
events (logging, persistence, the gateway application).

Broadcast replies must start inside a 5 ms window of a 10 ms slot, but asyncio's timers wake with the 1 ms
granularity of epoll, late. So the runner sleeps on the loop until ``PRECISE`` seconds before a deadline and
covers the rest with short blocking sleeps: at most ``PRECISE`` of loop time per deadline, spent only when a
transmission is imminent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from .node import LinkNode

PRECISE = 0.0015  # seconds before a deadline where the runner stops trusting the loop's timer


class NodeRunner:
    def __init__(self, node: LinkNode, write: Callable[[bytes], None],
                 on_step: Callable[[float], None] | None = None) -> None:
        self.node = node
        self.write = write
        self.on_step = on_step or (lambda now: None)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.late: list[float] = []  # how late each transmission left vs. its due time (for benchmarks)
        self.record_lateness = False

    def feed(self, data: bytes, now: float | None = None) -> None:
        """Bytes read from the port (call from the transport's read callback)."""
        t = self._loop.time() if now is None else now
        self.node.bytes_received(data, t)
        self._flush(t)
        self._wake.set()

    def _flush(self, now: float) -> None:
        for tx in self.node.transmissions_due(now):
            if self.record_lateness:
                self.late.append(now - tx.at)
            self.write(tx.data)
        self.on_step(now)

    def poke(self) -> None:
        """Re-evaluate deadlines now (e.g. after queuing work on a station from outside)."""
        self._wake.set()

    async def run(self) -> None:
        """Run the timer loop until cancelled."""
        loop = self._loop
        while True:
            now = loop.time()
            self._flush(now)
            deadline = self.node.next_deadline()
            self._wake.clear()
            if deadline is None:
                await self._wake.wait()
                continue
            delay = deadline - loop.time()
            if delay <= 0:
                # Due already but nothing was sent (e.g. a conversation backing off): yield briefly.
                await asyncio.sleep(0.0002)
                continue
            if delay > PRECISE:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay - PRECISE):  # wait_for can swallow a cancel (3.11)
                        await self._wake.wait()
                if self._wake.is_set():
                    continue
            while (left := deadline - loop.time()) > 0:
                time.sleep(min(left, 0.0002))
