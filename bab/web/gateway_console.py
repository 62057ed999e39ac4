"""What the web console shows of the software gateway and what it lets a user do there.

:class:`GatewayConsole` sits between the link node and :class:`~bab.gateway.app.SoftwareGateway` as the
node's endpoint: it passes every frame and transmission through unchanged and notes their times, so it can
measure what the protocol core does not keep:

* the *slot offset* of every broadcast reply: when the reply was complete, counted from the start of its slot
  (``t_end + slot * slot_period``, LMN-STACK.md 3.5), against the window ``reply_offset .. reply_offset +
  reply_window``;
* the *reply latency* of unicast exchanges: from the end of the gateway's frame to the end of the answer;
* presence-check results per participant (answered in its slot or missed).

It also takes the gateway's own event points: station events (``SoftwareGateway(on_event=...)``), read results
and pairing / crypto-reset outcomes (``secure_reader(on_result=..., on_outcome=...)``), and publishes all of it
on an :class:`~bab.web.events.EventHub`. Actions (read now over plain SML or TLS, pair with a master key,
crypto-reset) queue conversations on the station and wait for their end; the master key goes into the SYM
layer and nowhere else (never stored here, returned, published or logged).
Runs on the event loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bab.cosem.base_meter import CRYPTO_RESET, ENERGY_IMPORT, MEDIUM_MAIN
from bab.cosem.objects import CosemClass, ObjectName
from bab.gateway.app import PollJob, SoftwareGateway, describe
from bab.gateway.sml_reader import format_octets
from bab.hdlc import events as ev
from bab.hdlc.frame import BROADCAST_ADDRESS, BroadcastService, Frame, FrameError, Kind, Selector, decode_frame
from bab.hdlc.record import RecordError, decode_records
from bab.hdlc.secondary import Transmission
from bab.hdlc.timing import wire_time
from bab.obis import Obis
from bab.sml.client import ObjectRequest, SmlClient, SmlResult, objects_for
from bab.status import reading_entry

from .events import EventHub

SAMPLES = 300  # diagnostics samples kept per meter
MAX_DROPPED = 64  # views of dropped meters kept (registered ones are bounded by the 125 LMN addresses)
READ_TIMEOUT = 60.0
_MAIN_REGISTERS = frozenset((ENERGY_IMPORT, *MEDIUM_MAIN))


class ConsoleError(Exception):
    """An action that cannot be done; ``status`` is the HTTP status the API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class MeterView:
    """Everything the console knows of one meter (by server ID, so it survives a move)."""

    server_id: bytes
    address: int | None
    registered_at: float  # wall clock
    state: str = "registered"  # "registered" | "dropped"
    drop_reason: str | None = None
    last_seen: float | None = None
    last_read: float | None = None
    last_channel: str | None = None
    tls_up: bool = False
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)
    identification: dict[str, str] = field(default_factory=dict)
    attentions: list[str] = field(default_factory=list)
    last_error: str | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("reads_ok", "reads_failed", "link_errors", "presence_ok", "presence_missed", "attentions",
         "late_slot_replies"), 0))
    latency: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    slots: deque[tuple[float, float, int, str]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    energy: deque[tuple[float, float, str]] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    profile: Any = None  # the last ProfileResult read (bab.web.profile_reader)
    profile_read_at: float | None = None

    @property
    def meter_id(self) -> str:
        return describe(self.server_id)


@dataclass
class _Broadcast:
    service: int
    t_end: float
    until: float
    expected: dict[int, int]  # address -> slot (presence check)
    answered: set[int] = field(default_factory=set)


class GatewayConsole:
    """The software gateway as the web console sees it (see the module docstring)."""

    def __init__(self, *, security: Any = None, hub: EventHub | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.security = security
        self.hub = hub or EventHub()
        self.clock = clock  # wall clock for what the page shows
        self.gateway: SoftwareGateway | None = None
        self.meters: dict[bytes, MeterView] = {}
        self.poke: Callable[[], None] = lambda: None  # the runner's poke, set by the owner
        self.receiver_counters: Any = None  # the link node's FrameReceiver counters, set by the owner
        self._broadcast: _Broadcast | None = None
        self._unicast: dict[int, float] = {}  # address -> end of our last frame to it
        self._now = 0.0  # the link's time of the last step

    def attach(self, gateway: SoftwareGateway) -> None:
        self.gateway = gateway

    # --- endpoint (bab.lmn.node.Endpoint): pass through, note times ------------------------------------

    def frame_received(self, frame: Frame, now: float) -> None:
        self._now = now
        assert self.gateway is not None
        self.gateway.frame_received(frame, now)  # first: a registration creates the view the timing goes to
        self._observe_rx(frame, now)

    def next_deadline(self) -> float | None:
        assert self.gateway is not None
        return self.gateway.next_deadline()

    def transmissions_due(self, now: float) -> list[Transmission]:
        self._now = now
        b = self._broadcast
        if b is not None and now >= b.until:
            self._end_broadcast(b)
        assert self.gateway is not None
        out = self.gateway.transmissions_due(now)
        for tx in out:
            self._observe_tx(tx)
        return out

    def _observe_tx(self, tx: Transmission) -> None:
        try:
            frame = decode_frame(tx.data)
        except FrameError:
            return
        t_end = tx.at + wire_time(len(tx.data))
        if frame.dst == BROADCAST_ADDRESS:
            if self._broadcast is not None:
                self._end_broadcast(self._broadcast)
            slots = self.gateway.station.timing.slots if self.gateway else None
            if slots is None:
                return
            expected: dict[int, int] = {}
            if frame.dst_selector == BroadcastService.ADDRESS_CHECK:
                try:
                    expected = {r.address: r.slot for r in decode_records(frame.info)}
                except RecordError:
                    expected = {}
                listen = (len(expected) + 1) * slots.slot_period + slots.reply_window
            else:
                listen = slots.listen_window()
            self._broadcast = _Broadcast(frame.dst_selector, t_end, t_end + listen, expected)
        else:
            self._unicast[frame.dst] = t_end

    def _observe_rx(self, frame: Frame, now: float) -> None:
        b = self._broadcast
        if b is not None and frame.kind is Kind.UI and frame.dst_selector == b.service and now <= b.until:
            try:
                (record,) = decode_records(frame.info)
            except (RecordError, ValueError):
                return
            slot = b.expected.get(frame.src, record.slot) if b.expected else record.slot
            slots = self.gateway.station.timing.slots if self.gateway else None
            if slots is None:
                return
            offset_ms = (now - (b.t_end + slot * slots.slot_period)) * 1000
            kind = "check" if b.service == BroadcastService.ADDRESS_CHECK else "allocation"
            view = self.meters.get(record.server_id)
            if view is not None:
                view.slots.append((now, offset_ms, slot, kind))
                view.last_seen = self.clock()
                if offset_ms > (slots.reply_offset + slots.reply_window) * 1000:
                    view.counters["late_slot_replies"] += 1
            if frame.src in b.expected:
                b.answered.add(frame.src)
            return
        sent = self._unicast.pop(frame.src, None)
        if sent is not None:
            view = self._by_address(frame.src)
            if view is not None:
                view.latency.append((now, (now - sent) * 1000))
                view.last_seen = self.clock()

    def _end_broadcast(self, b: _Broadcast) -> None:
        self._broadcast = None
        if b.service != BroadcastService.ADDRESS_CHECK or not b.expected:
            return
        results = []
        for addr in sorted(b.expected):
            view = self._by_address(addr)
            ok = addr in b.answered
            if view is not None:
                view.counters["presence_ok" if ok else "presence_missed"] += 1
                offset = view.slots[-1][1] if ok and view.slots else None
                results.append({"meter": view.meter_id, "address": addr, "slot": b.expected[addr], "answered": ok,
                                "offset_ms": None if offset is None else round(offset, 3)})
        self.hub.publish("presence", results=results)

    def _by_address(self, address: int) -> MeterView | None:
        return next((v for v in self.meters.values() if v.address == address and v.state == "registered"), None)

    # --- the gateway's event points -------------------------------------------------------------------

    def on_station_event(self, e: object) -> None:
        now = self.clock()
        if isinstance(e, ev.ParticipantRegistered):
            view = self.meters.get(e.server_id) or self._new_view(e.server_id, e.address, now)
            view.address, view.state, view.drop_reason, view.registered_at = e.address, "registered", None, now
            view.last_seen = now
            self.hub.publish("registration", meter=view.meter_id, address=e.address)
        elif isinstance(e, ev.ParticipantMoved):
            view = self.meters.get(e.server_id) or self._new_view(e.server_id, e.new_address, now)
            view.address, view.state = e.new_address, "registered"
            self.hub.publish("moved", meter=view.meter_id, old_address=e.old_address, address=e.new_address)
        elif isinstance(e, ev.ParticipantDropped):
            view = self.meters.get(e.server_id)
            if view is not None:
                view.state, view.drop_reason, view.tls_up = "dropped", e.reason, False
            self.hub.publish("dropped", meter=describe(e.server_id), address=e.address, reason=e.reason)
        elif isinstance(e, ev.ExchangeFailed):
            view = self._by_address(e.address)
            if view is not None:
                view.counters["link_errors"] += 1
                view.last_error = e.reason
                if e.selector == Selector.TLS_SML_COSEM:
                    view.tls_up = False
            self.hub.publish("link-error", meter=view.meter_id if view else None, address=e.address,
                             selector=e.selector, reason=e.reason)
        elif isinstance(e, ev.ConversationDone):
            view = self._by_address(e.address)
            if view is not None and e.selector == Selector.TLS_SML_COSEM:
                view.tls_up = True

    def _new_view(self, server_id: bytes, address: int, now: float) -> MeterView:
        dropped = [v for v in self.meters.values() if v.state == "dropped"]
        if len(dropped) >= MAX_DROPPED:
            oldest = min(dropped, key=lambda v: v.last_seen or v.registered_at)
            del self.meters[oldest.server_id]
        view = self.meters[server_id] = MeterView(server_id, address, now)
        return view

    def on_result(self, result: SmlResult, channel: str | None = None) -> None:
        view = self.meters.get(result.server_id)
        if view is None:
            return
        now = self.clock()
        if channel is None:
            channel = "tls" if view.address is not None and self._paired(result.server_id) else "plain"
        view.last_channel = channel
        if result.error is not None:
            view.counters["reads_failed"] += 1
            view.last_error = result.error
            self.hub.publish("read-failed", meter=view.meter_id, channel=channel, error=result.error)
            return
        view.counters["reads_ok"] += 1
        view.last_read = now
        readings = []
        for r in result.readings:
            entry = reading_entry(r, now)
            entry.pop("age_s", None)
            view.readings[entry["obis"]] = entry
            readings.append(entry)
            if r.obis in _MAIN_REGISTERS:
                with contextlib.suppress(ValueError):
                    view.energy.append((self._now, float(entry["value"]), entry["unit"]))
        for obis, raw in result.identification.items():
            view.identification[str(obis)] = format_octets(obis, raw).split(" = ", 1)[-1]
        bad = [str(a) for a in result.attentions if not a.ok]
        view.attentions = bad
        view.counters["attentions"] += len(bad)
        self.hub.publish("reading", meter=view.meter_id, channel=channel, readings=readings,
                         identification=dict(view.identification))
        for text in bad:
            self.hub.publish("attention", meter=view.meter_id, attention=text)

    def on_outcome(self, what: str, server_id: bytes, ok: bool, detail: str) -> None:
        self.hub.publish(what, meter=describe(server_id), ok=ok, detail=detail)

    # --- views ------------------------------------------------------------------------------------------

    def _paired(self, server_id: bytes) -> bool:
        return self.security is not None and self.security.meter_certificate(server_id) is not None

    def _summary(self, v: MeterView) -> dict[str, Any]:
        return {"id": v.meter_id, "server_id": v.server_id.hex(), "address": v.address, "state": v.state,
                "drop_reason": v.drop_reason, "paired": self._paired(v.server_id), "tls_up": v.tls_up,
                "registered_at": v.registered_at, "last_seen": v.last_seen, "last_read": v.last_read,
                "last_channel": v.last_channel, "last_error": v.last_error,
                "readings": list(v.readings.values()), "counters": dict(v.counters)}

    def participants(self) -> list[dict[str, Any]]:
        return [self._summary(v) for v in sorted(self.meters.values(), key=lambda v: (v.state, v.address or 0))]

    def view(self, server_id: bytes) -> MeterView:
        v = self.meters.get(server_id)
        if v is None:
            raise ConsoleError(404, f"no participant {describe(server_id)} is known to this gateway")
        return v

    def detail(self, server_id: bytes) -> dict[str, Any]:
        v = self.view(server_id)
        out = self._summary(v)
        slots = self._slot_timing()
        out.update({
            "identification": dict(v.identification), "attentions": list(v.attentions),
            "profile": None if v.profile is None else {"read_at": v.profile_read_at, **v.profile.to_json()},
            "diagnostics": {
                "slot_window_ms": slots,
                "slot_offsets": [{"age_s": round(self._now - t, 3), "offset_ms": round(o, 3), "slot": s,
                                  "kind": k} for t, o, s, k in v.slots][-50:],
                "latency_ms": [{"age_s": round(self._now - t, 3), "latency_ms": round(lat, 3)}
                               for t, lat in v.latency][-50:],
            },
        })
        return out

    def _slot_timing(self) -> dict[str, float]:
        s = self.gateway.station.timing.slots if self.gateway else None
        if s is None:
            return {}
        return {"start": round(s.reply_offset * 1000, 3), "end": round((s.reply_offset + s.reply_window) * 1000, 3),
                "slot_period": round(s.slot_period * 1000, 3)}

    def link(self) -> dict[str, Any]:
        st = self.gateway.station if self.gateway else None
        counters = dict(vars(st.counters)) if st else {}
        rx = self.receiver_counters
        bad = {k: getattr(rx, k) for k in ("bad_hcs", "bad_fcs", "idle_drops", "bytes_in") if hasattr(rx, k)}
        return {"gateway": counters, "receiver": bad, "events": self.hub.stats(),
                "slot_window_ms": self._slot_timing()}

    # --- plots --------------------------------------------------------------------------------------------

    def plot(self, server_id: bytes, which: str) -> str:
        from .svg import plot

        v = self.view(server_id)
        now = self._now
        if which == "slots":
            w = self._slot_timing()
            return plot([(t - now, o) for t, o, _, _ in v.slots], title=f"{v.meter_id}: slot replies",
                        x_label="seconds ago", y_label="ms after slot start", style="dots",
                        band=(w.get("start", 0.5), w.get("end", 5.5)), band_label="reply window",
                        empty_text="no broadcast reply seen yet")
        if which == "latency":
            return plot([(t - now, lat) for t, lat in v.latency], title=f"{v.meter_id}: unicast reply latency",
                        x_label="seconds ago", y_label="ms", style="dots", empty_text="no unicast answer yet")
        if which == "energy":
            unit = v.energy[-1][2] if v.energy else ""
            return plot([(t - now, e) for t, e, _ in v.energy], title=f"{v.meter_id}: main register at each read",
                        x_label="seconds ago", y_label=unit or "value", empty_text="not read yet")
        if which == "profile":
            return self._profile_plot(v)
        raise ConsoleError(404, f"no plot {which!r} (slots, latency, energy, profile)")

    def _profile_plot(self, v: MeterView) -> str:
        from .svg import plot

        periods = v.profile.periods if v.profile is not None else []
        obis = next((o for p in periods for o in p.values if Obis.parse(o) in _MAIN_REGISTERS), None)
        now = self.clock()
        pts = [((p.time - now) / 3600, float(p.values[obis][0])) for p in periods
               if obis in p.values and p.time is not None]
        unit = periods[-1].values[obis][1] if obis and periods and obis in periods[-1].values else ""
        empty = "not read yet (Read load profile)" if v.profile is None else \
            ("no entry: " + ", ".join(v.profile.attentions) if v.profile.attentions else "no entry")
        return plot(pts, title=f"{v.meter_id}: load profile {obis or '1-0:99.1.0*255'}", x_label="hours ago",
                    y_label=unit or "value", empty_text=empty)

    # --- actions ------------------------------------------------------------------------------------------

    def _registered(self, server_id: bytes) -> MeterView:
        v = self.view(server_id)
        if v.state != "registered" or v.address is None:
            raise ConsoleError(409, f"{v.meter_id} is not registered ({v.drop_reason or v.state})")
        return v

    def _queue(self, v: MeterView, job: PollJob) -> None:
        assert self.gateway is not None and v.address is not None
        self.gateway.station.converse(v.address, job.selector, job.layer)
        self.poke()

    async def read(self, server_id: bytes, objects: Sequence[ObjectRequest] | None = None, channel: str = "auto",
                   timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """Read ``objects`` (default: what a poll reads, plus the meter's list) now; ``channel`` is
        ``auto`` (TLS once paired), ``plain`` (selector 3) or ``tls`` (selector 1)."""
        v, channel = self._channel(server_id, channel)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SmlResult] = loop.create_future()

        def finished(result: SmlResult) -> None:
            self.on_result(result, channel)
            if not done.done():
                done.set_result(result)

        client = SmlClient.read_objects(server_id, objects or objects_for(server_id), full_list=not objects,
                                        on_done=finished)
        job = self.security.tls_job(server_id, client) if channel == "tls" else PollJob(Selector.SML_COSEM, client)
        self._queue(v, job)
        result = await self._wait(done, timeout, v)
        out: dict[str, Any] = {"meter": v.meter_id, "channel": channel, "ok": result.ok, "error": result.error,
                               "readings": [], "identification": {}, "attentions": [str(a) for a in result.attentions]}
        now = self.clock()
        for r in result.readings:
            entry = reading_entry(r, now)
            entry.pop("age_s", None)
            out["readings"].append(entry)
        out["identification"] = {str(o): format_octets(o, raw).split(" = ", 1)[-1]
                                 for o, raw in result.identification.items()}
        return out

    async def read_profile(self, server_id: bytes, channel: str = "auto",
                           timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """Read the meter's load profile (GetProfileList on 1-0:99.1.0*255) over ``channel``."""
        from .profile_reader import ProfileReader, ProfileResult

        v, channel = self._channel(server_id, channel)
        done: asyncio.Future[ProfileResult] = asyncio.get_running_loop().create_future()

        def finished(result: ProfileResult) -> None:
            v.profile, v.profile_read_at = result, self.clock()
            self.hub.publish("profile", meter=v.meter_id, channel=channel, periods=len(result.periods),
                             error=result.error, attentions=result.attentions)
            if not done.done():
                done.set_result(result)

        reader = ProfileReader(server_id, on_done=finished)
        job = self.security.tls_job(server_id, reader) if channel == "tls" else PollJob(Selector.SML_COSEM, reader)
        self._queue(v, job)
        result = await self._wait(done, timeout, v)
        return {"meter": v.meter_id, "channel": channel, **result.to_json()}

    def _channel(self, server_id: bytes, channel: str) -> tuple[MeterView, str]:
        if channel not in ("auto", "plain", "tls"):
            raise ConsoleError(400, f"channel must be auto, plain or tls, got {channel!r}")
        v = self._registered(server_id)
        paired = self._paired(server_id)
        if channel == "auto":
            channel = "tls" if paired else "plain"
        if channel == "tls" and not paired:
            raise ConsoleError(409, f"{v.meter_id} is not paired with this gateway: no TLS (pair it first)")
        return v, channel

    async def _wait(self, fut: asyncio.Future, timeout: float, v: MeterView) -> Any:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise ConsoleError(504, f"{v.meter_id} did not finish within {timeout:.0f} s") from None

    async def pair(self, server_id: bytes, master_key: bytes, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """Pair the meter (SYM on selector 6) with its master key; afterwards it is read over TLS."""
        if self.security is None:
            raise ConsoleError(409, "this gateway has no security state (pairing needs --state-dir)")
        v = self._registered(server_id)
        if self._paired(server_id):
            raise ConsoleError(409, f"{v.meter_id} is already paired with this gateway (crypto-reset it first)")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def finished(result: Any) -> None:
            self.on_outcome("pairing", server_id, bool(result.ok), "" if result.ok else str(result.reason))
            if not done.done():
                done.set_result(result)

        self._queue(v, self.security.pairing_job(server_id, bytes(master_key), on_result=finished))
        del master_key
        result = await self._wait(done, timeout, v)
        return {"meter": v.meter_id, "ok": bool(result.ok), "reason": None if result.ok else str(result.reason),
                "paired": self._paired(server_id)}

    async def crypto_reset(self, server_id: bytes, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        """Send SetProcParameter 1-0:94.49.0*7 = TRUE over TLS; on success the meter's certificate is forgotten."""
        v = self._registered(server_id)
        if not self._paired(server_id):
            raise ConsoleError(409, f"{v.meter_id} is not paired with this gateway: nothing to reset")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[bool, str]] = loop.create_future()

        def answered(result: SmlResult) -> None:
            if result.error is not None and not done.done():
                done.set_result((False, result.error))

        client = SmlClient.set_parameter(server_id, ObjectName(CRYPTO_RESET, CosemClass.DATA), True,
                                         on_done=answered)

        def confirm(inner: object) -> bool:
            ok = client.result is not None and client.result.ok
            detail = "" if ok else ", ".join(str(a) for a in (client.result.attentions if client.result else [])) \
                or "refused"
            self.on_outcome("crypto-reset", server_id, ok, detail)
            if not done.done():
                done.set_result((ok, detail))
            return ok

        self._queue(v, self.security.crypto_reset_job(server_id, lambda: client, confirm=confirm))
        ok, detail = await self._wait(done, timeout, v)
        if ok:
            v.tls_up = False
        return {"meter": v.meter_id, "ok": ok, "detail": detail or None, "paired": self._paired(server_id)}
