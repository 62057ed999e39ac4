"""Faults at the HDLC station's boundaries: the frames it sends, and the upper layer it gets per selector.

:class:`FaultyStation` stands in for a :class:`~bab.hdlc.secondary.MeterStation` in the
:class:`~bab.lmn.node.LinkNode` (same endpoint interface). It passes every received frame to the station and
alters, delays or drops what the station wants to send (LMN-STACK.md 3.1-3.5: the frame format, the slot
grid, the allocation procedure, N(S)/N(R)). The station itself is not changed and does not know.

:func:`faulty_layers` wraps the station's ``layers(selector)`` factory: it refuses a connection (``dm``) and
wraps each upper layer so that it reports itself busy (``rnr``), and TLS and SYM layers in their own fault
wrappers (:mod:`bab.sim.tls`, :mod:`bab.sim.sym`).
"""

from __future__ import annotations

from collections.abc import Callable

from bab.hdlc.frame import (
    BROADCAST_ADDRESS,
    GATEWAY_ADDRESS,
    UI,
    BroadcastService,
    Frame,
    FrameError,
    Kind,
    Selector,
    control_i,
    decode_frame,
    encode_frame,
    kind_of,
)
from bab.hdlc.record import ParticipantRecord, RecordError, decode_records
from bab.hdlc.secondary import MeterStation, Transmission
from bab.hdlc.upper import ServerLayer

from .catalogue import FRAMES, LINK, SYM, TLS
from .faults import FaultSet


class FaultyStation:
    """A meter station whose sent frames pass through the meter's HDLC faults (see the module docstring)."""

    def __init__(self, station: MeterStation, faults: FaultSet) -> None:
        self.station = station
        self.faults = faults
        self._held: list[Transmission] = []  # delayed frames (late_replies, wrong_slot)
        self._taken: list[int] = []  # addresses of the last allocation list (address_collision)

    # --- endpoint interface (bab.lmn.node.Endpoint) -------------------------------------------------------

    def frame_received(self, frame: Frame, now: float) -> None:
        if FRAMES in self.faults.on and frame.dst == BROADCAST_ADDRESS and frame.kind is Kind.UI \
                and frame.dst_selector == BroadcastService.ADDRESS_ALLOCATION:
            try:
                self._taken = [r.address for r in decode_records(frame.info)]
            except RecordError:
                self._taken = []
        self.station.frame_received(frame, now)

    def next_deadline(self) -> float | None:
        d = self.station.next_deadline()
        if self._held:
            h = min(t.at for t in self._held)
            return h if d is None or h < d else d
        return d

    def transmissions_due(self, now: float) -> list[Transmission]:
        out = self.station.transmissions_due(now)
        if out and FRAMES in self.faults.on:
            out = self._inject(out)
        if self._held:
            due = [t for t in self._held if t.at <= now]
            if due:
                self._held = [t for t in self._held if t.at > now]
                out = sorted(out + due, key=lambda t: t.at)
        return out

    # --- injection ----------------------------------------------------------------------------------------

    def _inject(self, txs: list[Transmission]) -> list[Transmission]:
        f = self.faults
        out: list[Transmission] = []
        for tx in txs:
            data = tx.data
            slot_reply = tx.deadline is not None
            what = _describe(data)
            if f.fire("silent", what) or f.fire("drop_replies", what):
                continue
            if slot_reply and data[4] >> 1 == BroadcastService.ADDRESS_ALLOCATION:
                data = self._collide(data, what)
            if kind_of(data[7]) is Kind.I and f.get("sequence_error") and f.fire("sequence_error", what):
                data = _with_control(data, control_i(((data[7] >> 1) + 1) & 7, data[7] >> 5))
            if len(data) > 11 and f.fire("bad_hcs", what):
                data = data[:8] + bytes((data[8] ^ 0x01,)) + data[9:]
            if f.fire("bad_fcs", what):
                data = data[:-3] + bytes((data[-3] ^ 0x01,)) + data[-2:]
            delay = 0.0
            if slot_reply and (ws := f.fire("wrong_slot", what)) is not None:
                delay += ws.params["slots"] * self.station.timing.slots.slot_period
            if (late := f.fire("late_replies", what)) is not None:
                delay += late.params["ms"] / 1000.0
            if delay:
                self._held.append(Transmission(tx.at + delay, data))
                continue
            out.append(tx if data is tx.data else Transmission(tx.at, data, tx.deadline))
        return out

    def _collide(self, data: bytes, what: str) -> bytes:
        """An allocation reply re-addressed to an address the gateway's list holds (if it holds one)."""
        own = data[5] >> 1
        taken = [a for a in self._taken if a != own]
        if not taken or not self.faults.get("address_collision"):
            return data
        if not self.faults.fire("address_collision", f"{what}: offering address {taken[0]:#04x}"):
            return data
        try:
            frame = decode_frame(data)
            (record,) = decode_records(frame.info)
        except (FrameError, RecordError, ValueError):
            return data
        record = ParticipantRecord.for_meter(taken[0], record.slot, self.station.server_id)
        service = BroadcastService.ADDRESS_ALLOCATION
        return encode_frame(GATEWAY_ADDRESS, service, taken[0], service, UI, record.encode())


def _describe(data: bytes) -> str:
    kind = kind_of(data[7]).value if len(data) > 8 else "?"
    return f"{kind} frame on selector {data[4] >> 1}" if len(data) > 8 else "frame"


def _with_control(data: bytes, control: int) -> bytes:
    try:
        frame = decode_frame(data)
    except FrameError:
        return data
    return encode_frame(frame.dst, frame.dst_selector, frame.src, frame.src_selector, control, frame.info)


class BusyLayer:
    """An upper layer that reports itself busy while the ``rnr`` fault lasts (the station answers RNR)."""

    def __init__(self, inner: ServerLayer, faults: FaultSet) -> None:
        self.inner = inner
        self.faults = faults

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def data_to_send(self, max_size: int) -> bytes:
        if LINK in self.faults.on and self.faults.get("rnr") is not None:
            return b""
        return self.inner.data_to_send(max_size)

    def is_busy(self) -> bool:
        if LINK in self.faults.on and self.faults.get("rnr") is not None \
                and self.faults.fire("rnr", "poll answered RNR"):
            return True
        return self.inner.is_busy()

    def connection_lost(self) -> None:
        self.inner.connection_lost()


def faulty_layers(layers: Callable[[int], ServerLayer | None], faults: FaultSet,
                  server_id: bytes = b"") -> Callable[[int], ServerLayer | None]:
    """The station's layer factory with the meter's link, TLS and SYM faults (see the module docstring)."""
    from .sym import SymFaults
    from .tls import TlsFaults

    def factory(selector: int) -> ServerLayer | None:
        if LINK in faults.on:
            dm = faults.get("dm")
            if dm is not None and dm.params["selector"] in (None, selector) \
                    and faults.fire("dm", f"SNRM on selector {selector} refused"):
                return None
        layer = layers(selector)
        if layer is None:
            return None
        if selector == Selector.TLS_SML_COSEM:
            layer = TlsFaults(layer, faults)
        elif selector == Selector.SYM_HDLC:
            layer = SymFaults(layer, faults)
        return BusyLayer(layer, faults)

    return factory


__all__ = ["BusyLayer", "FaultyStation", "faulty_layers", "FRAMES", "LINK", "SYM", "TLS"]
