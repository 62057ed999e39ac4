"""Scenario files: a lab's test procedure as a timeline of commands to the lab meter, in YAML.

::

    description: bad frames, then a busy meter, then a magnet
    steps:
      - {at: 0,  meter: "1BAB0012345678", fault: {kind: bad_fcs, probability: 0.2}}
      - {at: 30, meter: "1BAB0012345678", clear: bad_fcs}        # a kind, or "all"
      - {at: 30, meter: "1BAB0012345678", fault: {kind: rnr, seconds: 5}}
      - {at: 40, meter: "1BAB0012345678", set: {"1-0:1.8.0": 12400.5}}
      - {at: 50, meter: "1BAB0012345678", status: {MAGNETIC: on}}   # on, off, or auto

``at`` is seconds after the scenario was started (``bab sim scenario FILE``). Each step has exactly one of
``fault``, ``clear``, ``set``, ``status``. The file is validated as a whole before anything runs, like the main
configuration (errors name file, line and key): unknown meters, fault kinds, parameters, OBIS codes, status
bits; ``set`` needs a simulated meter (except for the seconds index 1-0:94.49.0*1).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bab.cosem.status_word import StatusBit
from bab.obis import Obis
from bab.schema import ConfigError, Custom, DictOf, Float, ListOf, Map, Nullable, Str, load_yaml

from .catalogue import FAULT, KINDS

ACTIONS = ("fault", "clear", "set", "status")
SECONDS_INDEX = Obis(1, 0, 94, 49, 0, 1)  # settable on any meter (bab.cosem.base_meter.SECONDS_INDEX)


def status_bit(value: Any) -> int:
    """A status word bit by name (``MAGNETIC``, case-insensitive) or number (0..31); returns its mask."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 31:
            raise ValueError("a status word bit is 0..31")
        return 1 << value
    text = str(value).strip().upper()
    if text.isdigit():
        return status_bit(int(text))
    if text in StatusBit.__members__:
        return int(StatusBit[text])
    raise ValueError(f"no status bit {value!r} (bits: {', '.join(StatusBit.__members__)}, or 0..31)")


def switch(value: Any) -> bool | None:
    """``on``/``off`` (YAML booleans, true/false) or ``auto`` (back to what BAB computes): True/False/None."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "true", "1", "yes"):
        return True
    if text in ("off", "false", "0", "no"):
        return False
    if text == "auto":
        return None
    raise ValueError(f"expected on, off or auto, got {value!r}")


def _number(value: Any) -> str:
    from legacy_drivers.simulated import _number as number

    return str(number(value))


@dataclass(frozen=True)
class Step:
    at: float
    meter: str
    action: str  # one of ACTIONS
    value: Any
    line: int | None = None


def schema(meters: Collection[str], simulated: Collection[str]) -> Map:
    """The scenario schema for a daemon presenting ``meters`` (of which ``simulated`` have a simulated driver)."""

    def check(step: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
        given = [a for a in ACTIONS if step[a] is not None]
        if len(given) != 1:
            return ((given[1],) if len(given) > 1 else ("at",)), \
                f"a step has exactly one of {', '.join(ACTIONS)} (got {', '.join(given) or 'none'})"
        if step["meter"] not in meters:
            return ("meter",), f"unknown meter {step['meter']!r} (meters: {', '.join(meters) or 'none'})"
        if step["clear"] is not None and step["clear"] != "all" and step["clear"] not in KINDS:
            return ("clear",), f"expected 'all' or a fault kind ({', '.join(KINDS)}), got {step['clear']!r}"
        if step["set"] is not None and step["meter"] not in simulated \
                and any(obis != SECONDS_INDEX for obis in step["set"]):
            return ("set",), "only a simulated meter's registers can be set (its seconds index can)"
        return None

    step = Map(check=check, fields={
        "at": Float(doc="seconds after the scenario started", min=0.0, max=31_536_000.0),
        "meter": Str(doc="meter ID"),
        "fault": Nullable(FAULT, default=None),
        "clear": Nullable(Str(), doc="a fault kind, or all", default=None),
        "set": Nullable(DictOf(key=Custom(convert=lambda v: Obis.parse(str(v)), what="an OBIS code"),
                               value=Custom(convert=_number, what="a number")), default=None),
        "status": Nullable(DictOf(key=Custom(convert=status_bit, what="a status bit name or number"),
                                  value=Custom(convert=switch, what="on, off or auto")), default=None),
    })
    return Map(fields={"description": Str(doc="what the scenario tests", default=""),
                       "steps": ListOf(step, min_items=1)})



def load_scenario(text: str, source: str, meters: Collection[str], simulated: Collection[str]) -> list[Step]:
    """Validate a scenario; returns its steps in time order. Raises :class:`~bab.schema.ConfigError`."""
    raw = load_yaml(text, schema(meters, simulated), source)
    steps = []
    for s in raw["steps"]:
        action = next(a for a in ACTIONS if s[a] is not None)
        steps.append(Step(s["at"], s["meter"], action, s[action]))
    return sorted(steps, key=lambda s: s.at)


def read_scenario(path_or_text: str) -> tuple[str, str]:
    """(text, source name): a file's contents, or the argument itself when it is YAML text, not a file name."""
    if "\n" not in path_or_text:
        p = Path(path_or_text)
        try:
            return p.read_text(encoding="utf-8"), str(p)
        except FileNotFoundError:
            raise ConfigError("no such scenario file", file=str(p)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", file=str(p)) from None
    return path_or_text, "<scenario>"


Scheduler = Callable[[float, Callable[[], None]], object]
