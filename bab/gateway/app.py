"""The software gateway application: the LMN master plus what it does with the meters it finds.

It wraps :class:`~bab.hdlc.primary.GatewayStation` as a link-node endpoint, reports registrations, moves and
drops, and polls every participant periodically with a *reader*: a factory of client layers that read the
meter's values (the SML/COSEM client) and report them. Usable from tests, from ``bab demo`` and from
``bab gateway`` against real hardware, so a lab can check a BAB, or a real meter, without an SMGW.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bab.hdlc import events as ev
from bab.hdlc.frame import Frame
from bab.hdlc.primary import GatewayStation, Participant
from bab.hdlc.secondary import Transmission
from bab.hdlc.timing import GatewayTiming
from bab.hdlc.upper import ClientLayer
from bab.meter_id import MeterId


@dataclass
class PollJob:
    """What a reader returns: the selector to use and the client layer that does the reading."""

    selector: int
    layer: ClientLayer


Reader = Callable[[Participant], PollJob | None]


def describe(server_id: bytes) -> str:
    try:
        return str(MeterId.from_server_id(server_id))
    except (ValueError, UnicodeDecodeError):
        return server_id.hex()


class SoftwareGateway:
    def __init__(self, timing: GatewayTiming | None = None, *, reader: Reader | None = None,
                 poll_interval: float = 5.0, report: Callable[[str], None] = print,
                 report_exchanges: bool = True, on_event: Callable[[object], None] | None = None,
                 **station_args) -> None:
        self.station = GatewayStation(timing, **station_args)
        self.on_event = on_event  # sees every station event (bab.hdlc.events) after it is reported
        self.reader = reader
        self.report_exchanges = report_exchanges  # off where the owner reports its conversations itself
        self.poll_interval = poll_interval
        self.report = report
        self.next_poll: dict[int, float] = {}
        self.polls_done = 0
        self._started = False

    # endpoint interface (see bab.lmn.node.Endpoint)
    def frame_received(self, frame: Frame, now: float) -> None:
        self.station.frame_received(frame, now)
        self._handle_events(now)

    def next_deadline(self) -> float | None:
        if not self._started:
            return float("-inf")  # due at once: the first step starts the station
        times = [t for t in (self.station.next_deadline(), *self._poll_times()) if t is not None]
        return min(times) if times else None

    def _poll_times(self) -> list[float]:
        if self.reader is None:
            return []
        return [t for a, t in self.next_poll.items() if not self.station.busy_with(a)]

    def transmissions_due(self, now: float) -> list[Transmission]:
        if not self._started:
            self.station.start(now)
            self._started = True
        self._schedule_polls(now)
        out = self.station.transmissions_due(now)
        self._handle_events(now)
        return out

    def _schedule_polls(self, now: float) -> None:
        if self.reader is None:
            return
        for addr, p in self.station.participants.items():
            due = self.next_poll.setdefault(addr, now)
            if due <= now and not self.station.busy_with(addr):
                job = self.reader(p)
                self.next_poll[addr] = now + self.poll_interval
                if job is not None:
                    self.station.converse(addr, job.selector, job.layer)

    def _handle_events(self, now: float) -> None:
        for e in self.station.next_events():
            if isinstance(e, ev.ParticipantRegistered):
                self.report(f"participant {describe(e.server_id)} registered at address {e.address:#04x}")
            elif isinstance(e, ev.ParticipantMoved):
                self.report(f"participant {describe(e.server_id)} moved {e.old_address:#04x} -> "
                            f"{e.new_address:#04x}")
                self.next_poll.pop(e.old_address, None)
            elif isinstance(e, ev.ParticipantDropped):
                self.report(f"participant {describe(e.server_id)} at {e.address:#04x} dropped: {e.reason}")
                self.next_poll.pop(e.address, None)
            elif isinstance(e, ev.ExchangeFailed) and self.report_exchanges:
                self.report(f"reading {e.address:#04x} on selector {e.selector} failed: {e.reason}")
            elif isinstance(e, ev.ConversationDone):
                self.polls_done += 1
            if self.on_event is not None:
                self.on_event(e)
