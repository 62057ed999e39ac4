"""`bab run` with an LMN port that is missing at start, then appears, disappears (unplugged) and returns.

The port is a pty reached through a symlink, as udev's /dev/bab-lmn is: no symlink = adapter missing; closing
the pty's master = unplugged (the daemon's reads fail with EIO); a new pty behind the symlink = plugged in
again. The daemon must stay up throughout (no exit, so no systemd restart loop), tell `bab status` "LMN port
missing", keep its driver collecting, and serve the port again when it returns.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tty
from collections.abc import Callable
from pathlib import Path


def _status(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bab.cli", "status", "--socket", str(sock), *args],
                          capture_output=True, text=True, timeout=20)


def _doc(sock: Path) -> dict:
    r = _status(sock, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _until(what: str, cond: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for a state the daemon reaches by itself (a hang guard, not a speed assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s: {what}")


def _energy(doc: dict) -> float:
    (meter,) = doc["meters"]
    return next(float(r["value"]) for r in meter["readings"] if r["obis"].startswith("1-0:1.8.0"))


class Adapter:
    """A pty behind a symlink, plugged in and unplugged at will."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.fds: tuple[int, int] | None = None

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        self.fds = (master, slave)
        tmp = self.link.with_suffix(".new")
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink()
        assert self.fds is not None
        for fd in self.fds:
            os.close(fd)
        self.fds = None


def test_port_missing_at_start_lost_and_back(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(20)
    adapter = Adapter(tmp_path / "bab-lmn")
    sock = tmp_path / "status.sock"
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: {adapter.link}}}
state_dir: {tmp_path / 'state'}
status_socket: {sock}
meters:
  - id: "1BAB0000000005"
    driver:
      type: simulated
      interval: 0.1
      advance: true
      registers: {{"1-0:1.8.0": 100, "1-0:16.7.0": 3600000}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                            env=dict(os.environ, NOTIFY_SOCKET=notify_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Missing at start: READY all the same (a start systemd would time out is a restart loop), and said so.
        messages = [notify.recv(4096).decode()]
        while not any("READY=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
        _until("status socket", sock.exists)
        doc = _doc(sock)
        assert doc["lmn"]["port_open"] is False and "cannot open" in doc["lmn"]["port_error"]
        assert "LMN port missing" in _status(sock).stdout
        e0 = _energy(doc)
        _until("driver collecting while the port is missing", lambda: _energy(_doc(sock)) > e0)

        adapter.plug()
        _until("port opened once it appeared", lambda: _doc(sock)["lmn"]["port_open"] is True)
        assert "LMN port missing" not in _status(sock).stdout

        adapter.unplug()
        _until("loss noticed", lambda: _doc(sock)["lmn"]["port_open"] is False)
        doc = _doc(sock)
        assert doc["lmn"]["port_losses"] == 1 and doc["lmn"]["port_last_loss"]
        assert "LMN port missing" in _status(sock).stdout
        e1 = _energy(doc)
        _until("driver collecting after the loss", lambda: _energy(_doc(sock)) > e1)
        assert proc.poll() is None, "the daemon exited on a lost port"

        adapter.plug()
        _until("port reopened after it returned", lambda: _doc(sock)["lmn"]["port_open"] is True)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        # logged once per outage, not once per retry
        assert out.count("LMN port missing") == 2 and out.count("lost (") == 1, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if adapter.fds:
            adapter.unplug()
        notify.close()
