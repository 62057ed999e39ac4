"""`bab conformance` as a process in real time on a pyserial URL: `bab run` and the suite joined by the TCP
virtual bus (`socket://`), as a lab tests a meter behind a USB-RS485 adapter. The link, connection and SML cases
(the slot grid is not timed over TCP)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from test_e2e_processes import stop

from bab.lmn.hub import serve_bus

METER = "1BAB0000000021"
CASES = ("HDLC-REG-01", "HDLC-CONN-01", "HDLC-DM-01", "SML-GPP-01", "SML-ERR-01")


async def test_conformance_command_over_a_socket_url_against_bab_run(tmp_path):
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: "{url}"}}
state_dir: {tmp_path / 'state'}
status_socket: {tmp_path / 'status.sock'}
meters:
  - id: "{METER}"
    driver: {{type: simulated}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "bab.cli", "conformance", "--port", url, "--meter", METER,
            "--report", str(report), *(x for c in CASES for x in ("--case", c))]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.5)  # bab run joins the bus (a late meter would only fail REG-01's broadcast limit)
        done = await loop.run_in_executor(None, lambda: subprocess.run(argv, capture_output=True, text=True,
                                                                       timeout=120))
    finally:
        stop(proc)
        server.close()
    doc = json.loads(report.read_text())
    assert [c["id"] for c in doc["cases"]] == list(CASES)
    assert [c["verdict"] for c in doc["cases"]] == ["pass"] * len(CASES), (done.stdout, doc["cases"])
    assert done.returncode == 0 and doc["port"] == url
