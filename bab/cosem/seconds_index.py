"""The meter's seconds index 1-0:94.49.0*1 (LMN-STACK.md 7: the time base of a base meter), monotonic across
restarts and power cuts.

The index counts seconds; it never goes backwards. Sans-I/O with respect to time: every method takes ``now``,
a monotonic clock reading of the caller (the daemon's event-loop clock). Persistence (bab.persist, atomic):

* :meth:`SecondsIndex.tick` writes the current index every ``persist_every`` seconds, alternating between two
  files (``seconds_index.a.json`` / ``.b.json``) so that even a file damaged outside our control leaves the other.
* :meth:`SecondsIndex.shutdown` writes the exact index with ``clean: true``.
* At start the largest valid stored index is taken. After a clean shutdown the index resumes at
  ``stored + 1``. Otherwise (power cut, crash) up to ``persist_every`` seconds may have been counted after the
  last write, so it resumes at ``stored + persist_every + 1`` (the safety step) and ``resumed_unclean`` is set
  (reported in the status word, bit INDEX_RESUMED). Either way the index is strictly above anything served
  before the stop.
* No file (first start) starts at ``initial`` (default 1). Corrupt files are logged and ignored; if every file
  is corrupt the index starts at ``initial`` and ``resumed_unclean`` is set.

The time a BAB is powered off is not counted (there is no RTC to measure it); the seconds index is a
monotonic counter, not a clock.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bab.persist import Writer, atomic_write, read_json

log = logging.getLogger("bab.cosem.seconds_index")

_FILES = ("seconds_index.a.json", "seconds_index.b.json")
MAX_INDEX = 0xFFFFFFFF  # Unsigned32 on the wire


class SecondsIndex:
    """A persisted monotonic seconds counter (see the module docstring)."""

    def __init__(self, state_dir: Path | str, now: float, *, persist_every: float = 60.0, initial: int = 1,
                 writer: Writer = atomic_write) -> None:
        if persist_every <= 0:
            raise ValueError("persist_every must be > 0")
        self.state_dir = Path(state_dir)
        self.persist_every = persist_every
        self.resumed_unclean = False
        self.write_errors = 0
        self._next_slot = 0
        stored, clean = self._load()
        if stored is None:
            base = initial
        elif clean:
            base = stored + 1
        else:
            base = stored + int(persist_every) + 1
            self.resumed_unclean = True
        self._base = min(base, MAX_INDEX)
        self._start = now
        self._last = self._base
        self._last_persist = now
        self.writer: Writer = atomic_write
        self._persist(now, clean=False)  # the new base is on disk before anything is served
        self.writer = writer  # periodic writes may go behind (a queued write lags by milliseconds at most)

    def _load(self) -> tuple[int | None, bool]:
        best: tuple[int, bool] | None = None
        corrupt = 0
        for i, name in enumerate(_FILES):
            try:
                data = read_json(self.state_dir / name)
            except (ValueError, OSError) as exc:
                log.error("seconds index: %s", exc)
                corrupt += 1
                continue
            if data is None:
                continue
            idx = data.get("index") if isinstance(data, dict) else None
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= MAX_INDEX:
                log.error("seconds index: %s has no valid index", self.state_dir / name)
                corrupt += 1
                continue
            clean = data.get("clean") is True
            if best is None or idx > best[0]:
                best = (idx, clean)
                self._next_slot = 1 - i  # overwrite the older file next
        if best is None:
            if corrupt:
                self.resumed_unclean = True
            return None, False
        if corrupt:
            return best[0], False  # the other file may have held a newer value: take the safety step
        return best

    def value(self, now: float) -> int:
        """The index at ``now`` (never less than any value returned before)."""
        v = self._base + int(max(0.0, now - self._start))
        if v < self._last:
            v = self._last
        self._last = min(v, MAX_INDEX)
        return self._last

    def jump(self, index: int, now: float) -> None:
        """Set the index to ``index`` at ``now`` (the lab meter's "as after a reset"; it may go backwards, which a
        real BAB never does) and persist it, so a restart continues from there."""
        if not 0 <= index <= MAX_INDEX:
            raise ValueError(f"a seconds index is 0..{MAX_INDEX}")
        self._base, self._start, self._last = index, now, index
        self._persist(now, clean=False)
        self._persist(now, clean=False)  # both files: a restart must not pick up an older, larger index

    def tick(self, now: float) -> None:
        """Call periodically (e.g. every second): persists the index every ``persist_every`` seconds."""
        if now - self._last_persist >= self.persist_every or now < self._last_persist:
            self._persist(now, clean=False)

    def shutdown(self, now: float) -> None:
        """Persist the exact index for a clean restart (call when the daemon stops)."""
        self._persist(now, clean=True)

    def _persist(self, now: float, *, clean: bool) -> None:
        value = self.value(now)
        try:
            data = json.dumps({"index": value, "clean": clean}, indent=1, sort_keys=True).encode() + b"\n"
            self.writer(self.state_dir / _FILES[self._next_slot], data, 0o600)
        except OSError as exc:
            self.write_errors += 1
            log.error("seconds index: cannot persist to %s: %s", self.state_dir, exc)
            return
        self._next_slot = 1 - self._next_slot
        self._last_persist = now
