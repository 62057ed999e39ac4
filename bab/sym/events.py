"""Events the SYM state machines hand to their caller (LMN-STACK.md section 5). Key material is kept out of
every ``repr`` so events can be logged as they are."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .profile import AlgorithmList
from .state import PairingState


@dataclass(frozen=True, slots=True)
class SaveState:
    """Meter: persist ``state`` atomically NOW, then call ``state_saved()`` (or ``state_save_failed()``).

    The answer that depends on it is held back until the save is acknowledged.
    """

    state: PairingState


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """A received message was rejected and not answered; ``reason`` is also the key in ``stats``."""

    reason: str
    command: int | None = None
    counter: int | None = None


@dataclass(frozen=True, slots=True)
class PairingCompleted:
    """Meter: the paired state is persisted. ``meter_key_der`` is the injected key (route a) or None."""

    gateway_cert_der: bytes = field(repr=False)
    meter_cert_der: bytes = field(repr=False)
    meter_key_der: bytes | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class MeterPaired:
    """Gateway: the meter committed the pairing. ``meter_cert_der`` is the meter's TLS certificate."""

    meter_cert_der: bytes = field(repr=False)
    algorithms: AlgorithmList
    max_fragment_length: int | None  # None: the meter's commit answer is not in BAB's format
    profile_data: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PairingFailed:
    """A running pairing was abandoned (both sides); nothing of it was persisted."""

    reason: str


SymEvent = SaveState | MessageDropped | PairingCompleted | MeterPaired | PairingFailed


class SymOutputs:
    """The output side both SYM state machines share: bytes to send and events, drained by the caller.

    Subclasses fill ``self._outbuf`` and ``self._events``."""

    _outbuf: bytearray
    _events: deque[SymEvent]

    def _init_outputs(self) -> None:
        self._outbuf = bytearray()
        self._events = deque()

    def data_to_send(self) -> bytes:
        """Bytes to send to the peer; empty when there is nothing."""
        out = bytes(self._outbuf)
        self._outbuf.clear()
        return out

    def next_event(self) -> SymEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[SymEvent]:
        """All pending events, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out
