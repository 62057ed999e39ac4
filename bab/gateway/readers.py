"""Readers: what the software gateway does with each participant when it polls it.

The default reader reads the base meter objects over SML/COSEM (selector 3 while unpaired) when the SML client
is available, and reports each value.
"""

from __future__ import annotations

from collections.abc import Callable

from bab.hdlc.primary import Participant

from .app import PollJob, Reader


def default_reader(report: Callable[[str], None]) -> Reader | None:
    try:
        from bab.gateway.sml_reader import SmlReader
    except ImportError:
        return None
    return SmlReader(report)


def no_reader(participant: Participant) -> PollJob | None:
    return None
