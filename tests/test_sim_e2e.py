"""The lab meter end to end: `bab run` as a process with a fault from its YAML, BAB's software gateway reading it
on the TCP bus, `bab sim` and `bab status` as processes over the status socket; and the journald field of an
injected fault."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time

from test_e2e_processes import Gateway, stop

from bab.lmn.hub import serve_bus
from bab.logs import JournalHandler, RateLimitFilter
from bab.sim.catalogue import parse_fault
from bab.sim.faults import FaultSet

METER = "1BAB0000000021"


def bab(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bab.cli", *argv], capture_output=True, text=True, timeout=30)


async def test_fault_from_the_yaml_then_cleared_with_bab_sim_while_the_gateway_polls(tmp_path):
    from bab.gateway.sml_reader import SmlReader

    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    sock = tmp_path / "status.sock"
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(f"""lmn: {{port: "{url}"}}
state_dir: {tmp_path / 'state'}
status_socket: {sock}
meters:
  - id: "{METER}"
    driver: {{type: simulated}}
    faults: [{{kind: attention, object: "1-0:1.8.0", code: FE07}}]
""")
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    gw = Gateway(url)
    gw.app.reader = SmlReader(gw.lines.append, full_list=False)
    gw.app.poll_interval = 0.3
    loop = asyncio.get_running_loop()
    try:
        assert await gw.wait(lambda: any("attention MEASURING_POINT_UNREACHABLE" in x for x in gw.lines), 20), \
            gw.lines
        status = await loop.run_in_executor(None, bab, "status", "--json", "--socket", str(sock))
        faults = json.loads(status.stdout)["meters"][0]["faults"]
        assert faults["active"][0]["kind"] == "attention" and faults["injected"]["attention"] >= 1
        cleared = await loop.run_in_executor(None, bab, "sim", "clear", METER, "attention", "--socket", str(sock))
        assert cleared.returncode == 0 and "cleared attention" in cleared.stdout, cleared.stderr
        n = len(gw.lines)
        assert await gw.wait(lambda: any("1-0:1.8.0*255 = 12345.678 kWh" in x for x in gw.lines[n:]), 20), gw.lines
        refused = await loop.run_in_executor(None, bab, "sim", "fault", METER, "late_replies", "--socket", str(sock))
        assert refused.returncode == 2 and "ms: missing required key" in refused.stderr
    finally:
        await gw.close()
        out = stop(proc)
        server.close()
    assert "injected fault attention" in out


def test_an_injected_fault_carries_the_journald_field_bab_fault(tmp_path):
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    handler = JournalHandler(path)
    handler.addFilter(RateLimitFilter(burst=1))  # as setup_logging installs it; faults are exempt
    log = logging.getLogger("bab.sim")
    log.addHandler(handler)
    try:
        faults = FaultSet(METER, clock=lambda: 0.0, faults=[parse_fault("bad_fcs", {"count": 3})])
        switched_on = server.recv(65536)
        injected = []
        for _ in range(3):
            assert faults.fire("bad_fcs", "I frame on selector 3") is not None
            injected.append(server.recv(65536))
    finally:
        log.removeHandler(handler)
        handler.close()
        server.close()
    for datagram, message in ((switched_on, b"fault bad_fcs switched on"),
                              *((i, b"injected fault bad_fcs") for i in injected)):
        fields = dict(line.split(b"=", 1) for line in datagram.split(b"\n") if b"=" in line)
        assert fields[b"BAB_FAULT"] == b"bad_fcs" and fields[b"BAB_METER_ID"] == METER.encode()
        assert message in fields[b"MESSAGE"]
    assert faults.injected == {"bad_fcs": 3} and not faults.active


def test_demo_runs_a_scenario_and_serves_bab_sim(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text('steps:\n  - {at: 0, meter: "1BAB0012345678", '
                        'fault: {kind: attention, object: "1-0:1.8.0", code: FE07, count: 1}}\n')
    sock = tmp_path / "demo.sock"
    demo = subprocess.Popen([sys.executable, "-m", "bab.cli", "demo", "--plain", "--duration", "5",
                             "--poll-interval", "0.5", "--scenario", str(scenario), "--socket", str(sock)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        shown = None
        for _ in range(100):
            if sock.exists():
                shown = bab("sim", "show", "--json", "--socket", str(sock))
                break
            time.sleep(0.05)
        out, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert shown is not None and shown.returncode == 0, shown
    assert json.loads(shown.stdout)["meters"][0]["id"] == "1BAB0012345678"
    assert "scenario " in out and "attention MEASURING_POINT_UNREACHABLE" in out, out
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [{at: 0, meter: x, clear: all}]\n")
    refused = bab("demo", "--plain", "--duration", "2", "--scenario", str(bad))
    assert refused.returncode == 2 and "bad.yaml:1: steps[0].meter: unknown meter 'x'" in refused.stderr
