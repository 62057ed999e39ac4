"""Shared helpers for the TLS/SYM-over-HDLC tests (virtual bus, virtual time). Contains no tests itself."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

from lmn_helpers import ReversingServer, gateway

from bab.hdlc import events as ev
from bab.hdlc.primary import GatewayStation
from bab.hdlc.secondary import MeterStation, StationState
from bab.hdlc.timing import MeterTiming
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation
from bab.meter_id import MeterId
from bab.tls import keys
from bab.tls.keys import Curve

METER_ID = "1BAB0000000042"
SERVER_ID = MeterId.parse(METER_ID).server_id
MK = bytes.fromhex("00112233445566778899aabbccddeeff")


@functools.cache
def identity(name: str, curve: Curve = Curve.SECP256R1) -> tuple[bytes, bytes]:
    return keys.generate_identity(name, curve)


class Link:
    """A gateway and one meter station on a virtual bus, in virtual time."""

    def __init__(self, layers: Callable[[int], object], seed: int = 1, **gw_kw) -> None:
        self.sim = Simulation(VirtualBus())
        gw_node, self.gw = gateway(**gw_kw)
        self.station = MeterStation(SERVER_ID, layers, MeterTiming(), rng=random.Random(seed))
        self.sim.add("gw", gw_node)
        self.sim.add("bab", LinkNode([self.station]))
        self.events: list[object] = []
        assert self.sim.run_for(10.0, self._registered), "meter did not register"

    def _registered(self) -> bool:
        return self.station.state is StationState.REGISTERED and self.station.address in self.gw.participants

    def converse(self, selector: int, layer, timeout: float = 60.0) -> object:
        """Run one conversation; returns its ConversationDone or ExchangeFailed event."""
        gw: GatewayStation = self.gw
        gw.converse(self.station.address, selector, layer)
        found: list[object] = []

        def done() -> bool:
            for e in gw.next_events():
                self.events.append(e)
                if isinstance(e, ev.ConversationDone | ev.ExchangeFailed) and e.selector == selector:
                    found.append(e)
            return bool(found)

        assert self.sim.run_for(timeout, done), "conversation did not end"
        return found[0]


def reversing(log: list[bytes] | None = None) -> Callable[[], ReversingServer]:
    return lambda: ReversingServer(log)
