"""A virtual RS-485 bus: every byte seen by all other stations, overlapping transmissions corrupted.

The model is time based (no I/O, no clock: times are passed in). A transmission occupies the line for
10 bits per byte at the bus baud rate; a port sends its transmissions one after the other. Where two
transmissions overlap in time, the overlapping bytes of both are garbled, as contention garbles them on a real
two-wire bus, so address collisions and slot mistakes show up as CRC errors at the receivers. Optional line
noise flips bits and drops bytes at set rates. Deliveries come in chunks (``chunk`` bytes) at the time their
last byte has crossed the line, so receivers see frames split across reads as on a real UART.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from bab.hdlc.timing import BAUDRATE


@dataclass(eq=False)
class BusPort:
    """One station's attachment to the bus."""

    name: str
    bus: VirtualBus
    busy_until: float = 0.0
    listening: bool = True  # a port that is "unplugged" neither hears nor is heard
    sent_bytes: int = 0

    def transmit(self, data: bytes, now: float) -> float:
        """Start sending ``data`` at ``now`` (or when this port's previous transmission ends); returns its end."""
        return self.bus.transmit(self, data, now)


@dataclass(eq=False)
class _Tx:
    port: BusPort
    start: float
    data: bytearray
    end: float = 0.0


@dataclass
class BusCounters:
    transmissions: int = 0
    collisions: int = 0
    bytes_garbled: int = 0
    noise_bit_flips: int = 0
    noise_drops: int = 0


@dataclass
class VirtualBus:
    baudrate: int = BAUDRATE
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    chunk: int = 64
    counters: BusCounters = field(default_factory=BusCounters)

    def __post_init__(self) -> None:
        self.ports: list[BusPort] = []
        self._inflight: list[_Tx] = []
        self._queue: list[tuple[float, int, BusPort, bytes]] = []
        self._seq = 0

    @property
    def byte_time(self) -> float:
        return 10.0 / self.baudrate

    def attach(self, name: str) -> BusPort:
        port = BusPort(name, self)
        self.ports.append(port)
        return port

    def transmit(self, port: BusPort, data: bytes, now: float) -> float:
        if not port.listening or not data:
            return now
        start = max(now, port.busy_until)
        bt = self.byte_time
        tx = _Tx(port, start, bytearray(data))
        tx.end = start + len(data) * bt
        port.busy_until = tx.end
        port.sent_bytes += len(data)
        self.counters.transmissions += 1
        self._inflight = [t for t in self._inflight if t.end > start]
        for other in self._inflight:
            if other.port is not port and other.start < tx.end and start < other.end:
                self.counters.collisions += 1
                self._garble(tx, other)
        self._inflight.append(tx)
        self._schedule(tx)
        return tx.end

    def _garble(self, a: _Tx, b: _Tx) -> None:
        lo, hi = max(a.start, b.start), min(a.end, b.end)
        bt = self.byte_time
        for t in (a, b):
            first = max(0, int((lo - t.start) / bt))
            last = min(len(t.data), int((hi - t.start) / bt) + 1)
            for i in range(first, last):
                t.data[i] = self.rng.randrange(256)
                self.counters.bytes_garbled += 1

    def _schedule(self, tx: _Tx) -> None:
        # Deliveries are decided at the end of each chunk, after any later overlapping transmission has garbled
        # it; so the queue holds the transmission and cuts the bytes at delivery time.
        bt = self.byte_time
        n = len(tx.data)
        for lo in range(0, n, self.chunk):
            hi = min(n, lo + self.chunk)
            for port in self.ports:
                if port is not tx.port:
                    self._seq += 1
                    heapq.heappush(self._queue, (tx.start + hi * bt, self._seq, port, (tx, lo, hi)))  # type: ignore

    def next_delivery(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def deliveries_due(self, now: float) -> list[tuple[BusPort, bytes, float]]:
        """(port, bytes, time) for every chunk whose last byte has crossed the line by ``now``."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            t, _, port, (tx, lo, hi) = heapq.heappop(self._queue)  # type: ignore
            if not port.listening:
                continue
            data = self._noise(bytes(tx.data[lo:hi]))
            if data:
                out.append((port, data, t))
        return out

    def _noise(self, data: bytes) -> bytes:
        if not self.bit_error_rate and not self.drop_rate:
            return data
        rng = self.rng
        out = bytearray()
        p_byte = 1 - (1 - self.bit_error_rate) ** 8
        for b in data:
            if self.drop_rate and rng.random() < self.drop_rate:
                self.counters.noise_drops += 1
                continue
            if p_byte and rng.random() < p_byte:
                b ^= 1 << rng.randrange(8)
                self.counters.noise_bit_flips += 1
            out.append(b)
        return bytes(out)
