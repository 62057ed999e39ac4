"""Link timing of the LMN, defaulting to the reference values of LMN-STACK.md 3.5 (uncertainty register #5).

The normative values are not public; every figure here is configurable (``lmn.timing`` in the YAML).
"""

from __future__ import annotations

from dataclasses import dataclass

BAUDRATE = 921_600


def wire_time(nbytes: int, baudrate: int = BAUDRATE) -> float:
    """Seconds that ``nbytes`` take on the line at 8N1 (10 bits per byte)."""
    return nbytes * 10 / baudrate


@dataclass(frozen=True)
class SlotTiming:
    """The broadcast time-slot grid shared by gateway and meters.

    A reply in slot ``s`` starts at ``t_end + s * slot_period + reply_offset`` after the last byte of the
    broadcast and must be complete within ``reply_window`` of the slot start; the rest of the slot is guard.
    """

    slot_period: float = 0.010
    slot_count: int = 32  # slots a meter picks from when it answers an address allocation (<= 63)
    reply_offset: float = 0.0005
    reply_window: float = 0.005

    def slot_start(self, t_end: float, slot: int) -> float:
        return t_end + slot * self.slot_period + self.reply_offset

    def listen_window(self) -> float:
        """How long the gateway listens after a broadcast: every slot plus one spare slot."""
        return (self.slot_count + 1) * self.slot_period


@dataclass(frozen=True)
class MeterTiming:
    """Meter-side (secondary) timing."""

    slots: SlotTiming = SlotTiming()
    turnaround: float = 0.0  # delay before a unicast reply (bus turnaround), seconds
    inactivity_timeout: float | None = None  # fall back to unregistered after this silence (register #14)


@dataclass(frozen=True)
class GatewayTiming:
    """Gateway-side (primary) timing; defaults from the Ostfalia reference SMGW."""

    slots: SlotTiming = SlotTiming()
    broadcast_period: float = 14.0  # address allocation while meters are known
    broadcast_period_empty: float = 1.5  # ... while none is known, or right after a new registration
    check_period: float = 15.0  # presence check
    reply_timeout: float = 0.75  # unicast
    retries: int = 3  # unicast retransmissions before a participant counts as unreachable
    missed_checks: int = 1  # presence checks a participant may miss before it is dropped
    rnr_backoff: float = 0.1  # pause after 100 consecutive RNRs (reference behaviour)
