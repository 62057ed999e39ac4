"""Virtual-time simulation of link nodes on a :class:`~bab.lmn.bus.VirtualBus`.

Deterministic and fast: a minute of bus time with presence checks and polling runs in well under a second,
which is what makes the long-period behaviours (silent meters dropped, re-registration, gateway restarts)
cheap to test. Uses exactly the same sans-I/O nodes as the asyncio runners.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from .bus import BusPort, VirtualBus
from .node import LinkNode


@dataclass(eq=False)
class SimNode:
    node: LinkNode
    port: BusPort
    name: str
    running: bool = True  # a stopped node neither hears nor sends (process killed / power off)
    frames_seen: int = 0


@dataclass
class Simulation:
    bus: VirtualBus = field(default_factory=VirtualBus)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.nodes: list[SimNode] = []
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def add(self, name: str, node: LinkNode) -> SimNode:
        sim_node = SimNode(node, self.bus.attach(name), name)
        self.nodes.append(sim_node)
        return sim_node

    def at(self, t: float, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``t``."""
        self._seq += 1
        heapq.heappush(self._actions, (t, self._seq, action))

    def set_running(self, sim_node: SimNode, running: bool) -> None:
        sim_node.running = running
        sim_node.port.listening = running

    def run_until(self, t_stop: float, until: Callable[[], bool] | None = None) -> bool:
        """Advance virtual time to ``t_stop`` (or until ``until()`` is true; returns whether it became true)."""
        stalls = 0
        while True:
            if until is not None and until():
                return True
            candidates = [t for t in (self.bus.next_delivery(),) if t is not None]
            if self._actions:
                candidates.append(self._actions[0][0])
            for sn in self.nodes:
                if sn.running:
                    d = sn.node.next_deadline()
                    if d is not None:
                        candidates.append(d)
            if not candidates:
                self.now = t_stop
                return False
            t = max(min(candidates), self.now)
            if t > t_stop:
                self.now = t_stop
                return until() if until is not None else False
            if t == self.now:
                stalls += 1
                if stalls > 1000:  # a deadline that keeps being due without progress: move on
                    t = self.now + 1e-6
                    stalls = 0
            else:
                stalls = 0
            self.now = t
            self._step()

    def run_for(self, duration: float, until: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.now + duration, until)

    def _step(self) -> None:
        now = self.now
        for port, data, t in self.bus.deliveries_due(now):
            for sn in self.nodes:
                if sn.port is port and sn.running:
                    sn.frames_seen += len(sn.node.bytes_received(data, t))
        while self._actions and self._actions[0][0] <= now:
            _, _, action = heapq.heappop(self._actions)
            action()
        for sn in self.nodes:
            if not sn.running:
                continue
            for tx in sn.node.transmissions_due(now):
                sn.port.transmit(tx.data, now)
