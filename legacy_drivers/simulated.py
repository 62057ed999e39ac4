"""The simulated meter: the lab meter's metrology, with values a lab sets, schedules and replays.

Used by ``bab demo``, by the tests, and by test labs that need a meter with known values (``docs/simulator.md``):

* ``registers``: the start values (OBIS -> value in kWh, W, V, A, Hz); :meth:`SimulatedDriver.set_value`
  changes one at run time (``bab sim set``);
* ``advance``: 1.8.0/2.8.0 grow with the 16.7.0 power;
* ``steps`` (+ ``repeat``): a stepwise profile, registers that take given values at given seconds after start;
* ``replay``: a CSV file of ``time,value`` rows (seconds after start, value) replayed into one register;
* ``digits``: energy registers roll over to 0 at ``10**digits`` kWh, as a meter's register with that many
  digits before the decimal point;
* ``monotonic: false``: a backwards jump or a rollover reaches the gateway as it is (by default BAB keeps
  the old value and sets the WENT_BACKWARDS status bit, as for any legacy meter);
* ``reduced``: the reduced data set of an EDL meter without PIN (energy registers only, health "reduced
  data set", status word bit REDUCED).

Schedules are applied every ``interval`` seconds (the driver's publishing period).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from bab.obis import Obis
from bab.reading import Reading
from bab.schema import Bool, Custom, DictOf, Float, Int, ListOf, Map, Nullable, Str

from .api import Driver, DriverContext, Health, ReadingSink

# Unit symbol for the quantities the simulated meter knows; others are unit-less counts.
_UNITS = {(1, 8): "kWh", (2, 8): "kWh", (16, 7): "W", (36, 7): "W", (56, 7): "W", (76, 7): "W",
          (32, 7): "V", (52, 7): "V", (72, 7): "V", (31, 7): "A", (51, 7): "A", (71, 7): "A", (14, 7): "Hz"}


def unit_symbol(obis: Obis) -> str:
    """The unit a simulated register of this OBIS code is configured in (energy kWh, power W, ...)."""
    if obis.c in (1, 2) and obis.d == 8:
        return "kWh"
    return _UNITS.get((obis.c, obis.d), "")


def _is_energy(obis: Obis) -> bool:
    return obis.a == 1 and obis.d == 8


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _obis(value: Any) -> Obis:
    return Obis.parse(str(value))


def read_replay(path: str | Path) -> list[tuple[float, Decimal]]:
    """The rows of a replay CSV: ``time,value`` per line (seconds after start, ascending), ``#`` comments and
    one header line allowed. Raises ValueError naming the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    rows: list[tuple[float, Decimal]] = []
    for n, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) != 2:
            raise ValueError(f"{path}:{n}: expected 'time,value', got {','.join(row)!r}")
        try:
            t = float(row[0])
            v = _number(row[1].strip())
        except ValueError as exc:
            if n == 1 and not rows:
                continue  # a header line
            raise ValueError(f"{path}:{n}: {exc}") from None
        if t < 0 or (rows and t < rows[-1][0]):
            raise ValueError(f"{path}:{n}: times must be >= 0 and ascending")
        rows.append((t, v))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


_REGISTERS = DictOf(key=Custom(convert=_obis, what="an OBIS code such as '1-0:1.8.0'"),
                    value=Custom(convert=_number, what="a number"),
                    doc="OBIS code -> value (energy in kWh, power in W, voltage in V, current in A)")


class SimulatedDriver(Driver):
    """A meter whose values come from the YAML options and from run-time commands (see the module docstring)."""

    options_schema = {
        "registers": DictOf(
            key=_REGISTERS.key, value=_REGISTERS.value, doc=_REGISTERS.doc,
            default=lambda: {Obis.parse("1-0:1.8.0"): Decimal("12345.678"), Obis.parse("1-0:2.8.0"): Decimal(0),
                             Obis.parse("1-0:16.7.0"): Decimal("432.1")},
        ),
        "interval": Float(doc="seconds between published readings", default=1.0, min=0.05),
        "advance": Bool(doc="advance 1.8.0/2.8.0 with the configured 16.7.0 power", default=False),
        "steps": ListOf(Map(fields={
            "at": Float(doc="seconds after start", min=0.0),
            "registers": DictOf(key=_REGISTERS.key, value=_REGISTERS.value, doc="values from then on"),
        }), doc="stepwise profile: registers that take these values at these times", default=list),
        "repeat": Nullable(Float(min=0.1), doc="seconds after which the steps start again (null: once)",
                           default=None),
        "replay": Nullable(Map(fields={
            "file": Str(doc="CSV file of time,value rows (seconds after start, value)"),
            "obis": Custom(convert=_obis, what="an OBIS code", doc="the register replayed"),
            "loop": Bool(doc="start again after the last row", default=False),
        }), doc="a register replayed from a CSV file", default=None),
        "digits": Nullable(Int(min=1, max=12), doc="digits before the decimal point of the energy registers "
                           "(kWh): they roll over to 0 at 10**digits", default=None),
        "monotonic": Bool(doc="false: a backwards jump or rollover reaches the gateway as it is (true: BAB keeps "
                          "the old value and sets WENT_BACKWARDS)", default=True),
        "reduced": Bool(doc="reduced data set (EDL without PIN): only the energy registers", default=False),
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], meter_id: str) -> tuple[str, str] | None:
        replay = options.get("replay")
        if replay:
            try:
                read_replay(replay["file"])
            except ValueError as exc:
                return "replay", str(exc)
        return None

    def __init__(self, options: Mapping[str, Any], context: DriverContext) -> None:
        super().__init__(options, context)
        self.values: dict[Obis, Decimal] = {}
        self.digits: int | None = options.get("digits")
        self.monotonic = bool(options.get("monotonic", True))
        self.reduced = bool(options.get("reduced", False))
        for obis, value in (options.get("registers") or {}).items():
            self.values[obis] = self._wrap(obis, value)
        self.fault: Health | None = None  # a forced fault state for gateway tests (stale, source lost)
        self._changed = asyncio.Event()
        self.steps = sorted(options.get("steps") or [], key=lambda s: s["at"])
        self.repeat: float | None = options.get("repeat")
        replay = options.get("replay")
        self.replay_obis: Obis | None = replay["obis"] if replay else None
        self.replay_loop = bool(replay and replay["loop"])
        self.replay_rows = read_replay(replay["file"]) if replay else []
        self._applied: dict[str, tuple[int, int]] = {}  # schedule -> (cycle, row) last applied

    # --- run-time control (bab.sim.control) ---------------------------------------------------------------

    def set_value(self, obis: Obis | str, value: Decimal | float | int | str) -> Decimal:
        """Change a register at run time (seen by the gateway on its next poll); returns the value kept
        (rolled over at ``digits``)."""
        if isinstance(obis, str):
            obis = Obis.parse(obis)
        kept = self._wrap(obis, _number(value))
        self.values[obis] = kept
        self._changed.set()
        return kept

    def set_reduced(self, on: bool) -> None:
        self.reduced = on
        self._changed.set()

    def set_fault(self, fault: Health | None) -> None:
        self.fault = fault
        self._changed.set()

    # --- values -------------------------------------------------------------------------------------------

    def _wrap(self, obis: Obis, value: Decimal) -> Decimal:
        if self.digits is not None and _is_energy(obis):
            return value % (Decimal(10) ** self.digits)
        return value

    def readings(self, now: float) -> list[Reading]:
        return [Reading.from_text(obis, value, unit_symbol(obis), time=now) for obis, value in self.values.items()
                if not self.reduced or _is_energy(obis)]

    def apply_schedule(self, t: float) -> None:
        """Apply the steps and the replay row due at ``t`` seconds after start (each row once per cycle)."""
        if self.steps:
            cycle, pos = self._position(t, [s["at"] for s in self.steps], self.repeat)
            if pos >= 0 and self._applied.get("steps") != (cycle, pos):
                self._applied["steps"] = (cycle, pos)
                for obis, value in self.steps[pos]["registers"].items():
                    self.values[obis] = self._wrap(obis, value)
        if self.replay_rows and self.replay_obis is not None:
            times = [r[0] for r in self.replay_rows]
            period = times[-1] if self.replay_loop and times[-1] > 0 else None
            cycle, pos = self._position(t, times, period)
            if pos >= 0 and self._applied.get("replay") != (cycle, pos):
                self._applied["replay"] = (cycle, pos)
                self.values[self.replay_obis] = self._wrap(self.replay_obis, self.replay_rows[pos][1])

    @staticmethod
    def _position(t: float, times: list[float], period: float | None) -> tuple[int, int]:
        cycle = 0
        if period:
            cycle, t = int(t // period), t % period
        pos = -1
        for i, at in enumerate(times):
            if at <= t:
                pos = i
        return cycle, pos

    def _advance(self, seconds: float) -> None:
        power = self.values.get(Obis(1, 0, 16, 7, 0))
        if power is None:
            return
        kwh = power * Decimal(str(seconds)) / Decimal(3_600_000)
        key = Obis(1, 0, 1, 8, 0) if power >= 0 else Obis(1, 0, 2, 8, 0)
        if key in self.values:
            self.values[key] = self._wrap(key, self.values[key] + abs(kwh).quantize(Decimal("0.000001")))

    async def run(self, sink: ReadingSink) -> None:
        sink.set_health(Health.STARTING)
        start = last = time.monotonic()
        health: tuple[Health, str] | None = None
        while True:
            now = time.monotonic()
            self.apply_schedule(now - start)
            if self.options.get("advance"):
                self._advance(now - last)
            last = now
            want = (self.fault, "simulated fault") if self.fault else \
                (Health.REDUCED, "simulated reduced data set") if self.reduced else (Health.OK, "")
            if want != health:
                health = want
                sink.set_health(*want)
            if self.fault is None:
                sink.publish(self.readings(time.time()))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.get("interval", 1.0)):
                    await self._changed.wait()


__all__ = ["SimulatedDriver", "DriverContext", "read_replay"]
