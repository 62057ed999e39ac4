"""Benchmark: D0 readout cycle time against the wire time of the dialogue, over a pty with a simulated meter.

The simulated meter (legacy_drivers.d0.meter_sim, in a thread on the pty master) hears bytes only after their
wire time and writes its answers paced at the wire speed of its current rate, with the standard's minimum
reaction time tr = 200 ms. The D0 driver runs on the pty slave exactly as on an optical head.

Printed per negotiated rate:
  data_wire   wire time of the data message (STX..BCC) at the negotiated rate
  dialogue    the protocol minimum of a whole cycle: wire time of sign-on, identification and ACK at 300 baud,
              the data message at the negotiated rate, plus the mandated reaction times (meter tr twice,
              client reaction once) and the client's changeover delay
  cycle       measured time from the sign-on transmit to the parsed readout (mean and max)
  ratio       cycle / dialogue (target <= 1.2)
  data_phase  measured time from the baud changeover to the readout, against data_wire + meter tr
Mode D: latency from the last byte of a pushed telegram to the published readings.

Run: .venv/bin/python bench/d0_cycle.py [--cycles N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

from bab.reading import Reading
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.d0 import BAUD_C, ChangeBaud, D0Driver, Readout, Transmit, wire_time
from legacy_drivers.d0.meter_sim import D0MeterSim, data_message, serve_fd

METER_TR = 0.2


def telegram(lines: int) -> str:
    """A realistic L+G-style readout of about ``lines`` data lines."""
    out = ["F.F(00000000)", "0.0.0(35456789)", "C.1.0(35456789)"]
    i = 0
    while len(out) < lines - 1:
        t = i % 5
        out.append(f"1.8.{t}({1234.5 + i:010.3f}*kWh)")
        out.append(f"2.8.{t}({12.25 + i:010.3f}*kWh)")
        out.append(f"{32 + 20 * (i % 3)}.7.0({230.1 + i % 7:05.1f}*V)")
        out.append(f"1.6.{t}({1.234 + i / 1000:06.3f}*kW)(2311201215)")
        i += 1
    out = [f"{line.split('(')[0]}*{k:02d}({line.split('(', 1)[1]}" if k else line for k, line in enumerate(out)]
    return "".join(line + "\r\n" for line in out[:lines]) + "!\r\n"


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def publish(self, readings: Sequence[Reading]) -> None:
        self.count += 1
        self.event.set()

    def set_health(self, health: Health, detail: str = "") -> None:
        pass


async def pull(baud_char: str, cycles: int, lines: int) -> dict[str, float]:
    master, slave = os.openpty()
    stop = threading.Event()
    data = telegram(lines)
    meter = D0MeterSim(f"/LGZ{baud_char}\\2ZMD3104100.B21", data, reaction=METER_TR)
    sim = serve_fd(master, meter, stop, pace=True)
    driver = D0Driver({"port": os.ttyname(slave), "interval": 0.0, "response_timeout": 2.0},
                      DriverContext("bench", "/tmp"))
    marks: dict[str, list[float]] = {"start": [], "change": [], "readout": []}
    orig = driver._do

    async def do(transport: Any, events: Sequence[Any], sink: Any) -> None:
        now = time.monotonic()
        for ev in events:
            if isinstance(ev, Transmit) and ev.data.startswith(b"/?"):
                marks["start"].append(now)
            elif isinstance(ev, ChangeBaud) and ev.baudrate != 300:
                marks["change"].append(now)
            elif isinstance(ev, Readout):
                marks["readout"].append(now)
        await orig(transport, events, sink)

    driver._do = do  # type: ignore[method-assign]
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    while len(marks["readout"]) < cycles:
        await asyncio.wait_for(sink.event.wait(), 120)
        sink.event.clear()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    stop.set()
    sim.join(10)  # before the fd is closed: a new pty may reuse its number while the thread still reads it
    os.close(master)
    os.close(slave)
    rate = BAUD_C[baud_char]
    n = len(marks["readout"])
    cyc = [marks["readout"][i] - marks["start"][i] for i in range(n)]
    phase = [marks["readout"][i] - marks["change"][i] for i in range(min(n, len(marks["change"])))] or [0.0]
    ident = len(meter.identification) + 2
    msg = len(data_message(data))
    data_wire = wire_time(msg, rate)
    dialogue = (wire_time(5, 300) + METER_TR + wire_time(ident, 300) + driver.config.reaction_delay
                + wire_time(6, 300) + METER_TR + data_wire)
    return {"rate": rate, "bytes": msg, "data_wire": data_wire, "dialogue": dialogue,
            "cycle_mean": statistics.mean(cyc), "cycle_max": max(cyc), "phase_mean": statistics.mean(phase),
            "phase_ref": data_wire + METER_TR - driver.config.changeover_delay, "cycles": n,
            "failed": driver.stats["missed"]}


async def push(telegrams: int, lines: int) -> dict[str, float]:
    master, slave = os.openpty()
    meter = D0MeterSim("/ESY5Q3DA1024 V3.04", telegram(lines))
    driver = D0Driver({"port": os.ttyname(slave), "mode": "D", "baudrate": 9600}, DriverContext("bench", "/tmp"))
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await asyncio.sleep(0.3)
    lat = []
    raw = meter.push()
    for _ in range(telegrams):
        sink.event.clear()
        os.write(master, raw)
        t0 = time.monotonic()
        await asyncio.wait_for(sink.event.wait(), 10)
        lat.append(time.monotonic() - t0)
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    os.close(master)
    os.close(slave)
    return {"bytes": len(raw), "lat_mean": statistics.mean(lat), "lat_max": max(lat)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--lines", type=int, default=40)
    args = ap.parse_args()
    print(f"D0 readout cycle over a pty, simulated meter with tr = {METER_TR * 1000:.0f} ms, "
          f"{args.lines} data lines")
    print(f"{'rate':>6} {'bytes':>6} {'data_wire':>10} {'dialogue':>9} {'cycle':>13} {'ratio':>6} "
          f"{'data_phase':>18}  ok/failed")
    for z in ("3", "5", "6"):
        r = await pull(z, args.cycles, args.lines)
        print(f"{r['rate']:>6} {r['bytes']:>6} {r['data_wire']:>9.3f}s {r['dialogue']:>8.3f}s "
              f"{r['cycle_mean']:>6.3f}/{r['cycle_max']:.3f}s {r['cycle_mean'] / r['dialogue']:>6.3f} "
              f"{r['phase_mean']:>7.3f}s vs {r['phase_ref']:.3f}s  {r['cycles']}/{r['failed']}")
    p = await push(10, args.lines)
    print(f"mode D push at 9600: {p['bytes']} bytes, last byte -> readings published: "
          f"mean {p['lat_mean'] * 1000:.2f} ms, max {p['lat_max'] * 1000:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
