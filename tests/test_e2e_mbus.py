"""End to end: the gas-over-M-Bus and water-by-pulses configuration of docs/drivers.md, served on the LMN
(a TCP bus hub) and read by the software gateway. Once through the daemon in this process (the water meter's
pulses injected into its pulse driver), once with `bab run` as a process (the gas meter on a pty)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import mbus_telegrams as T
import yaml
from test_e2e_processes import Gateway, stop

from bab.config import loads
from bab.daemon import Daemon
from bab.gateway.sml_reader import SmlReader
from bab.lmn.hub import serve_bus
from legacy_drivers.mbus.slave_sim import MbusSlaveSim, SimBus, serve_fd, telegram_of
from legacy_drivers.s0 import QueueEdgeSource

DOC = Path(__file__).resolve().parents[1] / "docs" / "drivers.md"
GAS_ID, WATER_ID = "7ACW0010020387", "8BAB0000004711"


def reading_gateway(url: str) -> Gateway:
    """The software gateway of test_e2e_processes, reading every participant over SML/COSEM each second."""
    gw = Gateway(url)
    gw.app.reader = SmlReader(gw.lines.append)
    gw.app.poll_interval = 1.0
    return gw


def doc_yaml_blocks() -> list[str]:
    """The complete configurations among the YAML examples of docs/drivers.md (not the one-line fragments)."""
    return [b for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S) if b.startswith("lmn:")]


def doc_config(lmn_port: str, gas_port: str, state_dir: Path) -> str:
    """The documented configuration with this test's ports and state directory (and 9600 baud, 1 s interval
    for a quick test)."""
    raw = yaml.safe_load(doc_yaml_blocks()[0])
    raw["lmn"]["port"] = lmn_port
    raw["state_dir"] = str(state_dir)
    gas = raw["meters"][0]["driver"]
    gas.update(port=gas_port, baudrate=9600, interval=1.0)
    return yaml.safe_dump(raw)


def test_every_configuration_in_drivers_md_is_valid() -> None:
    blocks = doc_yaml_blocks()
    assert blocks
    for text in blocks:
        cfg = loads(text, "docs/drivers.md")
        assert {m.driver_type for m in cfg.meters} >= {"mbus", "s0"}
    cfg = loads(blocks[0])
    assert [str(m.id) for m in cfg.meters] == [GAS_ID, WATER_ID]


class GasMeterOnPty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.stop = threading.Event()
        self.sim = MbusSlaveSim(4, [telegram_of(T.GAS_ITRON_CYBLE)])
        self.thread = serve_fd(self.master, SimBus([self.sim], baudrate=9600), self.stop)
        self.port = os.ttyname(self.slave)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)


async def test_daemon_serves_the_documented_gas_and_water_meters(tmp_path: Path) -> None:
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    gas = GasMeterOnPty()
    daemon = Daemon(loads(doc_config(url, gas.port, tmp_path / "state")))
    edges = QueueEdgeSource()
    task = None
    gw = reading_gateway(url)
    try:
        daemon.build()
        water = next(m for m in daemon.meters if m.meter_id == WATER_ID)
        water.driver._source = edges  # the GPIO line of the docs, here a test's edge queue
        task = asyncio.create_task(daemon.run())
        start = time.monotonic_ns() - 20_000_000_000  # seven 0.4 s closures, long ago: every gap is confirmed
        for i in range(7):
            edges.pulse(start + i * 1_000_000_000, 400_000_000)
        want = [f"{GAS_ID} 7-0:3.0.0*255 = 0.26 m³",
                f"{WATER_ID} 8-0:1.0.0*255 = 123.520000 m³ [<ReadingStatus.ESTIMATED: 16>]"]
        assert await gw.wait(lambda: all(w in gw.lines for w in want), 40), gw.lines
        status = daemon.status()
        gas_status = next(m for m in status["meters"] if m["id"] == GAS_ID)
        assert gas_status["driver"]["health"] == "ok" and gas_status["driver"]["counters"]["readouts"] >= 1
        assert any(r["obis"] == "7-0:3.0.0*255" and r["value"] == "0.26" for r in gas_status["readings"])
    finally:
        await gw.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        gas.close()
        server.close()


async def test_bab_run_process_serves_an_mbus_gas_meter(tmp_path: Path) -> None:
    server = await serve_bus("127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    gas = GasMeterOnPty()
    raw = yaml.safe_load(doc_config(url, gas.port, tmp_path / "state"))
    raw["meters"] = raw["meters"][:1]  # the gas meter alone: a process has no GPIO line here
    cfg = tmp_path / "bab.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    gw = reading_gateway(url)
    try:
        want = f"{GAS_ID} 7-0:3.0.0*255 = 0.26 m³"
        assert await gw.wait(lambda: want in gw.lines, 40), gw.lines
    finally:
        await gw.close()
        out = stop(proc)
        gas.close()
        server.close()
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert gas.sim.requests >= 1
