"""The daemon as systemd runs it: READY only when the port is open, watchdog pings, status socket, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tty

from bab.cli import EX_CONFIG, main


def test_bad_config_exits_78(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lmn: {port: x, baudrat: 1}\nmeters: []\n")
    assert main(["run", "--config", str(cfg)]) == EX_CONFIG
    assert f"{cfg}:1: lmn.baudrat" in capsys.readouterr().err


def test_notify_ready_watchdog_status_and_sigterm(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(20)
    master, slave = os.openpty()
    tty.setraw(master)
    status_sock = tmp_path / "status.sock"
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: {os.ttyname(slave)}}}
state_dir: {tmp_path / 'state'}
status_socket: {status_sock}
meters:
  - id: "1BAB0000000005"
    driver: {{type: simulated, registers: {{"1-0:1.8.0": 42.5}}}}
""")
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        env["WATCHDOG_PID"] = str(proc.pid)
        messages = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (any("READY=1" in m for m in messages)
                                                   and sum("WATCHDOG=1" in m for m in messages) >= 2):
            messages.append(notify.recv(4096).decode())
        assert any("READY=1" in m for m in messages), messages
        assert sum("WATCHDOG=1" in m for m in messages) >= 2, messages
        # The status socket answers with the documented shape.
        for _ in range(100):
            if status_sock.exists():
                break
            time.sleep(0.05)
        out = subprocess.run([sys.executable, "-m", "bab.cli", "status", "--json", "--socket", str(status_sock)],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        (meter,) = doc["meters"]
        assert meter["id"] == "1BAB0000000005" and doc["lmn"]["port_open"] is True
        assert meter["lmn"]["state"] == "unregistered"  # no gateway on this pty
        assert meter["driver"]["health"] == "ok"
        assert any(r["obis"].startswith("1-0:1.8.0") for r in meter["readings"])
        table = subprocess.run([sys.executable, "-m", "bab.cli", "status", "--socket", str(status_sock)],
                               capture_output=True, text=True, timeout=20)
        assert "1BAB0000000005" in table.stdout
        proc.send_signal(signal.SIGTERM)
        out_text, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out_text
        rest = []
        notify.settimeout(1)
        try:
            while True:
                rest.append(notify.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
        notify.close()


def test_status_without_daemon(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bab.cli", "status", "--socket", str(tmp_path / "none.sock")],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 3 and "not running" in out.stderr.lower()


def test_meter_rng_seeds_do_not_depend_on_the_platforms_hash_width():
    """A meter's RNG is seeded from the daemon's: the same on 32-bit ARM as on 64-bit machines (float seeds go
    through hash(), 32 bits wide on armhf), so `lmn.random_seed` reproduces the same addresses everywhere."""
    import random

    from bab.daemon import seed_from

    rng = random.Random(7)
    draws = [rng.random() for _ in range(50)] + [0.0, 0.5, 2.0**-60]
    # the values 64-bit CPython derives (its hash of a float): fixed integers, not the running platform's hash
    assert seed_from(0.5) == 2**60 and seed_from(0.0) == 0 and seed_from(2.0**-60) == 2
    for u in draws:
        assert 0 <= seed_from(u) < 2**61 - 1
        if sys.maxsize > 2**32:  # where hash() is 64-bit, the seeds are the same as seeding with the float
            assert random.Random(seed_from(u)).random() == random.Random(u).random()
