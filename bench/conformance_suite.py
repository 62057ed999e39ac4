"""Run time of the LMN conformance suite against BAB's meter on the virtual bus, and of the fault sweep.

Prints: wall time of the whole suite (in-process, virtual time; the lab meter's TLS session lifetime is 2 s, and
TLS_B2_FR_05 waits it out on the wall clock too), the bus time it covers, the cases that took over 0.5 s, and
the wall time of the sweep over the whole fault catalogue. ``python bench/conformance_suite.py [runs]``."""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bab.conformance.lab import BAB_DEVIATIONS, LAB_SESSION_LIFETIME, TEST_MASTER_KEY, BabLab
from bab.conformance.proof import table
from bab.conformance.runner import Options, Session, run_suite


def main(runs: int = 5) -> None:
    logging.disable(logging.CRITICAL)
    walls, bus = [], 0.0
    with tempfile.TemporaryDirectory() as d:
        for i in range(runs):
            lab = BabLab(Path(d) / f"bab{i}")
            s = Session(lab.tester(), Options(master_key=TEST_MASTER_KEY, state_dir=Path(d) / f"gw{i}",
                                              tls_session_lifetime=LAB_SESSION_LIFETIME))
            t0 = time.perf_counter()
            results = run_suite(s)
            walls.append(time.perf_counter() - t0)
            bus = sum(r.duration for r in results)
            odd = [r.id for r in results if r.verdict.value not in ("pass", "n/a") and r.id not in BAB_DEVIATIONS]
            assert not odd, odd
            slow = {r.id: r.figures.get("wall_clock_s") for r in results if r.figures.get("wall_clock_s", 0) > 0.5}
        t0 = time.perf_counter()
        rows = table(Path(d) / "sweep")
        sweep = time.perf_counter() - t0
    print(f"suite: {len(results)} cases, wall median {statistics.median(walls):.3f} s "
          f"(min {min(walls):.3f}, max {max(walls):.3f}, n={runs}); bus time covered {bus:.1f} s; "
          f"cases over 0.5 s wall: {slow}")
    print(f"fault sweep: {len(rows)} kinds, {sweep:.3f} s wall; gaps: {[k for k, f in rows if not f] or 'none'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
