"""Where S0 pulse edges come from: the :class:`EdgeSource` interface, libgpiod v2, and an injected queue.

An S0 output (EN 62053-31, LMN-STACK.md section 9.3) is a passive optocoupler; wired to a GPIO with a pull-up
it pulls the line low during a pulse, so the line is configured ``active_low`` and an *active* edge starts
a pulse. :class:`GpiodEdgeSource` requests the line through libgpiod's Python binding (package ``gpiod``, v2
API) with edge detection on both edges and kernel time stamps; it is imported only when opened, so a missing
binding gives a clear :class:`EdgeSourceError` instead of an import error at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol


@dataclass(frozen=True)
class Edge:
    """A level change of the S0 input: ``active`` True when a pulse begins. ``time_ns`` is monotonic."""

    time_ns: int
    active: bool


class EdgeSourceError(OSError):
    """The edge source cannot be opened (binding missing, no such chip or line, line busy)."""


class EdgeSource(Protocol):
    """A source of S0 edges, opened once and read until closed."""

    async def open(self) -> None:
        """Acquire the input; raises :class:`EdgeSourceError` with a human-readable reason."""

    def edges(self) -> AsyncIterator[Edge]:
        """The edges in order, until the source is closed."""

    def close(self) -> None:
        """Release the input (idempotent)."""


class QueueEdgeSource:
    """An edge source fed by the program (tests, simulations): ``put(edge)``; ``None`` ends the stream."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Edge | None] = asyncio.Queue()
        self.opened = False
        self.closed = False

    async def open(self) -> None:
        self.opened = True

    def put(self, edge: Edge | None) -> None:
        self.queue.put_nowait(edge)

    def pulse(self, start_ns: int, width_ns: int) -> None:
        """Both edges of one pulse."""
        self.put(Edge(start_ns, True))
        self.put(Edge(start_ns + width_ns, False))

    async def edges(self) -> AsyncIterator[Edge]:
        while (edge := await self.queue.get()) is not None:
            yield edge

    def close(self) -> None:
        self.closed = True


class GpiodEdgeSource:
    """Edges of one GPIO line through libgpiod v2 (``gpiod.request_lines``), read with the event loop."""

    def __init__(self, chip: str, line: int | str, *, active_low: bool = True, bias: str = "pull-up",
                 kernel_debounce_us: int = 0, consumer: str = "bab-s0") -> None:
        self.chip, self.line, self.active_low, self.bias = chip, line, active_low, bias
        self.kernel_debounce_us = kernel_debounce_us
        self.consumer = consumer
        self._request: Any = None
        self._gpiod: Any = None

    async def open(self) -> None:
        try:
            import gpiod
            from gpiod.line import Bias, Direction
            from gpiod.line import Edge as GEdge
        except ImportError as exc:
            raise EdgeSourceError(
                f"the Python package 'gpiod' (libgpiod v2 binding) cannot be imported: {exc}") from None
        self._gpiod = gpiod
        bias = {"pull-up": Bias.PULL_UP, "pull-down": Bias.PULL_DOWN, "disabled": Bias.DISABLED,
                "as-is": Bias.AS_IS}[self.bias]
        settings = gpiod.LineSettings(
            direction=Direction.INPUT, edge_detection=GEdge.BOTH, bias=bias, active_low=self.active_low,
            debounce_period=timedelta(microseconds=self.kernel_debounce_us),
        )
        try:
            self._request = gpiod.request_lines(self.chip, consumer=self.consumer, config={self.line: settings})
        except (OSError, ValueError, TypeError) as exc:
            raise EdgeSourceError(f"cannot request GPIO line {self.line} on {self.chip}: {exc}") from None

    async def edges(self) -> AsyncIterator[Edge]:
        request = self._request
        if request is None:
            raise EdgeSourceError("the GPIO line is not open")
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        loop.add_reader(request.fd, ready.set)
        try:
            while True:
                await ready.wait()
                ready.clear()
                while request.wait_edge_events(timedelta(0)):
                    for ev in request.read_edge_events():
                        # with active_low the kernel reports logical edges: rising = pulse begins
                        yield Edge(ev.timestamp_ns, ev.event_type == rising)
        finally:
            loop.remove_reader(request.fd)

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            with contextlib.suppress(Exception):  # already released (chip gone)
                request.release()
