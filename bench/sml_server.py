"""Benchmark of the meter's SML server (prints figures; no assertions).

(a) Server time per request, from request bytes in (``data_received``) to response bytes out
    (``data_to_send``), p50/p99/max, for the typical requests of an SMGW poll: the GetProcParameter.Req of
    vectors/lmn-frames.txt (1.8.0 with 4 attributes), the SmlReader's request (6 objects), GetList, a
    crypto-reset SetProcParameter, and the request split into 64-byte I-frame chunks. Target p99 <= 2 ms.
(b) Encode throughput of the typical GetProcParameter.Res file the server builds (model read + encode).

Run: .venv/bin/python bench/sml_server.py [--n 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bab.cosem import BaseMeterModel, ObjectName
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.reading import Reading
from bab.sml import (
    GetListReq,
    GetProcParameterReq,
    ProcParKind,
    ProcParValue,
    PublicCloseReq,
    PublicOpenReq,
    SetProcParameterReq,
    SmlMessage,
    Tree,
    decode_sml,
    encode_sml,
)
from bab.sml.client import SmlClient
from bab.sml.server import SmlServer
from bab.values import ValueStore

SID = MeterId.parse("1BAB0012345678").server_id

E_IN = ObjectName(Obis.parse("1-0:1.8.0"), 0x8002).to_bytes()
RESET = ObjectName(Obis.parse("1-0:94.49.0*7"), 1).to_bytes()


def make_model(state_dir: Path) -> BaseMeterModel:
    values = ValueStore("1BAB0012345678", clock=time.monotonic)
    values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"), Reading.from_text("1-0:2.8.0", "1.5", "kWh"),
                    Reading.from_text("1-0:16.7.0", "432.1", "W")])
    return BaseMeterModel(SID, values, state_dir, clock=time.monotonic)


def request(*bodies) -> bytes:
    return encode_sml([SmlMessage(b"\x01", PublicOpenReq(client_id=b"GW", req_file_id=b"\x00\x01", server_id=SID)),
                       *(SmlMessage(bytes((i + 2,)), b) for i, b in enumerate(bodies)),
                       SmlMessage(b"\x7f", PublicCloseReq())])


def requests() -> dict[str, tuple[bytes, int]]:
    attrs = [n.to_bytes(2, "big") for n in (2, 3, 4, 5)]
    reset = SetProcParameterReq(parameter_tree_path=[RESET, attrs[0]], parameter_tree=Tree(
        RESET, None, [Tree(attrs[0], ProcParValue(ProcParKind.VALUE, True))]))
    gpp = request(GetProcParameterReq(parameter_tree_path=[E_IN, *attrs]))
    return {
        "GetProcParameter 1.8.0 (vector)": (gpp, 0),
        "SmlReader poll (6 objects)": (SmlClient.read_objects(SID).request, 0),
        "GetList": (request(GetListReq(client_id=b"GW")), 0),
        "SetProcParameter crypto-reset": (request(reset), 0),
        "GetProcParameter in 64-byte chunks": (gpp, 64),
    }


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(Path(tmp))
        model.crypto_reset_hook = lambda: True
        server = SmlServer(model)
        print(f"(a) server time per request, n={args.n} (request bytes in -> response bytes out)")
        for label, (wire, chunk) in requests().items():
            times = []
            size = 0
            for _ in range(args.n):
                t0 = time.perf_counter()
                if chunk:
                    for i in range(0, len(wire), chunk):
                        server.data_received(wire[i:i + chunk])
                else:
                    server.data_received(wire)
                out = server.data_to_send(1 << 20)
                times.append(time.perf_counter() - t0)
                size = len(out)
            times.sort()
            print(f"  {label:38s} req {len(wire):4d} B  res {size:4d} B  p50 {percentile(times, .5) * 1e3:.3f} ms"
                  f"  p99 {percentile(times, .99) * 1e3:.3f} ms  max {times[-1] * 1e3:.3f} ms"
                  f"  mean {statistics.fmean(times) * 1e3:.3f} ms")
        assert server.stats.internal_errors == 0
        # (b) encode throughput of the typical GetProcParameter.Res file (model read + SML encode)
        gpp = requests()["GetProcParameter 1.8.0 (vector)"][0]
        req_file = decode_sml(gpp)
        n = args.n * 4
        t0 = time.perf_counter()
        total = 0
        for _ in range(n):
            total += len(server.response_for(req_file))
        dt = time.perf_counter() - t0
        print(f"(b) GetProcParameter.Res file build+encode: {n / dt:,.0f} files/s, {total / dt / 1e6:.2f} MB/s"
              f" ({total // n} B per file)")


if __name__ == "__main__":
    main()
