"""The live event stream of the web console (Server-Sent Events, WHATWG HTML "server-sent events").

:class:`EventHub` is fed by the console (registrations, presence results, readings, attention codes, link
errors, adapter status) with :meth:`EventHub.publish`, which never waits: every subscriber has a bounded queue,
and an event that does not fit into a slow client's queue is dropped for that client and counted (per client
and in total). A vanished client's handler ends at its next write or keep-alive and unsubscribes. So a slow or
gone browser never holds up the event loop that times the LMN slots. The last events are kept so that a page
that connects late (or reconnects with ``Last-Event-ID``) sees what happened before.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_QUEUE = 256
DEFAULT_HISTORY = 200


@dataclass
class Event:
    seq: int
    kind: str
    time: float  # wall-clock seconds (UNIX time)
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "time": round(self.time, 3), "data": self.data}

    def sse(self) -> bytes:
        """The event as an SSE message: ``id``, ``event`` (the kind) and one ``data`` line of JSON."""
        payload = json.dumps(self.to_json(), separators=(",", ":"), default=str)
        return f"id: {self.seq}\nevent: {self.kind}\ndata: {payload}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event]
    dropped: int = 0
    delivered: int = 0
    kinds: frozenset[str] | None = None  # None: every kind


@dataclass
class HubCounters:
    published: int = 0
    dropped: int = 0
    subscribers: int = 0
    subscribed_total: int = 0


class EventHub:
    def __init__(self, *, queue_size: int = DEFAULT_QUEUE, history: int = DEFAULT_HISTORY,
                 clock: Callable[[], float] = time.time) -> None:
        self.queue_size = queue_size
        self.clock = clock
        self.history: deque[Event] = deque(maxlen=history)
        self.counters = HubCounters()
        self._subs: list[Subscription] = []
        self._seq = itertools.count(1)

    def publish(self, kind: str, **data: Any) -> Event:
        """Hand an event to every subscriber that has room (never blocks; a full queue drops and counts)."""
        event = Event(next(self._seq), kind, self.clock(), data)
        self.history.append(event)
        self.counters.published += 1
        for sub in self._subs:
            if sub.kinds is not None and kind not in sub.kinds:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1
                self.counters.dropped += 1
        return event

    def subscribe(self, *, since: int | None = None, kinds: frozenset[str] | None = None) -> Subscription:
        """A new subscriber; with ``since``, the kept events after that sequence number are queued first."""
        sub = Subscription(asyncio.Queue(self.queue_size), kinds=kinds)
        if since is not None:
            for e in self.history:
                if e.seq > since and (kinds is None or e.kind in kinds) and not sub.queue.full():
                    sub.queue.put_nowait(e)
        self._subs.append(sub)
        self.counters.subscribers = len(self._subs)
        self.counters.subscribed_total += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        self.counters.subscribers = len(self._subs)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subs)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        return [e.to_json() for e in list(self.history)[-limit:]]

    def stats(self) -> dict[str, Any]:
        return {"published": self.counters.published, "dropped": self.counters.dropped,
                "subscribers": self.counters.subscribers, "queue_size": self.queue_size,
                "clients": [{"queued": s.queue.qsize(), "delivered": s.delivered, "dropped": s.dropped}
                            for s in self._subs]}
