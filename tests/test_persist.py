"""Crash-safe state files: atomic replacement, and write-behind that keeps fsync off the event loop."""

from __future__ import annotations

import json
import os
import threading
import time

from bab import persist
from bab.persist import WriteBehind, atomic_write, read_json


def test_atomic_write_replaces_with_mode_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, b"one", 0o600)
    atomic_write(target, b"two", 0o600)
    assert target.read_bytes() == b"two" and (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_corrupt_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    try:
        read_json(tmp_path / "x.json")
    except ValueError as exc:
        assert "corrupt state file" in str(exc)
    else:
        raise AssertionError("corrupt file accepted")
    assert read_json(tmp_path / "missing.json", default={}) == {}


def test_write_behind_keeps_order_does_not_block_and_flushes(tmp_path, monkeypatch):
    gate = threading.Event()
    real = persist.atomic_write

    def slow(path, data, mode=0o600):  # an fsync on a slow SD card
        gate.wait(5)
        real(path, data, mode)

    monkeypatch.setattr(persist, "atomic_write", slow)
    w = WriteBehind()
    t0 = time.monotonic()
    for i in range(50):
        w(tmp_path / "index.json", json.dumps({"i": i}).encode(), 0o600)
    assert time.monotonic() - t0 < 0.5  # the caller (the event loop) never waits for the disk
    assert not (tmp_path / "index.json").exists()
    gate.set()
    w.flush()
    assert json.loads((tmp_path / "index.json").read_text()) == {"i": 49}  # last write wins: order kept
    w.close()


def test_write_behind_counts_and_logs_errors(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    w = WriteBehind()
    w(blocker / "cannot" / "be" / "here.json", b"{}", 0o600)  # a file where a directory should be
    w.flush()
    assert w.errors == 1 and "cannot write" in caplog.text
    w.close()
    assert os.path.exists(blocker)
