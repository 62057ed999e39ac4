"""The gateway's HDLC primary station in the LMN profile (LMN-STACK.md 3.3-3.5), sans-I/O.

This is the LMN master of BAB's software gateway: it broadcasts address allocations (faster while no meter is
known or right after a new one registered), keeps a registry of participants, runs presence checks that drop
silent meters, and carries unicast *conversations*: SNRM on a selector, I/RR exchanges driven by a
:class:`~bab.hdlc.upper.ClientLayer`, DISC; with reply timeouts, retransmissions and RNR back-off.

The bus is half duplex and the primary owns it: at any time at most one exchange is in flight (a broadcast
listen window or one unicast frame awaiting its answer). Conversations with several meters are interleaved
step by step, round robin, and broadcasts go in between steps.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from . import events as ev
from .frame import (
    BROADCAST_ADDRESS,
    DISC,
    GATEWAY_ADDRESS,
    MAX_INFO_LENGTH,
    MAX_METER_ADDRESS,
    MIN_METER_ADDRESS,
    SNRM,
    UI,
    BroadcastService,
    Frame,
    Kind,
    control_i,
    control_rr,
    encode_frame,
)
from .record import ParticipantRecord, RecordError, decode_records, encode_records
from .secondary import Transmission
from .timing import GatewayTiming, wire_time
from .upper import ClientLayer


@dataclass
class Participant:
    """A meter the gateway knows."""

    address: int
    record: ParticipantRecord
    registered_at: float
    last_seen: float
    missed_checks: int = 0

    @property
    def server_id(self) -> bytes:
        return self.record.server_id


class _Phase(enum.Enum):
    CONNECT = "connect"
    OPEN = "open"
    DISCONNECT = "disconnect"


@dataclass
class _Conversation:
    address: int
    selector: int
    layer: ClientLayer
    deadline: float  # the whole conversation must finish by then
    phase: _Phase = _Phase.CONNECT
    vs: int = 0
    vr: int = 0
    unacked: tuple[int, bytes] | None = None
    last_frame: bytes = b""  # what to send again after a timeout
    retries: int = 0
    rnr_count: int = 0
    not_before: float = 0.0


@dataclass
class GatewayCounters:
    broadcasts: int = 0
    checks: int = 0
    registrations: int = 0
    dropped: int = 0
    address_conflicts: int = 0
    timeouts: int = 0
    retransmissions: int = 0
    conversations_ok: int = 0
    conversations_failed: int = 0
    unexpected: int = 0
    out_of_sequence: int = 0  # I frames from a meter whose N(S) was not the expected one (discarded)
    rnr_received: int = 0  # polls a meter answered busy (RNR)


@dataclass
class _Wait:
    """The exchange in flight."""

    until: float
    service: int | None = None  # broadcast service while listening
    conv: _Conversation | None = None
    confirmed: set[int] = field(default_factory=set)


class GatewayStation:
    """The LMN master. Feed frames with :meth:`frame_received`; send what :meth:`transmissions_due` returns."""

    def __init__(self, timing: GatewayTiming | None = None, *, max_info: int = MAX_INFO_LENGTH,
                 conversation_timeout: float = 30.0, idle_poll: float = 0.002) -> None:
        self.timing = timing or GatewayTiming()
        self.max_info = max_info
        self.conversation_timeout = conversation_timeout
        self.idle_poll = idle_poll  # pause before polling again after a meter said RR with nothing to send
        self.participants: dict[int, Participant] = {}
        self.counters = GatewayCounters()
        self._events: list[object] = []
        self._queue: dict[int, deque[tuple[int, ClientLayer]]] = {}
        self._active: dict[int, _Conversation] = {}
        self._rr_order: deque[int] = deque()
        self._wait: _Wait | None = None
        self._next_alloc: float | None = None
        self._next_check: float | None = None
        self._fast_alloc = False

    # --- control ------------------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin broadcasting at ``now``."""
        self._next_alloc = now
        self._next_check = now + self.timing.check_period

    def converse(self, address: int, selector: int, layer: ClientLayer) -> None:
        """Queue a conversation with the participant at ``address`` on ``selector``."""
        self._queue.setdefault(address, deque()).append((selector, layer))
        if address not in self._rr_order:
            self._rr_order.append(address)

    def busy_with(self, address: int) -> bool:
        """True while a conversation with ``address`` is active or queued."""
        return address in self._active or bool(self._queue.get(address))

    @property
    def idle(self) -> bool:
        """True when no exchange is in flight and no conversation is active or queued (a tester may then use
        the bus for frames of its own)."""
        return self._wait is None and not self._active and not any(self._queue.values())

    def next_events(self) -> list[object]:
        out, self._events = self._events, []
        return out

    # --- timers and output --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self._wait is not None:
            return self._wait.until
        times = [t for t in (self._next_alloc, self._next_check) if t is not None]
        if self._next_check is not None and not self.participants:
            times.remove(self._next_check)
        for addr in self._rr_order:
            conv = self._active.get(addr)
            if conv is not None:
                times.append(conv.not_before)
            elif self._queue.get(addr):
                times.append(float("-inf"))  # a conversation waits to start: due at once
        return min(times) if times else None

    def transmissions_due(self, now: float) -> list[Transmission]:
        if self._wait is not None:
            if now < self._wait.until:
                return []
            self._expire(now)
        if self._next_alloc is not None and now >= self._next_alloc:
            return [self._broadcast(BroadcastService.ADDRESS_ALLOCATION, now)]
        if self._next_check is not None and now >= self._next_check:
            if self.participants:
                return [self._broadcast(BroadcastService.ADDRESS_CHECK, now)]
            self._next_check = now + self.timing.check_period
        frame = self._step_conversations(now)
        return [frame] if frame is not None else []

    # --- broadcasts ---------------------------------------------------------------------------------------

    def _broadcast(self, service: BroadcastService, now: float) -> Transmission:
        slots = self.timing.slots
        if service is BroadcastService.ADDRESS_ALLOCATION:
            records = [p.record.with_slot(0) for p in self.participants.values()]
            listen = slots.listen_window()
            self.counters.broadcasts += 1
            self._fast_alloc = False
        else:
            ordered = sorted(self.participants.values(), key=lambda p: p.address)[:63]
            records = [p.record.with_slot(i + 1) for i, p in enumerate(ordered)]
            listen = (len(records) + 1) * slots.slot_period + slots.reply_window
            self.counters.checks += 1
            self._next_check = now + self.timing.check_period
        data = encode_frame(BROADCAST_ADDRESS, service, GATEWAY_ADDRESS, service, UI, encode_records(records))
        self._wait = _Wait(until=now + wire_time(len(data)) + listen, service=service)
        return Transmission(now, data)

    def _on_slot_reply(self, frame: Frame, now: float) -> None:
        wait = self._wait
        assert wait is not None
        try:
            (record,) = decode_records(frame.info)
        except (RecordError, ValueError):
            self.counters.unexpected += 1
            return
        if record.address != frame.src or not MIN_METER_ADDRESS <= frame.src <= MAX_METER_ADDRESS:
            self.counters.unexpected += 1
            return
        if wait.service == BroadcastService.ADDRESS_CHECK:
            p = self.participants.get(frame.src)
            if p is not None and p.server_id == record.server_id:
                wait.confirmed.add(frame.src)
                p.last_seen = now
            return
        holder = self.participants.get(frame.src)
        if holder is not None:
            if holder.server_id != record.server_id:
                self.counters.address_conflicts += 1  # address taken: the meter will see it and pick another
            else:
                holder.last_seen = now
            return
        for old in list(self.participants.values()):
            if old.server_id == record.server_id:
                del self.participants[old.address]
                self._abort(old.address, "participant moved to another address")
                self.participants[frame.src] = Participant(frame.src, record.with_slot(0), now, now)
                self._events.append(ev.ParticipantMoved(record.server_id, old.address, frame.src))
                self._fast_alloc = True
                return
        self.participants[frame.src] = Participant(frame.src, record.with_slot(0), now, now)
        self.counters.registrations += 1
        self._fast_alloc = True
        self._events.append(ev.ParticipantRegistered(frame.src, record.server_id))

    def _end_listen(self, wait: _Wait, now: float) -> None:
        if wait.service == BroadcastService.ADDRESS_ALLOCATION:
            period = self.timing.broadcast_period
            if not self.participants or self._fast_alloc:
                period = self.timing.broadcast_period_empty
            self._next_alloc = now + period
            return
        for addr, p in list(self.participants.items()):
            if addr in wait.confirmed:
                p.missed_checks = 0
                continue
            p.missed_checks += 1
            if p.missed_checks >= self.timing.missed_checks:
                self._drop(addr, "silent in the presence check")

    def _drop(self, address: int, reason: str) -> None:
        p = self.participants.pop(address, None)
        if p is None:
            return
        self.counters.dropped += 1
        self._abort(address, reason)
        for selector, layer in self._queue.pop(address, ()):  # queued conversations end too, never silently
            self.counters.conversations_failed += 1
            self._safe_lost(layer, reason)
            self._events.append(ev.ExchangeFailed(address, selector, reason))
        self._events.append(ev.ParticipantDropped(address, p.server_id, reason))

    # --- unicast conversations ----------------------------------------------------------------------------

    def _step_conversations(self, now: float) -> Transmission | None:
        for _ in range(len(self._rr_order)):
            addr = self._rr_order[0]
            self._rr_order.rotate(-1)
            conv = self._active.get(addr)
            if conv is None:
                queue = self._queue.get(addr)
                if not queue:
                    self._rr_order.remove(addr)
                    self._queue.pop(addr, None)
                    continue
                if addr not in self.participants:
                    selector, layer = queue.popleft()
                    self._safe_lost(layer, "no such participant")
                    self._events.append(ev.ExchangeFailed(addr, selector, "no such participant"))
                    continue
                selector, layer = queue.popleft()
                conv = _Conversation(addr, selector, layer, now + self.conversation_timeout)
                self._active[addr] = conv
            if now < conv.not_before:
                continue
            if now > conv.deadline:
                self._fail(conv, "conversation timed out")
                continue
            data = self._next_frame(conv)
            if data is None:
                continue
            conv.last_frame = data
            self._wait = _Wait(until=now + wire_time(len(data)) + self.timing.reply_timeout, conv=conv)
            return Transmission(now, data)
        return None

    def _next_frame(self, conv: _Conversation) -> bytes | None:
        a, s = conv.address, conv.selector
        if conv.phase is _Phase.CONNECT:
            return encode_frame(a, s, GATEWAY_ADDRESS, s, SNRM)
        if conv.phase is _Phase.DISCONNECT:
            return encode_frame(a, s, GATEWAY_ADDRESS, s, DISC)
        try:
            if conv.unacked is None and conv.layer.is_done():
                conv.phase = _Phase.DISCONNECT
                return encode_frame(a, s, GATEWAY_ADDRESS, s, DISC)
            if conv.unacked is not None:
                ns, info = conv.unacked
                return encode_frame(a, s, GATEWAY_ADDRESS, s, control_i(ns, conv.vr), info)
            chunk = conv.layer.data_to_send(self.max_info)
        except Exception as exc:  # a broken client layer ends its conversation, not the gateway
            self._fail(conv, f"client layer error: {type(exc).__name__}: {exc}")
            return None
        if chunk:
            conv.unacked = (conv.vs, bytes(chunk[: self.max_info]))
            frame = encode_frame(a, s, GATEWAY_ADDRESS, s, control_i(conv.vs, conv.vr), conv.unacked[1])
            conv.vs = (conv.vs + 1) & 7
            return frame
        return encode_frame(a, s, GATEWAY_ADDRESS, s, control_rr(conv.vr))

    def _on_answer(self, conv: _Conversation, frame: Frame, now: float) -> None:
        kind = frame.kind
        self._wait = None
        conv.retries = 0
        if kind is Kind.DM:
            if conv.phase is _Phase.DISCONNECT:
                self._finish(conv)
            else:
                self._fail(conv, "refused (DM)")
            return
        if conv.phase is _Phase.CONNECT:
            if kind is Kind.UA:
                conv.phase = _Phase.OPEN
                conv.vs = conv.vr = 0
            else:
                self.counters.unexpected += 1
            return
        if conv.phase is _Phase.DISCONNECT:
            if kind is Kind.UA:
                self._finish(conv)
            else:
                self.counters.unexpected += 1
            return
        if kind not in (Kind.I, Kind.RR, Kind.RNR):
            self.counters.unexpected += 1
            return
        if conv.unacked is not None:
            ns, _ = conv.unacked
            if frame.nr == (ns + 1) & 7:
                conv.unacked = None
            else:
                self.counters.retransmissions += 1
        if kind is Kind.RNR:
            self.counters.rnr_received += 1
            conv.rnr_count += 1
            if conv.rnr_count % 100 == 0:
                conv.not_before = now + self.timing.rnr_backoff
            return
        conv.rnr_count = 0
        if kind is Kind.I:
            if frame.ns == conv.vr:
                conv.vr = (conv.vr + 1) & 7
                try:
                    conv.layer.data_received(frame.info)
                except Exception as exc:
                    self._fail(conv, f"client layer error: {type(exc).__name__}: {exc}")
            else:
                self.counters.out_of_sequence += 1  # our next poll carries the old N(R): the meter resends
            return
        if conv.unacked is None:
            conv.not_before = now + self.idle_poll  # RR, nothing to send: do not spin on the bus

    def _expire(self, now: float) -> None:
        wait, self._wait = self._wait, None
        assert wait is not None
        if wait.conv is None:
            self._end_listen(wait, now)
            return
        conv = wait.conv
        self.counters.timeouts += 1
        conv.retries += 1
        if conv.retries > self.timing.retries:
            self._fail(conv, f"no answer after {self.timing.retries} retries")
            return
        self.counters.retransmissions += 1
        conv.not_before = now
        if conv.phase is _Phase.OPEN and conv.unacked is None:
            # Our RR (or the answer to it) was lost: poll again. An unacked I frame is resent by _next_frame.
            return

    def _finish(self, conv: _Conversation) -> None:
        self._active.pop(conv.address, None)
        self.counters.conversations_ok += 1
        self._safe_lost(conv.layer, None)
        self._events.append(ev.ConversationDone(conv.address, conv.selector))

    def _fail(self, conv: _Conversation, reason: str) -> None:
        self._active.pop(conv.address, None)
        if self._wait is not None and self._wait.conv is conv:
            self._wait = None
        self.counters.conversations_failed += 1
        self._safe_lost(conv.layer, reason)
        self._events.append(ev.ExchangeFailed(conv.address, conv.selector, reason))

    def _abort(self, address: int, reason: str) -> None:
        conv = self._active.get(address)
        if conv is not None:
            self._fail(conv, reason)

    def _safe_lost(self, layer: ClientLayer, reason: str | None) -> None:
        try:
            layer.connection_lost(reason)
        except Exception:
            self.counters.unexpected += 1

    # --- input --------------------------------------------------------------------------------------------

    def frame_received(self, frame: Frame, now: float) -> None:
        if frame.dst != GATEWAY_ADDRESS or frame.src in (GATEWAY_ADDRESS, BROADCAST_ADDRESS):
            return  # our own echo, or traffic between others
        wait = self._wait
        if wait is None or now > wait.until:
            self.counters.unexpected += 1
            return
        if wait.service is not None:
            if frame.kind is Kind.UI and frame.dst_selector == wait.service:
                self._on_slot_reply(frame, now)
            else:
                self.counters.unexpected += 1
            return
        conv = wait.conv
        assert conv is not None
        if frame.src != conv.address or frame.dst_selector != conv.selector:
            self.counters.unexpected += 1
            return
        if conv.address in self.participants:
            self.participants[conv.address].last_seen = now
        self._on_answer(conv, frame, now)
