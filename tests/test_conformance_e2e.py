"""`bab conformance` as a process in real time on a pyserial URL: `bab run` and the suite joined by the TCP
virtual bus (`socket://`), as a lab tests a meter behind a USB-RS485 adapter. The link, connection and SML cases
(the slot grid is not timed over TCP); the pairing and the TaSK TLS cases with the probe, in real time, against
a `bab run` meter with a 2 s TLS session lifetime. And on a bus that is silent or carries only garbage, every
case ends with a failure and its reason (bounded by --case-timeout)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys

import pytest
from test_e2e_processes import stop

from bab.lmn.hub import serve_bus

METER = "1BAB0000000021"
CASES = ("HDLC-REG-01", "HDLC-CONN-01", "HDLC-DM-01", "SML-GPP-01", "SML-ERR-01")
ROBUST = ("HDLC-REG-01", "HDLC-SEQ-01", "SML-GPP-01", "TLS_B2_GP_02")
TLS = ("SYM-PAIR-01", "TLS_B2_GP_01_T", "TLS_B2_FR_09", "TLS_B2_FR_13", "TLS_B2_FR_15", "TLS-APP-01")


@pytest.mark.parametrize("cases", [CASES, TLS], ids=["link-sml", "pairing-tls"])
async def test_conformance_command_over_a_socket_url_against_bab_run(tmp_path, cases):
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: "{url}"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
meters:
  - id: "{METER}"
    driver: {{type: simulated}}
    tls: {{session_lifetime: 2}}
""")
    mk = tmp_path / "mk.hex"
    mk.write_text("00112233445566778899aabbccddeeff\n")
    keys = subprocess.run([sys.executable, "-m", "bab.cli", "keys", "-c", str(cfg), "set-master-key", "--meter",
                           METER, str(mk)], capture_output=True, text=True, timeout=60)
    assert keys.returncode == 0, keys.stdout + keys.stderr
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "bab.cli", "conformance", "--port", url, "--meter", METER,
            "--master-key", str(mk), "--tls-session-lifetime", "2",
            "--report", str(report), *(x for c in cases for x in ("--case", c))]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.5)  # bab run joins the bus (a late meter would only fail REG-01's broadcast limit)
        done = await loop.run_in_executor(None, lambda: subprocess.run(argv, capture_output=True, text=True,
                                                                       timeout=120))
    finally:
        stop(proc)
        server.close()
    doc = json.loads(report.read_text())
    assert [c["id"] for c in doc["cases"]] == list(cases)
    assert [c["verdict"] for c in doc["cases"]] == ["pass"] * len(cases), (done.stdout, doc["cases"])
    assert done.returncode == 0 and doc["port"] == url


async def _garbage(url: str, stop_event: asyncio.Event) -> None:
    host, port = url.removeprefix("socket://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    rng = random.Random(9)
    while not stop_event.is_set():
        writer.write(bytes(rng.choice((0x7E, rng.randrange(256))) for _ in range(64)))
        await asyncio.sleep(0.02)
    writer.close()


@pytest.mark.parametrize("line", ["silent", "garbage"])
async def test_in_real_time_every_case_ends_with_a_verdict_on_a_silent_or_babbling_bus(tmp_path, line):
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    stop_event = asyncio.Event()
    babbler = asyncio.create_task(_garbage(url, stop_event)) if line == "garbage" else None
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "bab.cli", "conformance", "--port", url, "--case-timeout", "1",
            "--report", str(report), *(x for c in ROBUST for x in ("--case", c))]
    loop = asyncio.get_running_loop()
    try:
        done = await loop.run_in_executor(None, lambda: subprocess.run(argv, capture_output=True, text=True,
                                                                       timeout=120))
    finally:
        stop_event.set()
        if babbler is not None:
            await babbler
        server.close()
    assert done.returncode == 1, done.stdout + done.stderr
    cases = json.loads(report.read_text())["cases"]
    assert [c["id"] for c in cases] == list(ROBUST)
    assert all(c["verdict"] == "fail" and c["reason"] for c in cases), cases
