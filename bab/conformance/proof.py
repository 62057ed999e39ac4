"""The proof that the suite tests something: BAB's lab meter with one fault of the bab/sim catalogue switched
on, and the cases designed to catch it (their ``catches``) run against it. Used by the parametrized test over
the whole catalogue and to print the fault -> failing case table of docs/conformance.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bab.sim.catalogue import KINDS

from .case import CASES, CaseResult, Verdict
from .lab import TEST_MASTER_KEY, BabLab
from .runner import Options, Session, run_suite, select

#: Parameters of each fault for the sweep (the catalogue's defaults where none is given).
SWEEP_PARAMS: dict[str, dict[str, Any]] = {
    "late_replies": {"ms": 50},
    "wrong_slot": {"slots": 1},
    "rnr": {"seconds": 5},
    "attention": {"object": "1-0:1.8.0", "code": "FE07"},
}


def catching(kind: str) -> list[str]:
    """IDs of the cases that declare they catch ``kind``."""
    return [c.id for c in CASES.values() if kind in c.catches]


def sweep(kind: str, state_dir: Path) -> list[CaseResult]:
    """Register (and pair, for TLS cases) with the fault off, switch it on, run the catching cases."""
    if kind not in KINDS:
        raise KeyError(f"no fault kind {kind}")
    ids = catching(kind)
    lab = BabLab(state_dir / "bab", master_key=TEST_MASTER_KEY)
    session = Session(lab.tester(), Options(master_key=TEST_MASTER_KEY, state_dir=state_dir / "gw"))
    before = ["HDLC-REG-01"]
    if any(CASES[i].group == "TLS" for i in ids):
        before.append("SYM-PAIR-01")
    prep = run_suite(session, select(before))
    bad = [r for r in prep if r.verdict is not Verdict.PASS]
    if bad:
        raise RuntimeError(f"preparation failed before switching {kind} on: {bad[0].id}: {bad[0].reason}")
    lab.fault(kind, **SWEEP_PARAMS.get(kind, {}))
    return run_suite(session, select(ids))


def table(state_dir: Path) -> list[tuple[str, list[str]]]:
    """(fault kind, the catching cases that failed) for every kind of the catalogue."""
    rows = []
    for i, kind in enumerate(KINDS):
        results = sweep(kind, state_dir / str(i))
        rows.append((kind, [r.id for r in results if r.verdict is Verdict.FAIL]))
    return rows


if __name__ == "__main__":  # python -m bab.conformance.proof: print the table
    import logging
    import tempfile
    import time

    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.monotonic()
        print("| fault | failing case(s) |\n|---|---|")
        for kind, failed in table(Path(d)):
            print(f"| `{kind}` | {', '.join(failed) or '(none: a gap)'} |")
        print(f"\nsweep took {time.monotonic() - t0:.1f} s")
