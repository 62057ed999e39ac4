"""Runs the catalogue against one meter: each case with its own time bound, its verdict and reason, its
figures and evidence. A case that raises anything but a verdict is a failure with the exception as reason:
the suite itself never crashes or hangs on what a meter does."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hdlc_cases, sml_cases, sym_cases, tls_cases  # noqa: F401 - they register their cases
from .case import CASES, Case, CaseFailed, CaseNotApplicable, CaseResult, CaseSkipped, Record, Verdict
from .tester import Tester

log = logging.getLogger("bab.conformance")


@dataclass
class Options:
    """What the operator gives: which meter, and the keys for SYM and TLS."""

    meter: bytes | None = None  # server ID (10 bytes); None: the first meter that registers
    master_key: bytes | None = None
    gateway_key_pem: bytes | None = None
    gateway_cert_pem: bytes | None = None
    meter_cert_pem: bytes | None = None
    state_dir: Path | None = None  # where the software gateway keeps keys and pins (SYM pairing)
    register_within: int = 3  # allocation broadcasts a meter may take to register
    max_case_seconds: float | None = None  # lower every case's time bound to this (a quick screening run)
    tls_session_lifetime: float = 744 * 3600.0  # what the meter declares (TR-03116-3 LMN: 744 h)
    max_wait: float = 300.0  # the longest a case may wait for the session lifetime to pass (else skipped)


@dataclass
class Session:
    """Shared by the cases of one run: the tester, the options, what earlier cases found out."""

    tester: Tester
    options: Options
    server_id: bytes | None = None
    address: int | None = None
    paired_cert_der: bytes | None = None  # learnt by the SYM pairing case (the meter's TLS certificate)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def t(self) -> Tester:
        return self.tester


def select(ids: Iterable[str] | None = None, *, optional: bool = True) -> list[Case]:
    """The cases named by ``ids`` (default: the whole catalogue), without the optional ones if ``optional`` is
    False."""
    if ids is None:
        return [c for c in CASES.values() if optional or c.optional is None]
    wanted = list(ids)
    unknown = [i for i in wanted if i not in CASES]
    if unknown:
        raise KeyError(f"unknown conformance case(s): {', '.join(unknown)}")
    return [c for c in CASES.values() if c.id in wanted and (optional or c.optional is None)]


def run_case(session: Session, c: Case) -> CaseResult:
    tester = session.tester
    record = Record()
    tester.record = record
    start = tester.now
    budget = c.budget if session.options.max_case_seconds is None else min(c.budget,
                                                                            session.options.max_case_seconds)
    tester.deadline = start + budget
    verdict, reason = Verdict.PASS, ""
    try:
        c.func(session, record)
    except CaseFailed as exc:
        verdict, reason = Verdict.FAIL, str(exc)
    except CaseSkipped as exc:
        verdict, reason = Verdict.SKIPPED, str(exc)
    except CaseNotApplicable as exc:
        verdict = Verdict.NOT_APPLICABLE if c.optional else Verdict.SKIPPED
        reason = str(exc)
    except Exception as exc:  # a meter that breaks the tester's expectations fails the case, not the suite
        log.debug("case %s raised", c.id, exc_info=True)
        verdict, reason = Verdict.FAIL, f"tester could not complete the case: {type(exc).__name__}: {exc}"
    finally:
        tester.deadline = float("inf")
        tester.resume()
    return CaseResult(c.id, c.title, c.reference, verdict, reason, record.figures, record.evidence,
                      tester.now - start, c.catches, c.optional)


def run_suite(session: Session, cases: Iterable[Case] | None = None) -> list[CaseResult]:
    """Run ``cases`` (default: the whole catalogue) in catalogue order."""
    results = []
    for c in cases if cases is not None else select():
        wall = time.monotonic()
        r = run_case(session, c)
        r.figures.setdefault("wall_clock_s", round(time.monotonic() - wall, 3))
        log.info("%s %s: %s %s", c.id, c.title, r.verdict.value, r.reason)
        results.append(r)
    return results


def passed(results: list[CaseResult]) -> bool:
    """Every case passed; an optional case may instead be n/a (its optional feature is not offered)."""
    return (any(r.verdict is Verdict.PASS for r in results)
            and all(r.verdict is Verdict.PASS or (r.verdict is Verdict.NOT_APPLICABLE and r.optional)
                    for r in results))


def exit_code(results: list[CaseResult]) -> int:
    """0 only when every case passed (optional ones: passed or n/a)."""
    return 0 if passed(results) else 1
