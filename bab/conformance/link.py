"""How the conformance tester's link node meets a bus: in virtual time on the in-process virtual bus
(:class:`SimLink`, tests and ``--port sim:``), or in real time on any pyserial URL (:class:`SerialLink`: a
USB-RS485 adapter, ``socket://`` to a ``bab bus`` hub). Both move bytes and time only; the protocol work stays
in the sans-I/O stations of the node."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from bab.hdlc.timing import BAUDRATE
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation


class Link(Protocol):
    """A running link: its clock, and a way to let time pass while the node works."""

    @property
    def now(self) -> float: ...

    def run_until(self, t_stop: float, until: Callable[[], bool] | None = None) -> bool: ...

    def close(self) -> None: ...


class SimLink:
    """The tester's node on a :class:`~bab.lmn.simulation.Simulation` (virtual time: a case that waits a minute
    of bus time takes milliseconds)."""

    timing_tolerance = 0.0  # times on the virtual bus are exact

    def __init__(self, sim: Simulation, node: LinkNode, name: str = "conformance") -> None:
        self.sim = sim
        self.sim_node = sim.add(name, node)

    @property
    def now(self) -> float:
        return self.sim.now

    def run_until(self, t_stop: float, until: Callable[[], bool] | None = None) -> bool:
        return self.sim.run_until(t_stop, until)

    def close(self) -> None:
        self.sim.set_running(self.sim_node, False)


class SerialLink:
    """The tester's node on a pyserial port, in real time. Received bytes are stamped with the time the read
    returned, so slot offsets measured here carry the port's read latency (USB adapters: about 1 ms)."""

    def __init__(self, url: str, node: LinkNode, *, baudrate: int = BAUDRATE, poll: float = 0.0005,
                 timing_tolerance: float = 0.002) -> None:
        import serial

        self.node = node
        self.timing_tolerance = timing_tolerance  # slack for slot measurements (read latency of the port)
        self.poll = poll
        try:
            self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=2)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise OSError(f"cannot open {url}: {exc}") from None
        self._t0 = time.monotonic()

    @property
    def now(self) -> float:
        return time.monotonic() - self._t0

    def run_until(self, t_stop: float, until: Callable[[], bool] | None = None) -> bool:
        while True:
            if until is not None and until():
                return True
            now = self.now
            if now >= t_stop:
                return until() if until is not None else False
            for tx in self.node.transmissions_due(now):
                delay = tx.at - self.now
                if delay > 0:
                    time.sleep(delay)
                self.ser.write(tx.data)
            deadline = self.node.next_deadline()
            wait = min(t_stop, deadline if deadline is not None else t_stop) - self.now
            self.ser.timeout = max(0.0, min(wait, 0.02))
            data = self.ser.read(max(1, self.ser.in_waiting))
            if data:
                self.node.bytes_received(data, self.now)
            elif wait > 0 and self.ser.timeout == 0:
                time.sleep(self.poll)

    def close(self) -> None:
        self.ser.close()
