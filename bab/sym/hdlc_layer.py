"""SYM pairing as an HDLC upper layer (LMN-STACK.md section 5): selector 6, SYM_HDLC.

:class:`SymServerLayer` is the meter side, a :class:`~bab.hdlc.upper.ServerLayer` around a store-backed
:class:`~bab.sym.link.PersistentSymMeter` (each accepted step is persisted atomically before its answer is
released). :class:`SymPairingClient` is the gateway side, a :class:`~bab.hdlc.upper.ClientLayer` around a
:class:`~bab.sym.gateway.SymGateway`; it ends with a :class:`PairingResult` (the meter's certificate on
success).

The SYM meter answers a request it drops or rejects (bad MAC, wrong MK, replay, wrong sequence) with the
profile's rejection notice (:meth:`~bab.sym.profile.SymProfile.rejection_notice`), because a gateway waits for
an answer to every request (the reference gateway polls RR for it until it crashes, and crashes on DM,
LMN-STACK.md section 13). For a profile without a notice, :class:`SymServerLayer` ends the connection instead:
the poll after a request that got no answer is answered DM (:class:`~bab.hdlc.upper.CloseConnection`). A request
still arriving (a message split over I-frames) is answered RR as usual.

A meter that stays silent (RR to every poll) is still possible on the wire: :class:`SymPairingClient` gives
up after ``max_idle_polls`` polls without an answer (the layer gets no clock; with the station's 2 ms idle
poll plus line time, 500 polls are roughly 1.5-2 s), besides the station's own conversation timeout. The
layer cannot tell RR from RNR, so polls answered RNR (a meter writing its state in a worker thread) count as
idle too: keep the limit well above the number of polls a slow meter step can take.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from bab.hdlc.upper import CloseConnection

from .events import MessageDropped, MeterPaired, PairingCompleted, PairingFailed, SymEvent
from .gateway import SymGateway
from .link import PersistentSymMeter

log = logging.getLogger("bab.sym")


class SymServerLayer:
    """Meter side of selector 6 (see the module docstring).

    ``on_failure(reason)`` is called for every dropped/rejected message and for every aborted pairing (the
    owner counts ``sym_failures``); ``on_paired(event)`` once the paired state is persisted.

    ``executor``: where a received request is processed (:meth:`PersistentSymMeter.handle`: AES/CMAC and the
    atomic, fsync'ed state write, which can take tens of ms on an SD card). None = inline, in the caller's
    thread. With an executor the station answers RNR until the step is done; the worker only runs ``handle``
    and never touches the station, the callbacks or logging. A connection lost while a step runs waits for
    that step (one state write) before resetting the SYM connection.
    """

    def __init__(
        self,
        sym: PersistentSymMeter,
        *,
        on_failure: Callable[[str], None] | None = None,
        on_paired: Callable[[PairingCompleted], None] | None = None,
        name: str = "meter",
        executor: Executor | None = None,
    ) -> None:
        self.sym = sym
        self.on_failure = on_failure
        self.on_paired = on_paired
        self.name = name
        self.executor = executor
        self._inbox = bytearray()
        self._future: Future[bytes] | None = None
        self._out = bytearray()
        self._lost = False
        self._unanswered: str | None = None  # why the last request got no answer (the next poll gets DM)

    def data_received(self, data: bytes) -> None:
        if self._lost:
            return
        self._inbox += data
        self._advance()

    def data_to_send(self, max_size: int) -> bytes:
        self._advance()
        if not self._out and self._future is None and self._unanswered is not None:
            raise CloseConnection(f"SYM request not answered: {self._unanswered}")
        chunk = bytes(self._out[:max_size])
        del self._out[:max_size]
        return chunk

    def is_busy(self) -> bool:
        self._advance()
        return self._future is not None

    def connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self._future is not None:
            self._future.exception()  # wait for the running step: the SYM object is not shared across threads
            self._future = None
        self._out.clear()
        self.sym.connection_reset()
        self._dispatch()

    def _advance(self) -> None:
        while not self._lost:
            if self._future is not None:
                if not self._future.done():
                    return
                future, self._future = self._future, None
                exc = future.exception()
                if exc is not None:
                    raise exc
                self._answered(future.result())
                continue
            if not self._inbox:
                return
            data = bytes(self._inbox)
            self._inbox.clear()
            if self.executor is None:
                self._answered(self.sym.handle(data))
            else:
                self._future = self.executor.submit(self.sym.handle, data)

    def _answered(self, answer: bytes) -> None:
        self._out += answer
        if answer:
            self._unanswered = None
        for reason in self._dispatch():
            if not answer:
                self._unanswered = reason

    def _dispatch(self) -> list[str]:
        """Log and report the engine's events; returns the reasons of dropped messages and aborts."""
        failures: list[str] = []
        extra = {"meter_id": self.name, "layer": "sym"}
        for ev in self.sym.events():
            if isinstance(ev, MessageDropped):
                log.warning("%s: SYM message dropped: %s (cmd %s, counter %s)", self.name, ev.reason,
                            "-" if ev.command is None else f"0x{ev.command:02x}", ev.counter, extra=extra)
                failures.append(ev.reason)
                if self.on_failure is not None:
                    self.on_failure(ev.reason)
            elif isinstance(ev, PairingFailed):
                log.warning("%s: SYM pairing aborted: %s", self.name, ev.reason, extra=extra)
                failures.append(ev.reason)
                if self.on_failure is not None and ev.reason == "connection_reset":
                    self.on_failure("pairing abandoned")  # other aborts were counted with their drop
            elif isinstance(ev, PairingCompleted):
                log.info("%s: paired with the gateway (SYM)", self.name, extra=extra)
                if self.on_paired is not None:
                    self.on_paired(ev)
        return failures


@dataclass
class PairingResult:
    """How a pairing conversation ended: ``ok`` with the meter's certificate, or ``reason``."""

    ok: bool
    reason: str | None = None
    meter_cert_der: bytes | None = field(default=None, repr=False)
    event: SymEvent | None = None


class SymPairingClient:
    """Gateway side of selector 6: pairs one meter with a :class:`SymGateway` (see the module docstring)."""

    def __init__(self, gateway: SymGateway, *, max_idle_polls: int = 500,
                 on_result: Callable[[PairingResult], None] | None = None) -> None:
        self.gateway = gateway
        self.max_idle_polls = max_idle_polls
        self.on_result = on_result
        self.result: PairingResult | None = None
        self._out = bytearray()
        self._started = False
        self._idle = 0

    def data_to_send(self, max_size: int) -> bytes:
        if not self._started:
            self._started = True
            self.gateway.start()
        self._out += self.gateway.data_to_send()
        if self._out:
            self._idle = 0
            chunk = bytes(self._out[:max_size])
            del self._out[:max_size]
            return chunk
        if not self.gateway.done:
            self._idle += 1
            if self._idle > self.max_idle_polls:
                self.gateway.timeout()
                self._collect()
        return b""

    def data_received(self, data: bytes) -> None:
        self._idle = 0
        self.gateway.receive(data)
        self._collect()

    def is_done(self) -> bool:
        self._collect()
        return self.result is not None and not self._out

    def connection_lost(self, reason: str | None) -> None:
        self._collect()
        if self.result is None:
            self._finish(PairingResult(False, reason or "connection closed before the pairing completed"))

    def _collect(self) -> None:
        for ev in self.gateway.events():
            if isinstance(ev, MeterPaired):
                self._finish(PairingResult(True, None, ev.meter_cert_der, ev))
            elif isinstance(ev, PairingFailed):
                self._finish(PairingResult(False, ev.reason, None, ev))

    def _finish(self, result: PairingResult) -> None:
        if self.result is None:
            self.result = result
            if self.on_result is not None:
                self.on_result(result)


__all__ = ["PairingResult", "SymPairingClient", "SymServerLayer"]
