"""Events the HDLC stations report to the code around them (for logs, status and the gateway's users)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddressChosen:
    """The meter answered an address allocation with this address in this slot."""

    address: int
    slot: int


@dataclass(frozen=True)
class Registered:
    """The meter is registered under ``address`` (the gateway's list confirms it)."""

    address: int


@dataclass(frozen=True)
class Unregistered:
    reason: str


@dataclass(frozen=True)
class Connected:
    selector: int


@dataclass(frozen=True)
class Disconnected:
    selector: int
    reason: str


@dataclass(frozen=True)
class Refused:
    """A connection attempt or frame on a selector that is not served got DM."""

    selector: int


@dataclass(frozen=True)
class SlotMissed:
    """A broadcast reply could not be sent inside its slot and was not sent at all."""

    late_by: float


@dataclass(frozen=True)
class SlotLate:
    """A broadcast reply started after its slot's reply window and was sent in the slot's guard time."""

    late_by: float


# --- gateway side ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantRegistered:
    address: int
    server_id: bytes


@dataclass(frozen=True)
class ParticipantMoved:
    server_id: bytes
    old_address: int
    new_address: int


@dataclass(frozen=True)
class ParticipantDropped:
    address: int
    server_id: bytes
    reason: str


@dataclass(frozen=True)
class ExchangeFailed:
    """A unicast conversation with a participant failed (timeouts, DM, protocol error)."""

    address: int
    selector: int
    reason: str


@dataclass(frozen=True)
class ConversationDone:
    address: int
    selector: int
