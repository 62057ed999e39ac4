"""Figures of a commissioning by the reference SMGW (LMN-STACK.md section 13), measured on the gateway's own clock.

Runs the reference gateway and ``bab run`` on a pty pair (the harness of ``tests/reference_smgw.py``; see
``docs/reference-gateway.md`` for where the gateway comes from) and prints, per step, the verdict and the time
the gateway spent on the wire: registration, plain read, SYM pairing (first SNRM on selector 6 to the commit
answer), TLS handshake and read (SNRM on selector 1 to the application answer), more TLS reads on the open
session, and the wire discipline (frames per poll, longest RNR run).

    .venv/bin/python bench/reference_smgw.py [--reads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_smgw import SERVER_ID, Credentials, Exchange, Session, unavailable, wire_report  # noqa: E402


def _span(exchanges: list[Exchange], start: int, end: int) -> float:
    last = exchanges[end - 1]
    t_end = last.replies[-1].t if last.replies else last.request.t
    return t_end - exchanges[start].request.t


def _unicast(exchanges: list[Exchange], since: int) -> list[int]:
    return [i for i in range(since, len(exchanges)) if exchanges[i].request.data[3] != 0xFE]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=10, help="TLS reads on the open session")
    args = ap.parse_args()
    reason = unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    creds = Credentials.generate()
    with Session() as s:
        t0 = time.monotonic()
        ok = s.gateway.wait_registered(SERVER_ID, timeout=40)
        print(f"registration        {'pass' if ok else 'FAIL'}  {time.monotonic() - t0:6.2f} s after start")
        if not ok:
            return 1
        steps: list[tuple[str, str, bool, int, int]] = []

        def step(name: str, answer: str, good: bool, mark: int) -> int:
            now = len(s.gateway.exchanges())
            steps.append((name, answer, good, mark, now))
            return now

        mark = len(s.gateway.exchanges())
        a = s.gateway.get_value(SERVER_ID)
        mark = step("plain read", a, a.isdigit(), mark)
        a = s.gateway.load_credentials(SERVER_ID, bytes(range(16)), creds.meter_cert, creds.meter_key,
                                       creds.gateway_cert, creds.gateway_key)
        mark = step("SYM pairing", a, "successfully" in a, mark)
        a = s.gateway.get_value(SERVER_ID)
        mark = step("plain read, paired", a, a == "Disconnected Mode", mark)
        a = s.gateway.get_value(SERVER_ID, tls=True)
        mark = step("TLS handshake+read", a, a.isdigit(), mark)
        reads = []
        for _ in range(args.reads):
            a = s.gateway.get_value(SERVER_ID, tls=True)
            mark = step("TLS read", a, a.isdigit(), mark)
        ex = s.gateway.exchanges()
        for name, answer, good, begin, end in steps:
            uni = _unicast(ex, begin)
            uni = [i for i in uni if i < end]
            span = _span(ex, uni[0], uni[-1] + 1) * 1000 if uni else float("nan")
            if name == "TLS read":
                reads.append(span)
                continue
            print(f"{name:19s} {'pass' if good else 'FAIL'}  {span:7.1f} ms on the wire, {len(uni):3d} polls  "
                  f"-> {answer}")
        if reads:
            print(f"TLS read x{len(reads):<3d}       {'pass' if all(g for n, _, g, _, _ in steps) else 'FAIL'}  "
                  f"median {statistics.median(reads):.1f} ms, max {max(reads):.1f} ms")
        report = wire_report(ex)
        print(f"wire discipline     {'pass' if not report['problems'] else 'FAIL'}  "
              f"{report['unicast_exchanges']} unicast exchanges, longest RNR run {report['longest_rnr_run']}, "
              f"{len(report['problems'])} problems")
        for p in report["problems"]:
            print("   ", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
