"""``bab sim``: the lab meter's commands, sent to the running daemon over its status socket.

``bab sim show [METER]``, ``set METER OBIS VALUE``, ``status METER BIT on|off|auto``,
``fault METER KIND [key=value ...]``, ``clear METER [KIND]``, ``scenario FILE``; each with ``--socket PATH``
and ``--json``. A refused command prints the daemon's reason and exits 2; nothing was changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

import yaml

from bab.status import StatusError, query_socket

EXIT_REFUSED = 2


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` words -> parameters; values are read as YAML scalars (``0.2`` a number, ``true`` a bool)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {pair!r}")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    return params


def request_for(args: argparse.Namespace) -> dict[str, Any]:
    action = args.sim_action
    if action == "show":
        return {"command": "sim.show", **({"meter": args.meter} if args.meter else {})}
    if action == "set":
        return {"command": "sim.set", "meter": args.meter, "obis": args.obis, "value": args.value}
    if action == "status":
        return {"command": "sim.status", "meter": args.meter, "bit": args.bit, "on": args.state}
    if action == "fault":
        return {"command": "sim.fault", "meter": args.meter, "kind": args.kind, "params": parse_params(args.params)}
    if action == "clear":
        return {"command": "sim.clear", "meter": args.meter, **({"kind": args.kind} if args.kind else {})}
    text = args.file
    if text != "-" and os.path.exists(text):
        text = os.path.abspath(text)  # the daemon reads it: its working directory is not ours
    elif text == "-":
        text = sys.stdin.read()
    return {"command": "sim.scenario", "scenario": text}


def render(action: str, result: dict[str, Any]) -> str:
    """A command's answer for people."""
    if action == "show":
        lines = []
        for m in result.get("meters", []):
            lines.append(f"Meter {m['id']} ({m['driver']}{', reduced data set' if m.get('reduced') else ''})")
            for obis, value in (m.get("registers") or {}).items():
                lines.append(f"  {obis:<16} {value}")
            bits = ", ".join(m.get("status_bits") or []) or "none"
            lines.append(f"  status word {m['status_word']} ({bits}); seconds index {m['seconds_index']}")
            faults = "; ".join(_fault_text(f) for f in m.get("faults") or []) or "none"
            lines.append(f"  faults: {faults}")
            injected = m.get("injected") or {}
            if injected:
                lines.append("  injected: " + ", ".join(f"{k} {v}" for k, v in injected.items()))
        return "\n".join(lines) + "\n"
    if action == "fault":
        return f"{result['meter']}: {_fault_text(result['fault'])} on\n"
    if action == "clear":
        return f"{result['meter']}: cleared {', '.join(result['cleared']) or 'nothing (no such fault was on)'}\n"
    if action == "set":
        return f"{result['meter']}: {result['obis']} = {result['value']}\n"
    if action == "status":
        return f"{result['meter']}: {result['bit']} {result['state']}, status word {result['status_word']}\n"
    return f"scenario {result['scenario']}: {result['steps']} steps over {result['duration_s']:g} s started\n"


def _fault_text(f: dict[str, Any]) -> str:
    extra = [f"{k}={v}" for k, v in (f.get("params") or {}).items()]
    if f.get("probability", 1) != 1:
        extra.append(f"probability={f['probability']}")
    if f.get("count") is not None:
        extra.append(f"count={f['count']}")
    return f"{f['kind']}" + (f" ({', '.join(extra)})" if extra else "")


def sim_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        request = request_for(args)
    except ValueError as exc:
        print(f"bab sim: {exc}", file=err)
        return EXIT_REFUSED
    try:
        answer = query_socket(args.socket, request)
    except StatusError as exc:
        message = str(exc).removeprefix("the daemon reported: ")
        print(f"bab sim {args.sim_action}: {message}", file=err)
        return EXIT_REFUSED if "reported" in str(exc) else exc.exit_code
    result = answer.get("result", {})
    if args.json:
        out.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render(args.sim_action, result))
    return 0


def add_parser(sub: Any) -> None:
    """The ``bab sim`` subcommands (for :func:`bab.cli.build_parser`)."""
    sim = sub.add_parser("sim", help="the lab meter: values, status bits and faults of a running daemon")
    actions = sim.add_subparsers(dest="sim_action", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--socket", help="status socket (default: $BAB_STATUS_SOCKET or /run/bab/status.sock)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=sim_command)
        return p

    p = common(actions.add_parser("show", help="values, status word, seconds index and faults"))
    p.add_argument("meter", nargs="?")
    p = common(actions.add_parser("set", help="set a simulated register (or the seconds index 1-0:94.49.0*1)"))
    p.add_argument("meter")
    p.add_argument("obis")
    p.add_argument("value")
    p = common(actions.add_parser("status", help="force a status word bit on or off (auto: as computed)"))
    p.add_argument("meter")
    p.add_argument("bit", help="a bit name (MAGNETIC, TERMINAL_COVER, POWER_FAILURE, ...) or number")
    p.add_argument("state", choices=["on", "off", "auto"])
    p = common(actions.add_parser("fault", help="switch a fault on: KIND [key=value ...] (docs/simulator.md)"))
    p.add_argument("meter")
    p.add_argument("kind")
    p.add_argument("params", nargs="*", metavar="key=value", help="the kind's parameters, probability, count")
    p = common(actions.add_parser("clear", help="switch off a fault kind, or all of the meter's faults"))
    p.add_argument("meter")
    p.add_argument("kind", nargs="?")
    p = common(actions.add_parser("scenario", help="validate and start a scenario file (- reads stdin)"))
    p.add_argument("file")
