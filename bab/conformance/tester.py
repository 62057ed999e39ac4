"""The conformance tester: BAB's software gateway station (:class:`~bab.hdlc.primary.GatewayStation`) plus a
raw frame port on one link node, and the bounded waits every case is built from.

The gateway station does what a gateway does (allocation broadcasts, presence checks, conversations with the
client layers of SML, SYM and TLS). For frames a gateway would never send on its own (a lost
acknowledgement, a bad CRC, an RNR, a list naming the meter under another address) the tester pauses the
station between exchanges and sends frames of its own. Every wait ends at the case's deadline, so a silent or
babbling meter yields a verdict, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bab.hdlc import events as ev
from bab.hdlc.frame import GATEWAY_ADDRESS, Frame
from bab.hdlc.primary import GatewayStation, Participant
from bab.hdlc.secondary import Transmission
from bab.hdlc.timing import GatewayTiming, wire_time
from bab.hdlc.upper import ClientLayer
from bab.lmn.node import LinkNode

from .case import CaseFailed, Record

#: Gateway timing of the suite: faster broadcasts than the reference gateway's (the spec leaves the periods
#: to the gateway; the meter must answer whenever they come). Slot grid and reply timeout are the standard ones.
FAST_TIMING = GatewayTiming(broadcast_period=3.0, broadcast_period_empty=0.5, check_period=2.0)


class _Gate:
    """The gateway station, switchable off between exchanges; logs what it sends."""

    def __init__(self) -> None:
        self.station: GatewayStation | None = None
        self.paused = False
        self.sent: list[Transmission] = []

    def frame_received(self, frame: Frame, now: float) -> None:
        if self.station is not None and not self.paused:
            self.station.frame_received(frame, now)

    def next_deadline(self) -> float | None:
        if self.station is None or self.paused:
            return None
        return self.station.next_deadline()

    def transmissions_due(self, now: float) -> list[Transmission]:
        if self.station is None or self.paused:
            return []
        out = self.station.transmissions_due(now)
        self.sent += out
        del self.sent[:-256]
        return out


@dataclass
class Received:
    t: float  # time the frame's last byte arrived
    frame: Frame
    raw: bytes = field(repr=False, default=b"")

    @property
    def start(self) -> float:
        return self.t - wire_time(len(self.raw))


class _RawPort:
    """Frames the tester sends itself, and every frame addressed to the gateway that arrives."""

    def __init__(self) -> None:
        self.queue: list[Transmission] = []
        self.received: list[Received] = []

    def frame_received(self, frame: Frame, now: float) -> None:
        if frame.dst == GATEWAY_ADDRESS and frame.src != GATEWAY_ADDRESS:
            self.received.append(Received(now, frame, frame.encode()))
            del self.received[:-4096]

    def next_deadline(self) -> float | None:
        return min((t.at for t in self.queue), default=None)

    def transmissions_due(self, now: float) -> list[Transmission]:
        due = [t for t in self.queue if t.at <= now]
        self.queue = [t for t in self.queue if t.at > now]
        return due


class Tester:
    """One tester on one link (see the module docstring). ``attach(link)`` after construction."""

    __test__ = False  # not a pytest class

    def __init__(self, timing: GatewayTiming = FAST_TIMING, *, conversation_timeout: float = 20.0) -> None:
        self.timing = timing
        self.conversation_timeout = conversation_timeout
        self.gate = _Gate()
        self.raw = _RawPort()
        self.node = LinkNode([self.gate, self.raw])
        self.link = None  # type: ignore[assignment]
        self.deadline = float("inf")
        self.record: Record = Record()
        self.events: list[object] = []

    def attach(self, link: object) -> None:
        self.link = link  # type: ignore[assignment]

    # --- time -----------------------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.link.now  # type: ignore[union-attr]

    def wait(self, timeout: float, until: Callable[[], bool] | None = None) -> bool:
        """Let up to ``timeout`` seconds pass (never beyond the case deadline); True once ``until()`` holds."""
        t_stop = min(self.now + timeout, self.deadline)
        ok = self.link.run_until(t_stop, until)  # type: ignore[union-attr]
        self._collect()
        if not ok and self.now >= self.deadline:
            raise CaseFailed("the case's time bound ran out (the meter did not answer in time)")
        return ok

    # --- the gateway station ----------------------------------------------------------------------------

    @property
    def station(self) -> GatewayStation:
        if self.gate.station is None:
            self.start_gateway()
        assert self.gate.station is not None
        return self.gate.station

    def start_gateway(self, timing: GatewayTiming | None = None) -> GatewayStation:
        """A fresh gateway station (empty registry) broadcasting from now."""
        st = GatewayStation(timing or self.timing, conversation_timeout=self.conversation_timeout)
        st.start(self.now)
        self.gate.station, self.gate.paused = st, False
        return st

    def _collect(self) -> None:
        st = self.gate.station
        if st is not None:
            self.events += st.next_events()
            del self.events[:-1024]

    def pause(self) -> None:
        """Let the station finish its exchange in flight, then keep it quiet (the bus is the tester's)."""
        if self.gate.station is not None and not self.gate.paused:
            self.wait(5.0, lambda: self.station.idle)
            self.gate.paused = True

    def resume(self) -> None:
        self.gate.paused = False

    def participant(self, server_id: bytes | None = None) -> Participant | None:
        if self.gate.station is None:
            return None
        for p in self.station.participants.values():
            if server_id is None or p.server_id[:10] == server_id[:10]:
                return p
        return None

    def registered(self, server_id: bytes | None, timeout: float) -> Participant | None:
        """Wait (gateway running) until a meter (that one) is registered."""
        self.resume()
        self.wait(timeout, lambda: self.participant(server_id) is not None)
        return self.participant(server_id)

    def converse(self, address: int, selector: int, layer: ClientLayer, timeout: float = 30.0) -> object:
        """One conversation through the gateway station; returns ConversationDone or ExchangeFailed."""
        self.resume()
        start = len(self.events)
        self.station.converse(address, selector, layer)

        def ended() -> bool:
            self._collect()
            return any(isinstance(e, ev.ConversationDone | ev.ExchangeFailed) and e.address == address
                       and e.selector == selector for e in self.events[start:])

        if not self.wait(timeout, ended):
            raise CaseFailed(f"conversation on selector {selector} did not end within {timeout:g} s")
        return next(e for e in self.events[start:] if isinstance(e, ev.ConversationDone | ev.ExchangeFailed)
                    and e.address == address and e.selector == selector)

    # --- raw frames ------------------------------------------------------------------------------------

    def send(self, data: bytes, note: str = "") -> float:
        """Send ``data`` now (the gateway station must be paused); returns the time its last byte is out."""
        now = self.now
        self.raw.queue.append(Transmission(now, bytes(data)))
        self.record.frame(now, "tx", data, note)
        return now + wire_time(len(data))

    def exchange(self, data: bytes, *, src: int | None = None, timeout: float | None = None,
                 note: str = "") -> Received | None:
        """Send a frame and wait for the first answer from the meter (from ``src`` if given)."""
        self.pause()
        n = len(self.raw.received)
        end = self.send(data, note)
        limit = (timeout if timeout is not None else self.timing.reply_timeout) + (end - self.now)

        def answered() -> bool:
            return any(src is None or r.frame.src == src for r in self.raw.received[n:])

        self.wait(limit, answered)
        got = next((r for r in self.raw.received[n:] if src is None or r.frame.src == src), None)
        if got is not None:
            self.record.frame(got.t, "rx", got.raw, str(got.frame))
        return got

    def quiet(self, duration: float) -> list[Received]:
        """Listen (station paused) for ``duration``; returns the frames that arrived."""
        self.pause()
        n = len(self.raw.received)
        self.wait(duration)
        return self.raw.received[n:]
