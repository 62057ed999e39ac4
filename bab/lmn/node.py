"""A *link node*: the stations that share one LMN port (one UART), sans-I/O.

One frame receiver splits the port's byte stream and every valid frame goes to every station (each decides
whether it is addressed). Transmissions of all stations leave through the one port in time order. The same
node runs on the virtual bus (tests, demo), in a virtual-time simulation and on a real serial port.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bab.hdlc.frame import Frame
from bab.hdlc.receiver import FrameReceiver
from bab.hdlc.secondary import Transmission


class Endpoint(Protocol):
    """What a station offers to the node (MeterStation and GatewayStation both do)."""

    def frame_received(self, frame: Frame, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def transmissions_due(self, now: float) -> list[Transmission]: ...


class LinkNode:
    def __init__(self, endpoints: Iterable[Endpoint] = (), receiver: FrameReceiver | None = None) -> None:
        self.endpoints: list[Endpoint] = list(endpoints)
        self.receiver = receiver or FrameReceiver()

    def bytes_received(self, data: bytes, now: float) -> list[Frame]:
        """Feed bytes read from the port at ``now``; returns the frames found (already dispatched)."""
        frames = self.receiver.feed(data, now)
        for frame in frames:
            for ep in self.endpoints:
                ep.frame_received(frame, now)
        return frames

    def next_deadline(self) -> float | None:
        times = [t for t in (ep.next_deadline() for ep in self.endpoints) if t is not None]
        return min(times) if times else None

    def transmissions_due(self, now: float) -> list[Transmission]:
        out: list[Transmission] = []
        for ep in self.endpoints:
            out += ep.transmissions_due(now)
        out.sort(key=lambda t: t.at)
        return out
