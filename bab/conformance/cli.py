"""``bab conformance``: run the suite against the meters on a port and write the report."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("conformance", help="LMN conformance suite against the meter(s) on a port (docs/conformance.md)")
    p.add_argument("--port", required=True, help="LMN port: /dev/ttyUSB0, socket://HOST:PORT, any pyserial URL; "
                   "'sim:' tests BAB's own meter in-process on the virtual bus")
    p.add_argument("--meter", help="meter ID to test (default: the first meter that registers)")
    p.add_argument("--master-key", help="file with the meter's master key (SYM cases, then TLS after pairing)")
    p.add_argument("--gateway-key", help="gateway TLS key (PEM) the meter pins (TLS cases without pairing)")
    p.add_argument("--gateway-cert", help="gateway TLS certificate (PEM)")
    p.add_argument("--meter-cert", help="the meter's TLS certificate (PEM) to pin")
    p.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    p.add_argument("--report", action="append", default=[], help="write a report: FILE.json or FILE.html "
                   "(repeatable)")
    p.add_argument("--case-timeout", type=float, metavar="S",
                   help="lower every case's time bound (default 60 s) to S seconds")
    p.add_argument("--state-dir", help="where the software gateway keeps its keys (default: a temporary directory)")
    p.add_argument("--baudrate", type=int, default=921600)
    p.add_argument("--slot-tolerance", type=float, default=2.0, metavar="MS",
                   help="slack for the slot measurements on a real port (read latency; default 2 ms)")
    p.add_argument("--tls-session-lifetime", type=float, metavar="S",
                   help="the meter's TLS session lifetime in seconds (default 744 h, the LMN's; with --port sim: "
                   "the lab meter's 2 s)")
    p.add_argument("--max-wait", type=float, default=300.0, metavar="S",
                   help="longest wait for the session lifetime to pass; longer: the DURATION cases are skipped "
                   "(default 300 s)")
    p.add_argument("--no-optional", action="store_true",
                   help="leave out the optional cases (TaSK's recommended profiles)")
    p.add_argument("--sim-fault", action="append", default=[], metavar="KIND",
                   help="with --port sim: switch this lab fault on in BAB's meter (repeatable)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.set_defaults(func=cmd_conformance)


def cmd_conformance(args: argparse.Namespace) -> int:
    bab_log = logging.getLogger("bab")
    level = bab_log.level
    bab_log.setLevel(logging.ERROR)  # the meter's refusals are the report's business, not the console's
    try:
        return _run(args)
    finally:
        bab_log.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    from bab.meter_id import MeterId

    from .case import CASES
    from .link import SerialLink
    from .report import table, write
    from .runner import Options, Session, exit_code, run_suite, select
    from .tester import Tester

    if args.list:
        for c in CASES.values():
            optional = f" (optional: {c.optional})" if c.optional else ""
            print(f"{c.id:16} {c.group:5} {c.title}{optional}  [{c.reference}]")
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="bab-conformance-")
    try:
        cases = select(args.case or None, optional=not args.no_optional)
        opts = Options(state_dir=Path(args.state_dir or tmp.name) / "gateway", max_case_seconds=args.case_timeout,
                       max_wait=args.max_wait)
        if args.tls_session_lifetime is not None:
            if args.tls_session_lifetime <= 0:
                raise ValueError("--tls-session-lifetime must be positive")
            opts.tls_session_lifetime = args.tls_session_lifetime
        if args.meter:
            opts.meter = MeterId.parse(args.meter).server_id
        if args.master_key:
            from bab.sym import read_master_key

            opts.master_key = read_master_key(args.master_key)
        if args.gateway_key or args.gateway_cert or args.meter_cert:
            if not (args.gateway_key and args.gateway_cert and args.meter_cert):
                raise ValueError("--gateway-key, --gateway-cert and --meter-cert go together")
            opts.gateway_key_pem = Path(args.gateway_key).read_bytes()
            opts.gateway_cert_pem = Path(args.gateway_cert).read_bytes()
            opts.meter_cert_pem = Path(args.meter_cert).read_bytes()
        if args.port.startswith("sim:"):
            from .lab import LAB_SESSION_LIFETIME, TEST_MASTER_KEY, BabLab

            lifetime = int(args.tls_session_lifetime or LAB_SESSION_LIFETIME)
            opts.tls_session_lifetime = lifetime
            lab = BabLab(Path(tmp.name) / "bab", faults=[{"kind": k} for k in args.sim_fault] or None,
                         session_lifetime=lifetime)
            tester = lab.tester()
            if opts.master_key is None:
                opts.master_key = TEST_MASTER_KEY
            where = "BAB in-process (virtual bus, virtual time)"
        else:
            tester = Tester()
            tester.attach(SerialLink(args.port, tester.node, baudrate=args.baudrate,
                                     timing_tolerance=args.slot_tolerance / 1000))
            where = args.port
        results = run_suite(Session(tester, opts), cases)
        tester.link.close()
    except (OSError, ValueError, KeyError) as exc:
        print(f"bab conformance: {exc}")
        return 2
    finally:
        tmp.cleanup()
    print(table(results))
    meta = {"port": where, "meter": args.meter or "first registered",
            "gateway_timing": "broadcasts every 3 s (0.5 s while empty), presence check every 2 s, reply timeout "
                              "0.75 s; slot grid 10 ms / 5 ms (faster periods than the reference gateway's 14 s / "
                              "15 s: the spec leaves them to the gateway)",
            "slot_tolerance_ms": 0.0 if args.port.startswith("sim:") else args.slot_tolerance}
    for path in args.report:
        write(Path(path), results, meta)
    return exit_code(results)
