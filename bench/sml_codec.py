"""Benchmark of the bab.sml codec (prints figures; no assertions).

(a) decode throughput on the libsml-testing captures in ../shared/vectors/sml-push, BAB side by side with
    smllib in the same run (MB/s of wire bytes and files/s; target BAB >= 2x smllib). BAB checks transport
    and message CRCs; smllib checks the transport CRC only.
(b) encode throughput of a typical GetProcParameter.Res file (Open.Res, GetProcParameter.Res with 4
    attributes, Close.Res) to transport bytes, and its decode for comparison.

Run: .venv/bin/python bench/sml_codec.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from bab.sml import (
    CosemScalerUnit,
    FileDecoded,
    GetProcParameterRes,
    ProcParKind,
    ProcParValue,
    PublicCloseRes,
    PublicOpenRes,
    Quirk,
    SecIndex,
    SmlFile,
    SmlMessage,
    SmlStreamDecoder,
    Tree,
    Unsigned,
    decode_sml,
    encode_sml,
)

CAPTURES = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "sml-push"


def _rate(fn: Callable[[], int], seconds: float) -> tuple[float, int, int]:
    """Run ``fn`` (returns units done) repeatedly for about ``seconds``; (elapsed, calls, units)."""
    fn()  # warm-up
    calls = units = 0
    t0 = time.perf_counter()
    while True:
        units += fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return elapsed, calls, units


def bench_decode(seconds: float) -> None:
    blobs = [p.read_bytes() for p in sorted(CAPTURES.glob("*.bin"))]
    if not blobs:
        print(f"(a) no captures in {CAPTURES}: skipped")
        return
    total = sum(map(len, blobs))

    def bab_once() -> int:
        n = 0
        for data in blobs:
            dec = SmlStreamDecoder(Quirk.EDL)
            for ev in dec.feed(data):
                if type(ev) is FileDecoded:
                    n += 1
        return n

    results = {"bab.sml": _rate(bab_once, seconds)}
    try:
        from smllib import SmlStreamReader
        from smllib.errors import CrcError
    except ImportError:
        SmlStreamReader = None  # noqa: N806

    if SmlStreamReader is not None:
        def smllib_once() -> int:
            n = 0
            for data in blobs:
                reader = SmlStreamReader()
                reader.add(data)
                while True:
                    try:
                        frame = reader.get_frame()
                    except CrcError:
                        continue
                    if frame is None:
                        break
                    try:
                        frame.parse_frame()
                    except Exception:  # noqa: BLE001 - count only what smllib decodes
                        continue
                    n += 1
            return n

        results["smllib"] = _rate(smllib_once, seconds)

    print(f"(a) decode of {len(blobs)} captures ({total} bytes per pass)")
    for name, (elapsed, calls, files) in results.items():
        mbs = total * calls / elapsed / 1e6
        print(f"    {name:8s} {mbs:7.3f} MB/s  {files / elapsed:9.0f} files/s  ({files // calls} files per pass)")
    if len(results) == 2:
        b, s = results["bab.sml"], results["smllib"]
        print(f"    speed-up bab.sml / smllib (bytes/s): {(b[1] / b[0]) / (s[1] / s[0]):.2f}x")


def typical_proc_parameter_file() -> SmlFile:
    sid = bytes.fromhex("0A01454D4800004AF1FD")
    obj = bytes.fromhex("0100010800FF800200")

    def attr(n: int, v: object) -> Tree:
        return Tree(bytes((0, n)), ProcParValue(ProcParKind.VALUE, v))  # type: ignore[arg-type]

    return SmlFile([
        SmlMessage(b"\x01", PublicOpenRes(None, b"SMGWCLID", b"\x00\x00\x00\x01", sid, SecIndex(2005970))),
        SmlMessage(b"\x02", GetProcParameterRes(sid, [obj, b"\x00\x02", b"\x00\x03", b"\x00\x04", b"\x00\x05"],
                                                Tree(obj, None, [
                                                    attr(2, Unsigned(4288964, 8)), attr(3, CosemScalerUnit(-1, 30)),
                                                    attr(4, Unsigned(2005970, 4)), attr(5, Unsigned(0x104, 4))]))),
        SmlMessage(b"\x03", PublicCloseRes()),
    ])


def bench_encode(seconds: float) -> None:
    f = typical_proc_parameter_file()
    wire = encode_sml(f)

    def enc() -> int:
        for _ in range(100):
            encode_sml(f)
        return 100

    def dec() -> int:
        for _ in range(100):
            decode_sml(wire)
        return 100

    e_el, _, e_n = _rate(enc, seconds)
    d_el, _, d_n = _rate(dec, seconds)
    print(f"(b) GetProcParameter.Res file ({len(wire)} bytes on the wire)")
    print(f"    encode {e_n / e_el:9.0f} files/s   ({e_el / e_n * 1e6:.1f} us per file)")
    print(f"    decode {d_n / d_el:9.0f} files/s   ({d_el / d_n * 1e6:.1f} us per file)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = ap.parse_args()
    bench_decode(args.seconds)
    bench_encode(args.seconds)


if __name__ == "__main__":
    main()
