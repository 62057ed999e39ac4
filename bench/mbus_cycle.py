"""Benchmark: M-Bus readout cycle time against its wire time, over a pty with a simulated slave.

The simulated slave (legacy_drivers.mbus.slave_sim, in a thread on the pty master) hears a request only after
its wire time (11 bits per character), waits its reaction time and writes its answer paced at the wire speed.
The M-Bus driver runs on the pty slave exactly as on a level converter, primary addressing with SND_NKE; the
answer is the RSP_UD of a real gas meter (Itron Cyble, libmbus test frame, 92 bytes), optionally repeated as a
multi-telegram answer.

Printed per baud rate:
  wire       wire time of every byte of the dialogue (SND_NKE, E5, REQ_UD2, RSP_UD ...), 11 bits per character
  dialogue   the protocol minimum: wire time + the slave's reaction before each answer + the master's idle
             time of 11 bit times before each request
  cycle      measured time from the start of a readout to its decoded result (mean and max)
  ratio      cycle / dialogue (target <= 1.2), and cycle / wire

Run: .venv/bin/python bench/mbus_cycle.py [--cycles N] [--telegrams N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import mbus_telegrams  # noqa: E402

from legacy_drivers.api import DriverContext  # noqa: E402
from legacy_drivers.mbus import MbusDriver  # noqa: E402
from legacy_drivers.mbus.frame import LongFrame, wire_time  # noqa: E402
from legacy_drivers.mbus.link import Readout  # noqa: E402
from legacy_drivers.mbus.slave_sim import MbusSlaveSim, SimBus, serve_fd, telegram_of  # noqa: E402

REACTION = 0.010  # the slave's reaction time (the standard allows 11 bit times .. 330 bit times + 50 ms)


def telegrams(n: int) -> list[tuple[int, bytes]]:
    ci, data = telegram_of(mbus_telegrams.GAS_ITRON_CYBLE)
    more = data[:-4] + b"\x1f"  # the same records, DIF 1F (more records follow) in place of 0F 00 02 1F
    return [(ci, more)] * (n - 1) + [(ci, data)]


async def measure(baudrate: int, cycles: int, n_telegrams: int) -> dict[str, float]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    stop = threading.Event()
    sim = MbusSlaveSim(4, telegrams(n_telegrams), reaction=REACTION)
    thread = serve_fd(master, SimBus([sim], baudrate=baudrate), stop)
    driver = MbusDriver({"port": os.ttyname(slave), "baudrate": baudrate, "address": 4, "interval": 0.0},
                        DriverContext("7ACW0010020387", "/tmp"))
    transport = driver._make_transport(os.ttyname(slave), baudrate)
    await transport.open()
    times = []
    try:
        for _ in range(cycles):
            await asyncio.sleep(0.05)
            async with transport.transaction():
                t0 = time.monotonic()
                result = await driver.readout(transport)
                times.append(time.monotonic() - t0)
            assert isinstance(result, Readout) and len(result.telegrams) == n_telegrams, result
    finally:
        transport.close()
        stop.set()
        thread.join(5)
        os.close(master)
        os.close(slave)
    rsp = [len(LongFrame(0x08, 4, ci, data).encode()) for ci, data in sim.telegrams]
    nbytes = 5 + 1 + 5 * n_telegrams + sum(rsp)
    wire = wire_time(nbytes, baudrate)
    answers = 1 + n_telegrams
    dialogue = wire + answers * REACTION + answers * 11 / baudrate
    return {"rate": baudrate, "bytes": nbytes, "wire": wire, "dialogue": dialogue,
            "mean": statistics.mean(times), "max": max(times)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--telegrams", type=int, default=1)
    args = ap.parse_args()
    print(f"M-Bus readout over a pty, simulated slave with a {REACTION * 1000:.0f} ms reaction, "
          f"{args.telegrams} telegram(s) of about 90 bytes, {args.cycles} cycles")
    print(f"{'rate':>6} {'bytes':>6} {'wire':>8} {'dialogue':>9} {'cycle mean/max':>16} {'ratio':>6} {'/wire':>6}")
    for rate in (300, 2400, 9600):
        cycles = max(1, args.cycles // 3) if rate == 300 else args.cycles
        r = await measure(rate, cycles, args.telegrams)
        print(f"{r['rate']:>6} {r['bytes']:>6} {r['wire']:>7.3f}s {r['dialogue']:>8.3f}s "
              f"{r['mean']:>7.3f}/{r['max']:.3f}s {r['mean'] / r['dialogue']:>6.3f} {r['mean'] / r['wire']:>6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
