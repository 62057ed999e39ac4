"""Latency from a legacy reading arriving at the driver to it being served on the LMN (issue: legacy drivers).

A meter pushes SML (EDL) on a pty; BAB's EDL driver decodes it into the meter's value store; the SML server
answers a gateway GetProcParameter for 1.8.0 from that store. Measured per reading:

  a. driver: last byte of the push file written -> new value in the value store (pty + decode + map)
  b. server: GetProcParameter request bytes in -> response bytes out
  c. LMN wire time of the request and response I-frames at 921.6 kbit/s (computed from their sizes)

Prints p50/p99 of a, b and a+b+c next to the 2 s end-to-end budget base meters state under PTB-A 50.8 (the
gateway's poll interval comes on top: that is the gateway's choice, not the meter's latency).
Target: p99(a+b+c) <= 50 ms. Run: python bench/driver_latency.py [--n N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import tty
from pathlib import Path

from bab.cosem.base_meter import BaseMeterModel
from bab.hdlc.frame import encode_frame
from bab.hdlc.timing import wire_time
from bab.mapping import MappedSink, ReadingMap
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.sml import GetListRes, ListEntry, PublicCloseRes, PublicOpenRes, SecIndex, SmlMessage, encode_sml
from bab.sml.client import SmlClient
from bab.sml.server import SmlServer
from bab.sml.tl import Unsigned
from bab.values import ValueStore
from legacy_drivers.api import DriverContext
from legacy_drivers.edl import EdlDriver

SID = MeterId.parse("1BAB0012345678").server_id
E_IMPORT = Obis(1, 0, 1, 8, 0)


def push_file(n: int, value: int) -> bytes:
    entry = ListEntry(E_IMPORT.to_bytes(), unit=30, scaler=-1, value=Unsigned(value))
    return encode_sml([
        SmlMessage(bytes((n & 0xFF,)) + b"\x01", PublicOpenRes(None, None, n.to_bytes(4, "big"), SID, SecIndex(n))),
        SmlMessage(bytes((n & 0xFF,)) + b"\x02", GetListRes(None, SID, None, SecIndex(n), [entry])),
        SmlMessage(bytes((n & 0xFF,)) + b"\x03", PublicCloseRes()),
    ])


def pct(v: list[float], q: float) -> float:
    s = sorted(v)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main(n: int) -> None:
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    values = ValueStore("1BAB0012345678", clock=loop.time)
    arrived: dict[int, float] = {}
    sink = MappedSink(values, ReadingMap())
    inner_publish = values.publish

    def publish(readings):  # timestamp when the value lands in the store
        inner_publish(readings)
        for r in readings:
            if r.obis == E_IMPORT:
                arrived[r.value] = time.perf_counter()

    values.publish = publish  # type: ignore[method-assign]
    driver = EdlDriver({"port": os.ttyname(slave), "push_timeout": 60.0}, DriverContext("m", "/tmp"))
    task = asyncio.create_task(driver.run(sink))
    await asyncio.sleep(0.3)
    with tempfile.TemporaryDirectory() as d:
        model = BaseMeterModel(SID, values, Path(d), clock=loop.time)
        driver_lat, server_lat, total = [], [], []
        for i in range(n):
            value = 4288964 + i
            data = push_file(i, value)
            os.write(master, data)
            t_written = time.perf_counter()
            while value not in arrived:
                await asyncio.sleep(0)
            a = arrived[value] - t_written
            client = SmlClient.read_objects(SID)
            server = SmlServer(model)
            request = client.data_to_send(2036)
            t0 = time.perf_counter()
            server.data_received(request)
            response = b""
            while chunk := server.data_to_send(2036):
                response += chunk
            b = time.perf_counter() - t0
            client.data_received(response)
            assert any(r.obis == E_IMPORT and r.value == value for r in client.result.readings), "stale value"
            c = wire_time(len(encode_frame(2, 3, 1, 3, 0x10, request))) + \
                wire_time(len(encode_frame(1, 3, 2, 3, 0x10, response)))
            driver_lat.append(a)
            server_lat.append(b)
            total.append(a + b + c)
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    os.close(master)
    os.close(slave)
    ms = 1e3
    print(f"a. driver (pty -> decode -> value store): p50 {statistics.median(driver_lat)*ms:.2f} ms, "
          f"p99 {pct(driver_lat, .99)*ms:.2f} ms")
    print(f"b. SML server request -> response: p50 {statistics.median(server_lat)*ms:.3f} ms, "
          f"p99 {pct(server_lat, .99)*ms:.3f} ms")
    print(f"c. LMN wire time of the exchange: {c*ms:.2f} ms ({len(request)} + {len(response)} bytes)")
    print(f"reading -> served on the LMN (a+b+c): p50 {statistics.median(total)*ms:.2f} ms, "
          f"p99 {pct(total, .99)*ms:.2f} ms, max {max(total)*ms:.2f} ms, n={n} "
          f"(target p99 <= 50 ms; PTB-A 50.8 budget of base meters: 2000 ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    asyncio.run(main(ap.parse_args().n))
