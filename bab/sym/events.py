"""Events the SYM state machines hand to their caller (LMN-STACK.md section 5). Key material is kept out of
every ``repr`` so events can be logged as they are."""

from __future__ import annotations

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
    max_fragment_length: int
    profile_data: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class PairingFailed:
    """A running pairing was abandoned (both sides); nothing of it was persisted."""

    reason: str


SymEvent = SaveState | MessageDropped | PairingCompleted | MeterPaired | PairingFailed
