"""What a conformance test case is and what it yields: the catalogue entry (ID, title, spec reference, the lab
faults it is designed to catch) and its result (verdict with reason, measured figures, frames as evidence)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "n/a"  # an optional case whose optional feature (TaSK profile) the meter does not offer


class CaseFailed(Exception):
    """Raised inside a case: the meter does not conform (the message is the reason)."""


class CaseSkipped(Exception):
    """Raised inside a case: it cannot be run here (the message says why: a missing key, tool or option)."""


class CaseNotApplicable(Exception):
    """Raised inside an optional case: the meter does not offer the optional feature the case tests (the
    message says what it did instead). In a mandatory case the runner turns it into a skip."""


@dataclass
class Evidence:
    """One frame (or message) seen or sent during a case: time on the tester's clock, direction, bytes, note."""

    t: float
    direction: str  # "tx" (tester to meter) or "rx" (meter to tester)
    data: bytes
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "dir": self.direction, "hex": self.data.hex(), "note": self.note}


@dataclass
class CaseResult:
    """The outcome of one case."""

    id: str
    title: str
    reference: str
    verdict: Verdict
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    duration: float = 0.0  # seconds on the tester's clock (virtual time on the simulated bus)
    catches: tuple[str, ...] = ()
    optional: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "reference": self.reference, "verdict": self.verdict.value,
                "reason": self.reason, "figures": self.figures, "duration_s": round(self.duration, 4),
                "optional": self.optional, "catches_faults": list(self.catches),
                "evidence": [e.to_json() for e in self.evidence]}


CaseFunc = Callable[[Any, "Record"], None]


@dataclass(frozen=True)
class Case:
    """A catalogue entry. ``needs`` names what the case requires beyond a registered meter: ``"master_key"``
    (SYM), ``"tls"`` (gateway key and certificate and the meter's pinned certificate, or a pairing first).
    ``catches``: the bab/sim fault kinds this case is designed to detect (the proof sweep checks it does)."""

    id: str
    title: str
    reference: str
    group: str
    func: CaseFunc
    needs: tuple[str, ...] = ()
    catches: tuple[str, ...] = ()
    budget: float = 60.0  # the longest the case may take (tester clock), whatever the meter does
    optional: str | None = None  # the optional feature (TaSK profile) the case tests; None: mandatory


class Record:
    """Passed to a running case: collects its figures and evidence."""

    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.evidence: list[Evidence] = []

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value

    def frame(self, t: float, direction: str, data: bytes, note: str = "") -> None:
        if len(self.evidence) < 64:  # evidence is bounded: a flooding meter cannot blow up the report
            self.evidence.append(Evidence(t, direction, bytes(data), note))


CASES: dict[str, Case] = {}


def case(id: str, title: str, reference: str, *, group: str, needs: tuple[str, ...] = (),
         catches: tuple[str, ...] = (), budget: float = 60.0,
         optional: str | None = None) -> Callable[[CaseFunc], CaseFunc]:
    """Register a case function in :data:`CASES` (in definition order: the order the suite runs them)."""

    def register(func: CaseFunc) -> CaseFunc:
        if id in CASES:
            raise ValueError(f"duplicate conformance case {id}")
        CASES[id] = Case(id, title, reference, group, func, needs, catches, budget, optional)
        return func

    return register


def check(condition: object, reason: str) -> None:
    """Fail the running case with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(reason)
