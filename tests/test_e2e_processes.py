"""End to end in real time with real processes: `bab run` on a TCP bus hub and on a pty, the software gateway
in the test. One BAB with three meters and a second BAB process share the bus and get distinct addresses; a
killed BAB is dropped by the presence check and comes back at its old address; a gateway restart is survived.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tty
from pathlib import Path

import pytest

from bab.gateway.app import SoftwareGateway
from bab.hdlc.timing import GatewayTiming
from bab.lmn.hub import serve_bus
from bab.lmn.node import LinkNode
from bab.lmn.runner import NodeRunner
from bab.transport import PortTransport

FAST = GatewayTiming(broadcast_period=1.0, broadcast_period_empty=0.3, check_period=1.0)


def write_config(path: Path, port: str, ids: list[str], state: Path) -> Path:
    meters = "".join(f'  - id: "{i}"\n    driver: {{type: simulated}}\n' for i in ids)
    path.write_text(f"lmn:\n  port: {port}\nstate_dir: {state}\nlog_level: info\nmeters:\n{meters}")
    return path


def start_bab(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Gateway:
    """The software gateway in the test's event loop on a pyserial URL."""

    def __init__(self, url: str) -> None:
        self.lines: list[str] = []
        self.app = SoftwareGateway(FAST, report=self.lines.append)
        self.port = PortTransport(url)
        self.runner = NodeRunner(LinkNode([self.app]), self.port.write)
        self.port.open(self.runner.feed)
        self.task = asyncio.create_task(self.runner.run())

    def ids(self) -> dict[bytes, int]:
        return {p.server_id: a for a, p in self.app.station.participants.items()}

    async def wait(self, cond, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            if cond():
                return True
            await asyncio.sleep(0.05)
        return cond()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.port.close()


def server_ids(ids):
    from bab.meter_id import MeterId

    return {MeterId.parse(i).server_id for i in ids}


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


async def test_two_processes_four_meters_presence_and_gateway_restart(tmp_path):
    server = await serve_bus("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"socket://127.0.0.1:{port}"
    ids_a = ["1BAB0000000001", "1BAB0000000002", "1BAB0000000003"]
    ids_b = ["1XYZ0000000042"]
    gw = Gateway(url)
    a = start_bab(write_config(tmp_path / "a.yaml", url, ids_a, tmp_path / "state-a"))
    b = start_bab(write_config(tmp_path / "b.yaml", url, ids_b, tmp_path / "state-b"))
    try:
        everyone = server_ids(ids_a + ids_b)
        assert await gw.wait(lambda: set(gw.ids()) == everyone, 20), gw.lines
        addrs = gw.ids()
        assert len(set(addrs.values())) == 4
        # The second process dies: the presence check drops its meter, the others stay.
        b.kill()
        b.wait()
        assert await gw.wait(lambda: set(gw.ids()) == server_ids(ids_a), 10), gw.lines
        assert any("dropped" in line for line in gw.lines)
        # It comes back with its remembered address.
        b = start_bab(write_config(tmp_path / "b.yaml", url, ids_b, tmp_path / "state-b"))
        assert await gw.wait(lambda: set(gw.ids()) == everyone, 20), gw.lines
        assert gw.ids() == addrs
        # The gateway restarts with an empty registry: everybody registers again, at the same addresses.
        await gw.close()
        gw = Gateway(url)
        assert await gw.wait(lambda: set(gw.ids()) == everyone, 20), gw.lines
        assert gw.ids() == addrs
    finally:
        await gw.close()
        out_a, out_b = stop(a), stop(b)
        server.close()
    assert "registered at LMN address" in out_a, out_a
    assert "Traceback" not in out_a + out_b


async def test_bab_process_on_a_pty(tmp_path):
    master, slave = os.openpty()
    tty.setraw(master)
    slave_path = os.ttyname(slave)
    proc = start_bab(write_config(tmp_path / "p.yaml", slave_path, ["1BAB0000000007"], tmp_path / "st"))
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    app = SoftwareGateway(FAST, report=lines.append)
    runner = NodeRunner(LinkNode([app]), lambda data: os.write(master, data))
    loop.add_reader(master, lambda: runner.feed(os.read(master, 4096)))
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):
            if app.station.participants:
                break
            await asyncio.sleep(0.05)
        assert [p.server_id for p in app.station.participants.values()] == list(server_ids(["1BAB0000000007"]))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop.remove_reader(master)
        out = stop(proc)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, out  # SIGTERM: clean exit


def test_bab_run_reports_a_missing_port(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", str(tmp_path / "no-such-tty"), ["1BAB0000000009"], tmp_path / "s")
    # A missing USB-RS485 adapter is waited for, not a failed start (tests/test_lmn_port_loss.py: it returns).
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)], stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stderr.readline()
        while line and "LMN port missing" not in line:
            line = proc.stderr.readline()
        assert "cannot open" in line and "no-such-tty" in line, line
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args", [["demo", "--duration", "7"]])
def test_demo_shows_registration(args):
    proc = subprocess.run([sys.executable, "-m", "bab.cli", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "registered at address" in proc.stdout
    # The gateway reads the simulated meter's values over SML/COSEM, and the advancing register moves.
    values = [line.split(" = ")[1] for line in proc.stdout.splitlines() if "1-0:1.8.0*255 = " in line]
    assert len(values) >= 2 and values[0].startswith("12345.678") and values[-1] > values[0], proc.stdout
    assert "1-0:16.7.0*255 = 432.1 W" in proc.stdout and "1-0:96.1.0*255 = 1BAB0012345678" in proc.stdout
    from bab.tls import wolfssl_binding

    if wolfssl_binding.available():  # commissioned as a gateway does it: paired, then read through TLS
        assert "paired (SYM, selector 6)" in proc.stdout and "TLS 1.2 session on selector 1" in proc.stdout


async def test_bab_gateway_command_finds_a_bab_process(tmp_path):
    """`bab gateway --port URL` (the lab tool) against `bab run`, both real processes on the TCP bus."""
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    bab = start_bab(write_config(tmp_path / "m.yaml", url, ["1BAB0000000011"], tmp_path / "s"))
    gw = subprocess.Popen([sys.executable, "-m", "bab.cli", "gateway", "--port", url, "--duration", "6",
                           "--broadcast-period", "1", "--check-period", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        loop = asyncio.get_running_loop()
        out, _ = await loop.run_in_executor(None, lambda: gw.communicate(timeout=30))
    finally:
        stop(bab)
        server.close()
    assert gw.returncode == 0, out
    assert "participant 1BAB0000000011 registered at address" in out


async def test_gateway_pairs_reads_over_tls_and_crypto_resets(tmp_path):
    """The lab tools as processes: `bab keys set-master-key` (stdin), `bab gateway --master-key` pairs the meter
    and reads it over TLS, `bab gateway --crypto-reset` resets it; `bab keys show` then reports it unpaired."""
    import json

    from bab.tls import wolfssl_binding

    if not wolfssl_binding.available():
        pytest.skip("wolfSSL binding not built")
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    meter = "1BAB0000000012"
    cfg = write_config(tmp_path / "m.yaml", url, [meter], tmp_path / "state")
    mk_hex = "00112233445566778899aabbccddeeff"
    (tmp_path / "mk.hex").write_text(mk_hex + "\n")
    keys = subprocess.run([sys.executable, "-m", "bab.cli", "keys", "-c", str(cfg), "set-master-key", "--meter",
                           meter, "-"], input=mk_hex, capture_output=True, text=True, timeout=30)
    assert keys.returncode == 0, keys.stderr
    assert mk_hex not in keys.stdout + keys.stderr  # never echoed
    bab = start_bab(cfg)
    loop = asyncio.get_running_loop()

    def gateway(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "bab.cli", "gateway", "--port", url, "--duration", "8",
                               "--broadcast-period", "1", "--check-period", "1", "--poll-interval", "1",
                               "--state-dir", str(tmp_path / "gw"), *extra], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    try:
        out = await loop.run_in_executor(None, gateway, "--master-key", f"{meter}={tmp_path / 'mk.hex'}")
        assert f"{meter} paired (SYM, selector 6)" in out, out
        assert f"{meter} TLS 1.2 session on selector 1" in out and f"{meter} 1-0:1.8.0*255 = " in out, out
        out = await loop.run_in_executor(None, gateway, "--crypto-reset", meter)
        assert f"{meter} crypto-reset done: meter unpaired" in out, out
    finally:
        log = stop(bab)
        server.close()
    show = subprocess.run([sys.executable, "-m", "bab.cli", "keys", "-c", str(cfg), "show", "--json"],
                          capture_output=True, text=True, timeout=30)
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    assert mk_hex not in show.stdout + log
    (entry,) = doc
    assert entry["paired"] is False, entry
