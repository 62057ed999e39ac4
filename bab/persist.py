"""Crash-safe persistence: every file BAB keeps in its state dir is written through :func:`atomic_write`.

The new content goes to a temporary file in the same directory, is fsync'ed, renamed over the old file, and
the directory is fsync'ed, so after a power cut the file holds either the old or the new content, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: How a component writes a state file: ``writer(path, data, mode)``. :func:`atomic_write` writes at once;
#: a :class:`WriteBehind` hands the same write to a worker thread.
Writer = Callable[[Path, bytes, int], None]


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the file gets permission ``mode``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: str | os.PathLike[str], obj: Any, mode: int = 0o600) -> None:
    """Atomically write ``obj`` as JSON."""
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode() + b"\n", mode)


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON state file; a missing file gives ``default``. A corrupt file raises ValueError."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt state file ({exc})") from None


class WriteBehind:
    """Ordered atomic writes on one worker thread: an fsync (tens of ms on an SD card) must not stall the event
    loop that times the LMN's 10 ms broadcast slots. The caller encodes the data (a snapshot) on its own thread;
    writes happen in submission order; :meth:`flush` waits for all of them (call it before exiting)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bab-persist")
        self._lock = threading.Lock()
        self.errors = 0

    def __call__(self, path: Path, data: bytes, mode: int = 0o600) -> None:
        self._pool.submit(self._write, Path(path), bytes(data), mode)

    def _write(self, path: Path, data: bytes, mode: int) -> None:
        try:
            atomic_write(path, data, mode)
        except OSError as exc:
            with self._lock:
                self.errors += 1
            log.error("cannot write %s: %s", path, exc)

    def flush(self) -> None:
        """Wait until every submitted write is on disk."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
