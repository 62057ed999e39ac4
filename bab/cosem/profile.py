"""The 15-minute register profile (load profile) served with SML_GetProfileList (LMN-STACK.md 6.3, 7).

A bounded ring buffer of captures: at the end of every period (default 900 s, aligned to UTC) the daemon's
periodic call :meth:`ProfileBuffer.capture` stores the energy registers with their scaler, unit and status,
the UTC time of the period end and the seconds index. The buffer keeps the newest ``depth`` captures and is
persisted atomically (bab.persist) after every capture, so a power cut loses at most the capture in progress.
Sans-I/O with respect to time: ``capture`` gets the wall-clock time and the seconds index passed in.
Periods missed while BAB was off are not back-filled (there were no readings); a wall clock stepped back is
ignored until it passes the last capture. The default depth (7 days = 672 entries) keeps the compact JSON
file near 70 kB, rewritten 96 times a day: moderate SD-card wear. Raise ``depth`` if the gateway needs more history.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bab.obis import Obis
from bab.persist import Writer, atomic_write, read_json
from bab.reading import Reading

log = logging.getLogger("bab.cosem.profile")

#: The profile object (COSEM "profile generic" 1-0:99.1.0*255, load profile 1), class 7.
PROFILE_OBIS = Obis(1, 0, 99, 1, 0, 255)
PROFILE_FILE = "profile.json"


@dataclass(frozen=True, slots=True)
class ProfileValue:
    obis: Obis
    value: int
    scaler: int
    unit: int
    status: int = 0


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One capture: the end of its period (UTC seconds), the seconds index then, and the register values."""

    time: int
    sec_index: int
    status: int
    values: tuple[ProfileValue, ...]

    def to_json(self) -> dict:
        return {"t": self.time, "s": self.sec_index, "st": self.status,
                "v": [[str(v.obis), v.value, v.scaler, v.unit, v.status] for v in self.values]}

    @classmethod
    def from_json(cls, d: dict) -> ProfileEntry:
        values = tuple(ProfileValue(Obis.parse(o), int(v), int(sc), int(u), int(st)) for o, v, sc, u, st in d["v"])
        return cls(int(d["t"]), int(d["s"]), int(d["st"]), values)


class ProfileBuffer:
    """A persisted ring buffer of period captures (newest last)."""

    def __init__(self, state_dir: Path | str, *, period: int = 900, depth: int = 96 * 7,
                 objects: Iterable[Obis] = (Obis(1, 0, 1, 8, 0), Obis(1, 0, 2, 8, 0)),
                 writer: Writer = atomic_write) -> None:
        self.writer = writer
        if period <= 0 or depth <= 0:
            raise ValueError("period and depth must be > 0")
        self.path = Path(state_dir) / PROFILE_FILE
        self.period = period
        self.depth = depth
        self.objects = tuple(objects)
        self.entries: deque[ProfileEntry] = deque(maxlen=depth)
        self.write_errors = 0
        self._load()

    def _load(self) -> None:
        try:
            data = read_json(self.path, default=None)
        except (ValueError, OSError) as exc:
            log.error("profile: %s; starting with an empty profile", exc)
            return
        if data is None:
            return
        try:
            if data.get("period") != self.period:
                log.warning("profile: stored period %s != %s; starting empty", data.get("period"), self.period)
                return
            entries = [ProfileEntry.from_json(e) for e in data["entries"]]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            log.error("profile: %s is malformed (%s); starting empty", self.path, exc)
            return
        entries.sort(key=lambda e: e.time)
        self.entries.extend(entries[-self.depth:])

    @property
    def last_time(self) -> int | None:
        return self.entries[-1].time if self.entries else None

    def due(self, wall_time: float) -> int | None:
        """The period end to capture at ``wall_time``, or None if that period is already captured."""
        end = int(wall_time) // self.period * self.period
        last = self.last_time
        if last is not None and end <= last:
            return None
        return end

    def capture(self, wall_time: float, sec_index: int, readings: dict[Obis, Reading | None],
                status: int = 0) -> ProfileEntry | None:
        """Capture the registers if a period boundary has passed since the last capture (call every few
        seconds). Returns the new entry or None. ``readings`` maps the profile objects to their current values
        (a missing register is left out of the entry)."""
        end = self.due(wall_time)
        if end is None:
            return None
        values = tuple(ProfileValue(o, r.value, r.scaler, int(r.unit), int(r.status) & 0xFF)
                       for o in self.objects if (r := readings.get(o)) is not None)
        entry = ProfileEntry(end, sec_index, status, values)
        self.entries.append(entry)
        self._save()
        return entry

    def _save(self) -> None:
        data = {"period": self.period, "entries": [e.to_json() for e in self.entries]}
        try:
            self.writer(self.path, json.dumps(data, separators=(",", ":")).encode() + b"\n", 0o600)
        except OSError as exc:
            self.write_errors += 1
            log.error("profile: cannot persist %s: %s", self.path, exc)

    def select(self, begin: int | None = None, end: int | None = None, *, by_index: bool = False,
               limit: int | None = None) -> list[ProfileEntry]:
        """Entries with ``begin <= time <= end`` (UTC seconds, or seconds index when ``by_index``)."""
        out = []
        for e in self.entries:
            key = e.sec_index if by_index else e.time
            if (begin is None or key >= begin) and (end is None or key <= end):
                out.append(e)
        return out[:limit] if limit is not None else out
