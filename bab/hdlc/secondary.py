"""The meter's HDLC secondary station in the LMN profile (LMN-STACK.md 3.3-3.7), sans-I/O.

It takes decoded frames with the time their last byte arrived and gives frames to transmit with the time they
are due. Nothing here reads a clock, sleeps or does I/O; :mod:`bab.lmn` moves the bytes.

Address negotiation (3.5, 3.7):

* UNREGISTERED: an address-allocation broadcast (UI to 0x7F, selector 1) that does not list this meter is
  answered with the meter's 32-byte record from a free address of its own choosing (the previous one when it
  is still free, so addresses survive restarts), in a randomly chosen slot -> PENDING.
* PENDING: the next list containing the record under that address -> REGISTERED; a list without it -> answer
  again (new slot; new address if the old one was taken). A unicast frame to the pending address from the
  gateway also confirms the registration (the gateway registers on the reply, not on its next list).
* REGISTERED: a presence check (UI to 0x7F, selector 2) listing the meter is answered in the assigned slot; a
  list naming the meter under another address, or leaving it out, makes it UNREGISTERED.
* An allocation list naming this meter under another address is adopted (BAB's choice where the digest is
  silent: that is the address the gateway will use, and the list guarantees nobody else holds it).

Unicast (3.3, 3.4): SNRM/UA, DISC/UA, DM for a refused or unconnected selector, I frames with N(S)/N(R) checks
and stop-and-wait retransmission, RR/RNR polling with a transmit queue held by the upper layer.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import events as ev
from .frame import (
    BROADCAST_ADDRESS,
    DM,
    GATEWAY_ADDRESS,
    MAX_INFO_LENGTH,
    MAX_METER_ADDRESS,
    MIN_METER_ADDRESS,
    UA,
    UI,
    BroadcastService,
    Frame,
    Kind,
    control_i,
    control_rnr,
    control_rr,
    encode_frame,
)
from .record import ParticipantRecord, RecordError, decode_records
from .timing import MeterTiming, wire_time
from .upper import CloseConnection, ServerLayer


class StationState(enum.Enum):
    UNREGISTERED = "unregistered"
    PENDING = "pending"
    REGISTERED = "registered"


@dataclass(frozen=True, slots=True)
class Transmission:
    """Bytes to put on the line at ``at``.

    A slot reply carries two limits: ``window_end``, the latest start that completes it inside its slot's
    reply window, and ``deadline``, the latest start that still completes it inside its own slot (in the
    guard time, where no other meter's reply can be). Started after ``window_end`` it is sent and counted as
    late (a gateway that reads the whole listen window, like the reference, takes it; a strict one may drop
    it, which costs nothing more than silence would); after ``deadline`` it is not sent at all.
    """

    at: float
    data: bytes
    deadline: float | None = None
    window_end: float | None = None


@dataclass
class StationCounters:
    frames_for_me: int = 0
    broadcasts: int = 0
    slot_replies: int = 0
    slot_missed: int = 0
    slot_late: int = 0  # slot replies sent in their slot's guard time (after the reply window)
    frames_sent: int = 0
    dm_sent: int = 0
    rnr_sent: int = 0
    retransmissions: int = 0
    duplicates: int = 0
    sequence_errors: int = 0
    malformed: int = 0
    layer_errors: int = 0
    layer_closes: int = 0
    ignored: int = 0


@dataclass
class _Connection:
    selector: int
    layer: ServerLayer
    vs: int = 0  # V(S): N(S) of the next new I frame
    vr: int = 0  # V(R): N(S) expected next from the gateway
    unacked: tuple[int, bytes] | None = None  # (N(S), info) of the I frame not yet acknowledged


@dataclass
class _Slot:
    slot: int
    at: float


class MeterStation:
    """One meter (LMN participant) on the bus.

    ``layers(selector)`` returns a fresh upper layer for a connection on that selector, or None to refuse it
    (answered with DM); it is asked at every SNRM, so it can depend on the pairing state.
    """

    def __init__(
        self,
        server_id: bytes,
        layers: Callable[[int], ServerLayer | None],
        timing: MeterTiming | None = None,
        *,
        rng: random.Random | None = None,
        preferred_address: int | None = None,
        siblings: Callable[[], Iterable[MeterStation]] | None = None,
        max_info: int = MAX_INFO_LENGTH,
    ) -> None:
        if len(server_id) > 14:
            raise ValueError("server ID longer than the 14-byte record field")
        self.server_id = server_id
        self.layers = layers
        self.timing = timing or MeterTiming()
        self.rng = rng or random.Random()
        self.siblings = siblings or (lambda: ())
        self.max_info = max_info
        self.state = StationState.UNREGISTERED
        self.address: int | None = preferred_address
        self.counters = StationCounters()
        self.last_request: float | None = None  # time of the last frame addressed to this meter
        self._conn: _Connection | None = None
        self._tx: list[Transmission] = []
        self._events: list[object] = []
        self._pending_slot: _Slot | None = None
        self._last_heard: float | None = None

    # --- outputs ------------------------------------------------------------------------------------------

    def next_events(self) -> list[object]:
        """Events since the last call (h11 style): registration changes, connections, missed slots."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        times = [t.at for t in self._tx]
        if self.timing.inactivity_timeout is not None and self._last_heard is not None \
                and self.state is StationState.REGISTERED:
            times.append(self._last_heard + self.timing.inactivity_timeout)
        return min(times) if times else None

    def transmissions_due(self, now: float) -> list[Transmission]:
        """Frames to send now, in order. Slot replies whose deadline passed are dropped and counted."""
        self._check_inactivity(now)
        due = [t for t in self._tx if t.at <= now]
        if not due:
            return []
        self._tx = [t for t in self._tx if t.at > now]
        out = []
        for t in due:
            if t.deadline is not None and now > t.deadline:
                self.counters.slot_missed += 1
                self._events.append(ev.SlotMissed(now - t.deadline))
                continue
            if t.window_end is not None and now > t.window_end:
                self.counters.slot_late += 1
                self._events.append(ev.SlotLate(now - t.window_end))
            self.counters.frames_sent += 1
            out.append(t)
        return out

    @property
    def connected_selector(self) -> int | None:
        return self._conn.selector if self._conn else None

    # --- input --------------------------------------------------------------------------------------------

    def frame_received(self, frame: Frame, now: float) -> None:
        """Handle one valid frame whose last byte arrived at ``now``."""
        if frame.dst == BROADCAST_ADDRESS:
            if frame.src == GATEWAY_ADDRESS and frame.kind is Kind.UI:
                self._on_broadcast(frame, now)
            return
        if self.address is None or frame.dst != self.address or self.state is StationState.UNREGISTERED:
            return
        if frame.src != GATEWAY_ADDRESS:
            self.counters.ignored += 1
            return
        self.counters.frames_for_me += 1
        self.last_request = now
        self._last_heard = now
        if self.state is StationState.PENDING:
            self._set_registered(self.address)
        self._on_unicast(frame, now)

    def disconnect(self, reason: str) -> None:
        """Drop the current connection (e.g. the pairing state changed); the gateway gets DM on its next frame."""
        self._close(reason)

    # --- broadcasts ---------------------------------------------------------------------------------------

    def _on_broadcast(self, frame: Frame, now: float) -> None:
        self.counters.broadcasts += 1
        if frame.dst_selector not in (BroadcastService.ADDRESS_ALLOCATION, BroadcastService.ADDRESS_CHECK):
            return
        try:
            records = decode_records(frame.info)
        except RecordError:
            self.counters.malformed += 1
            return
        self._last_heard = now
        if frame.dst_selector == BroadcastService.ADDRESS_ALLOCATION:
            self._on_allocation(records, now)
        else:
            self._on_check(records, now)

    def _mine(self, records: list[ParticipantRecord]) -> ParticipantRecord | None:
        for r in records:
            if r.server_id == self.server_id[:10]:
                return r
        return None

    def _on_allocation(self, records: list[ParticipantRecord], t_end: float) -> None:
        mine = self._mine(records)
        if mine is not None and MIN_METER_ADDRESS <= mine.address <= MAX_METER_ADDRESS:
            if mine.address != self.address or self.state is not StationState.REGISTERED:
                self._set_registered(mine.address)
            return
        if self.state is StationState.REGISTERED:
            self._set_unregistered("not in the gateway's allocation list")
        taken = {r.address for r in records} | self._sibling_addresses()
        if self.address is None or self.address in taken or not \
                MIN_METER_ADDRESS <= self.address <= MAX_METER_ADDRESS:
            free = [a for a in range(MIN_METER_ADDRESS, MAX_METER_ADDRESS + 1) if a not in taken]
            if not free:
                self.counters.malformed += 1
                return
            self.address = self.rng.choice(free)
        used_slots = self._sibling_slots(t_end)
        slots = [s for s in range(self.timing.slots.slot_count) if s not in used_slots] or \
            list(range(self.timing.slots.slot_count))
        slot = self.rng.choice(slots)
        record = ParticipantRecord.for_meter(self.address, slot, self.server_id)
        self._schedule_slot_reply(BroadcastService.ADDRESS_ALLOCATION, record, t_end)
        self.state = StationState.PENDING
        self._events.append(ev.AddressChosen(self.address, slot))

    def _on_check(self, records: list[ParticipantRecord], t_end: float) -> None:
        mine = self._mine(records)
        if self.state is StationState.UNREGISTERED:
            return
        if mine is None:
            if self.state is StationState.REGISTERED:
                self._set_unregistered("not in the gateway's presence check")
            return
        if mine.address != self.address:
            self._set_unregistered(f"presence check lists this meter under address {mine.address:#04x}")
            return
        if not 1 <= mine.slot <= 63:
            self.counters.malformed += 1
            return
        if self.state is StationState.PENDING:
            self._set_registered(self.address)
        record = ParticipantRecord.for_meter(self.address, mine.slot, self.server_id)
        last = mine.slot >= max(r.slot for r in records)  # no reply follows: the spare slot is free for it
        self._schedule_slot_reply(BroadcastService.ADDRESS_CHECK, record, t_end, last=last)

    def _schedule_slot_reply(self, service: int, record: ParticipantRecord, t_end: float, *,
                             last: bool = False) -> None:
        """Queue the reply in ``record.slot``. It may run into the guard time of its slot; a reply in the
        last listed slot of a presence check may also run into the spare slot that ends the gateway's listen
        window (``SlotTiming.listen_window``), where no other meter answers."""
        assert self.address is not None
        data = encode_frame(GATEWAY_ADDRESS, service, self.address, service, UI, record.encode())
        slots = self.timing.slots
        begin = t_end + record.slot * slots.slot_period
        at = begin + slots.reply_offset
        self._tx = [t for t in self._tx if t.deadline is None]  # a newer broadcast supersedes a pending reply
        airtime = wire_time(len(data))
        end = begin + slots.slot_period + (slots.reply_window if last else 0.0)
        self._tx.append(Transmission(at, data, deadline=end - airtime, window_end=begin + slots.reply_window - airtime))
        self._pending_slot = _Slot(record.slot, t_end)
        self.counters.slot_replies += 1

    def _sibling_addresses(self) -> set[int]:
        return {s.address for s in self.siblings() if s is not self and s.address is not None}

    def _sibling_slots(self, t_end: float) -> set[int]:
        return {s._pending_slot.slot for s in self.siblings()
                if s is not self and s._pending_slot is not None and s._pending_slot.at == t_end}

    def _set_registered(self, address: int) -> None:
        changed = address != self.address or self.state is not StationState.REGISTERED
        if address != self.address:
            self._close("address changed")
        self.address = address
        self.state = StationState.REGISTERED
        if changed:
            self._events.append(ev.Registered(address))

    def _set_unregistered(self, reason: str) -> None:
        self._close(reason)
        self.state = StationState.UNREGISTERED
        self._events.append(ev.Unregistered(reason))

    def _check_inactivity(self, now: float) -> None:
        t = self.timing.inactivity_timeout
        if t is not None and self.state is StationState.REGISTERED and self._last_heard is not None \
                and now - self._last_heard >= t:
            self._set_unregistered(f"no frame from the gateway for {t:g} s")

    # --- unicast ------------------------------------------------------------------------------------------

    def _reply(self, selector: int, control: int, info: bytes, now: float) -> None:
        assert self.address is not None
        data = encode_frame(GATEWAY_ADDRESS, selector, self.address, selector, control, info)
        self._tx.append(Transmission(now + self.timing.turnaround, data))

    def _on_unicast(self, frame: Frame, now: float) -> None:
        sel = frame.dst_selector
        kind = frame.kind
        conn = self._conn
        if kind is Kind.SNRM:
            layer = self._new_layer(sel)
            if layer is None:
                self.counters.dm_sent += 1
                self._events.append(ev.Refused(sel))
                self._reply(sel, DM, b"", now)
                return
            self._close("new SNRM")
            self._conn = _Connection(sel, layer)
            self._events.append(ev.Connected(sel))
            self._reply(sel, UA, b"", now)
            return
        if kind is Kind.DISC:
            if conn is not None and conn.selector == sel:
                self._close("DISC from the gateway")
                self._reply(sel, UA, b"", now)
            else:
                self.counters.dm_sent += 1
                self._reply(sel, DM, b"", now)
            return
        if kind in (Kind.I, Kind.RR, Kind.RNR):
            if conn is None or conn.selector != sel:
                self.counters.dm_sent += 1
                self._events.append(ev.Refused(sel))
                self._reply(sel, DM, b"", now)
                return
            retransmit = self._acknowledge(conn, frame.nr)
            if kind is Kind.I:
                if frame.ns == conn.vr:
                    conn.vr = (conn.vr + 1) & 7
                    ok, _ = self._call_layer(lambda: conn.layer.data_received(frame.info))
                    if not ok:
                        self._reply(sel, DM, b"", now)
                        return
                else:
                    self.counters.duplicates += 1  # the gateway lost our answer and sent again
            self._respond(conn, retransmit, gateway_busy=kind is Kind.RNR, now=now)
            return
        self.counters.ignored += 1  # UI, UA, DM, FRMR addressed to a meter: nothing to answer

    def _acknowledge(self, conn: _Connection, nr: int) -> bool:
        """Process the gateway's N(R); True if our unacknowledged I frame must be sent again."""
        if conn.unacked is not None:
            ns, _ = conn.unacked
            if nr == (ns + 1) & 7:
                conn.unacked = None
                return False
            if nr == ns:
                return True
            self.counters.sequence_errors += 1
            return True
        if nr != conn.vs:
            self.counters.sequence_errors += 1
        return False

    def _respond(self, conn: _Connection, retransmit: bool, gateway_busy: bool, now: float) -> None:
        if conn.unacked is not None and retransmit:
            ns, info = conn.unacked
            self.counters.retransmissions += 1
            self._reply(conn.selector, control_i(ns, conn.vr), info, now)
            return
        if not gateway_busy and conn.unacked is None:
            ok, chunk = self._call_layer(lambda: conn.layer.data_to_send(self.max_info))
            if not ok:
                self._reply(conn.selector, DM, b"", now)
                return
            if chunk:
                if len(chunk) > self.max_info:
                    chunk = chunk[: self.max_info]
                conn.unacked = (conn.vs, bytes(chunk))
                self._reply(conn.selector, control_i(conn.vs, conn.vr), bytes(chunk), now)
                conn.vs = (conn.vs + 1) & 7
                return
        ok, busy = self._call_layer(conn.layer.is_busy)
        if not ok:
            self._reply(conn.selector, DM, b"", now)
        elif busy:
            self.counters.rnr_sent += 1
            self._reply(conn.selector, control_rnr(conn.vr), b"", now)
        else:
            self._reply(conn.selector, control_rr(conn.vr), b"", now)

    def _call_layer(self, call: Callable[[], object]) -> tuple[bool, object]:
        """Run an upper-layer call; an exception there (or a :class:`CloseConnection` request) closes the
        connection instead of escaping, and the caller answers DM."""
        try:
            return True, call()
        except CloseConnection as exc:
            self.counters.layer_closes += 1
            self.counters.dm_sent += 1
            self._close(exc.reason)
            return False, None
        except Exception as exc:  # the link must survive a broken upper layer
            self.counters.layer_errors += 1
            self._close(f"upper layer error: {type(exc).__name__}: {exc}")
            return False, None

    def _new_layer(self, selector: int) -> ServerLayer | None:
        try:
            return self.layers(selector)
        except Exception:
            self.counters.layer_errors += 1
            return None

    def _close(self, reason: str) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._events.append(ev.Disconnected(conn.selector, reason))
        try:
            conn.layer.connection_lost()
        except Exception:
            self.counters.layer_errors += 1


__all__ = ["MeterStation", "StationState", "Transmission", "StationCounters"]
