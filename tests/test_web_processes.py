"""`bab gateway --http` and `bab run` with `http:` in its YAML, as real processes on a `bab bus` TCP hub: the
gateway's console sees the meter register and reads it on demand; the adapter's console shows its LMN state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("aiohttp")


def _line(proc: subprocess.Popen, pattern: str, timeout: float = 30.0) -> re.Match:
    end = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
        if time.monotonic() > end:
            break
    raise AssertionError(f"no {pattern!r} in {''.join(seen)}")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _post(url: str, body: dict, token: str) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def _wait(cond, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_gateway_and_run_consoles_as_processes(tmp_path):
    procs = []

    def start(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "bab.cli", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    try:
        bus = start("bus", "--listen", "127.0.0.1:0")
        url = _line(bus, r"listening on (socket://\S+)").group(1)
        cfg = tmp_path / "bab.yaml"
        cfg.write_text(f"""lmn: {{port: "{url}"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
http: {{listen: "127.0.0.1:0"}}
meters:
  - id: "1BAB0000000042"
    driver: {{type: simulated, registers: {{"1-0:1.8.0": 42.5, "1-0:16.7.0": 7}}}}
""")
        run = start("run", "--config", str(cfg))
        run_web = _line(run, r"web console: (http://\S+)").group(1)
        gw = start("gateway", "--port", url, "--http", "127.0.0.1:0", "--broadcast-period", "1",
                   "--check-period", "2", "--poll-interval", "30", "--state-dir", str(tmp_path / "gw"))
        gw_web = _line(gw, r"web console: (http://\S+)").group(1)
        assert _get(gw_web + "api/session")["roles"] == ["gateway"]
        assert _get(run_web + "api/session")["roles"] == ["adapter"]
        _wait(lambda: any(p["state"] == "registered"
                          for p in _get(gw_web + "api/gateway/participants")["participants"]))
        token = _get(gw_web + "api/session")["session_token"]
        r = _post(gw_web + "api/gateway/participants/1BAB0000000042/read", {"objects": ["1-0:1.8.0*255"]}, token)
        assert r["ok"] and r["readings"][0]["value"] == "42.5" and r["readings"][0]["unit"] == "kWh"
        st = _wait(lambda: (s := _get(run_web + "api/adapter/status"))["meters"][0]["lmn"]["state"] == "registered"
                   and s)
        assert st["meters"][0]["id"] == "1BAB0000000042" and st["lmn"]["port_open"]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_bab_run_serves_its_meters_when_the_console_cannot_listen(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "bab.yaml"
        cfg.write_text(f"""lmn: {{port: "loop://"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
http: {{listen: "127.0.0.1:{port}"}}
meters:
  - id: "1BAB0000000042"
    driver: {{type: simulated}}
""")
        run = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _line(run, r"no web console: cannot listen on 127\.0\.0\.1:\d+")
            _line(run, r"LMN port loop:// open")
            assert run.poll() is None
        finally:
            run.terminate()
            run.wait(20)
