"""Test-side upper layers and builders for LMN link tests (length-prefixed messages over HDLC)."""

from __future__ import annotations

import random

from bab.hdlc.primary import GatewayStation
from bab.hdlc.secondary import MeterStation
from bab.hdlc.timing import GatewayTiming, MeterTiming
from bab.lmn.node import LinkNode
from bab.meter_id import MeterId


def frame_message(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


class ReversingServer:
    """Meter-side layer: answers every length-prefixed message with its bytes reversed."""

    def __init__(self, log: list[bytes] | None = None, busy_polls: int = 0) -> None:
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.received: list[bytes] = [] if log is None else log
        self.busy_polls = busy_polls
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        while len(self.inbox) >= 2 and len(self.inbox) >= 2 + int.from_bytes(self.inbox[:2], "big"):
            n = int.from_bytes(self.inbox[:2], "big")
            msg = bytes(self.inbox[2 : 2 + n])
            del self.inbox[: 2 + n]
            self.received.append(msg)
            self.outbox += frame_message(msg[::-1])

    def data_to_send(self, max_size: int) -> bytes:
        if self.busy_polls:
            return b""
        chunk = bytes(self.outbox[:max_size])
        del self.outbox[:max_size]
        return chunk

    def is_busy(self) -> bool:
        if self.busy_polls:
            self.busy_polls -= 1
            return True
        return False

    def connection_lost(self) -> None:
        self.lost = True


class RequestClient:
    """Gateway-side layer: sends one message and waits for the reversed answer."""

    def __init__(self, payload: bytes) -> None:
        self.out = bytearray(frame_message(payload))
        self.inbox = bytearray()
        self.answer: bytes | None = None
        self.result: str | None = "pending"

    def data_to_send(self, max_size: int) -> bytes:
        chunk = bytes(self.out[:max_size])
        del self.out[:max_size]
        return chunk

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        if len(self.inbox) >= 2 and len(self.inbox) >= 2 + int.from_bytes(self.inbox[:2], "big"):
            self.answer = bytes(self.inbox[2 : 2 + int.from_bytes(self.inbox[:2], "big")])

    def is_done(self) -> bool:
        return self.answer is not None

    def connection_lost(self, reason: str | None) -> None:
        self.result = reason


FAST_GATEWAY = GatewayTiming(broadcast_period=3.0, broadcast_period_empty=0.5, check_period=2.0)


def meter(n: int, seed: int, serve=(3,), log=None, **kw) -> MeterStation:
    server_id = MeterId.parse(f"1BAB00{n:08d}").server_id

    def layers(selector: int):
        return ReversingServer(log) if selector in serve else None

    return MeterStation(server_id, layers, kw.pop("timing", MeterTiming()), rng=random.Random(seed), **kw)


def meter_group(first: int, count: int, seed: int, **kw) -> tuple[LinkNode, list[MeterStation]]:
    stations: list[MeterStation] = []
    for i in range(count):
        stations.append(meter(first + i, seed * 100 + i, siblings=lambda: stations, **kw))
    return LinkNode(stations), stations


def gateway(timing: GatewayTiming = FAST_GATEWAY, **kw) -> tuple[LinkNode, GatewayStation]:
    gw = GatewayStation(timing, **kw)
    gw.start(0.0)
    return LinkNode([gw]), gw


def events_of(gw: GatewayStation, kind) -> list:
    return [e for e in gw.next_events() if isinstance(e, kind)]


