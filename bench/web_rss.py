"""Benchmark of the web console's cost to the daemon (issue 15). Prints figures; asserts nothing.

For `bab run` with one simulated meter on a pty, once without and once with `--http 127.0.0.1:PORT`:

1. resident memory (VmRSS) after start-up, and with --http also while an event-stream client is connected
   and the status is polled ten times a second;
2. broadcast slot hits: the pty side sends address allocations and times the meter's reply against its slot
   window (the reply's first byte inside ``slot start .. slot start + 5 ms``), while (with --http) the page's
   traffic goes on.

Run: python bench/web_rss.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
import urllib.request
from pathlib import Path

from pty_frames import read_frames

from bab.hdlc.frame import GATEWAY_ADDRESS, UI, Kind, encode_frame
from bab.hdlc.receiver import FrameReceiver
from bab.hdlc.record import decode_records
from bab.hdlc.timing import SlotTiming


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, tmp: Path, http: str | None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        name = "http" if http else "plain"
        cfg = tmp / f"{name}.yaml"
        cfg.write_text(f"lmn:\n  port: {os.ttyname(self.slave)}\nstate_dir: {tmp / name}\n"
                       f"status_socket: {tmp / name}.sock\nlog_level: warning\n"
                       "meters:\n  - id: \"1BAB0000000001\"\n    driver: {type: simulated}\n")
        args = [sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)] + (["--http", http] if http else [])
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen(args, stdout=self.log.open("w"), stderr=subprocess.STDOUT, text=True)
        self.rx = FrameReceiver()
        self.url = None
        for _ in range(200 if http else 0):
            m = re.search(r"web console: (\S+)", self.log.read_text())
            if m:
                self.url = m.group(1)
                break
            time.sleep(0.05)

    def frames(self, timeout: float) -> list:
        return read_frames(self.master, self.rx, timeout)

    def close(self) -> None:
        if self.proc.poll() is not None:
            print(f"  (bab run exited with {self.proc.returncode}: {self.log.read_text()[-2000:]})")
        self.proc.terminate()
        self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


def slot_hits(d: Daemon, rounds: int) -> tuple[int, int, list[float]]:
    slots = SlotTiming()
    alloc = encode_frame(0x7F, 1, GATEWAY_ADDRESS, 1, UI, b"")
    hits = total = 0
    offsets = []
    for _ in range(rounds):
        os.write(d.master, alloc)
        t_end = time.perf_counter()
        for t, f in d.frames(slots.listen_window()):
            if f.kind is not Kind.UI:
                continue
            (rec,) = decode_records(f.info)
            begin = t_end + rec.slot * slots.slot_period
            total += 1
            hits += begin <= t <= begin + slots.reply_window
            offsets.append((t - begin) * 1000)
    return hits, total, offsets


def page_traffic(url: str, stop: threading.Event, counts: dict) -> None:
    """What an open console page does: one event stream, and (more than the page) status polls at 10 Hz."""
    stream = urllib.request.urlopen(url + "api/events?since=0", timeout=30)

    def read_stream() -> None:
        try:
            while not stop.is_set():
                if not stream.readline():
                    break
                counts["lines"] += 1
        except (OSError, ValueError, AttributeError):
            pass  # closed under it at the end

    t = threading.Thread(target=read_stream, daemon=True)
    t.start()
    while not stop.is_set():
        with urllib.request.urlopen(url + "api/adapter/status", timeout=10) as r:
            json.load(r)
        counts["polls"] += 1
        time.sleep(0.1)
    stream.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for http in (None, f"127.0.0.1:{free_port()}"):
            d = Daemon(Path(tmp), http)
            try:
                time.sleep(2.0)
                label = "with --http" if http else "without --http"
                print(f"bab run {label}: RSS after start {rss_mb(d.proc.pid):.1f} MB")
                stop = threading.Event()
                counts = {"lines": 0, "polls": 0}
                worker = None
                if http:
                    worker = threading.Thread(target=page_traffic, args=(d.url, stop, counts), daemon=True)
                    worker.start()
                    time.sleep(1.0)
                hits, total, offsets = slot_hits(d, args.rounds)
                stop.set()
                if worker:
                    worker.join(5)
                extra = f", {counts['polls']} status polls and {counts['lines']} event-stream lines meanwhile" \
                    if http else ""
                print(f"  slot hits: {hits}/{args.rounds} replies inside the 5 ms window "
                      f"({100 * hits / args.rounds:.2f} %, {total} arrived; reply start after slot begin p50 "
                      f"{statistics.median(offsets):.2f} ms, max {max(offsets):.2f} ms){extra}")
                print(f"  RSS at the end {rss_mb(d.proc.pid):.1f} MB")
            finally:
                d.close()


if __name__ == "__main__":
    main()
