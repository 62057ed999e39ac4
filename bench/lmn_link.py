"""Benchmark of BAB's LMN link (issue: LMN link). Prints figures; asserts nothing.

1. frame codec throughput (encode; receive = split + CRC check), MB/s
2. CPU share of one core for BAB's LMN path at a sustained 921.6 kbit/s in both directions (target <= 3 %), bare
   station and (``--sim-wrappers``, the default in the daemon) behind the lab meter's fault wrappers, no fault on
3. reply latency from a request's last byte to the reply's first byte over a pty, p50/p99 (target p99 <= 2 ms)
4. broadcast slot hit rate with 10 ms slots while the machine is loaded (target >= 99.9 %)
5. daemon RSS with 1 and with 8 meters (targets <= 40 MB / <= 60 MB)
6. time from process start to answering the first broadcast (target <= 1 s)

Items 3-6 run ``bab run``, whose meters always sit behind the lab meter's fault wrappers (bab/sim/); with
``--fault KIND`` (e.g. ``--fault bad_fcs``) the benchmark's meters run with that fault configured at probability 0,
so the wrappers check it at every frame but never inject.

Run: python bench/lmn_link.py [--quick] [--fault KIND]

``--cgroup-cpu 100,50,25`` instead runs the daemon in a CPU-throttled cgroup at each share of one core (a
stand-in for a slow Pi such as the Zero 2; needs root): cgroup v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``
or v2 ``cpu.max``, quota 1 ms per period of 1 ms / share (1 ms is the kernel's smallest quota), and reports
per step: start to first broadcast answer, control-frame reply latency p99 and the slot hit rate (8 meters,
no load besides the throttle). With ``--cgroup-rt`` the daemon runs SCHED_FIFO as bab.service does, limited by
the group's RT budget (``cpu.rt_runtime_us`` per ``cpu.rt_period_us``) instead.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from pty_frames import read_frames

from bab.hdlc.frame import (
    GATEWAY_ADDRESS,
    SNRM,
    UI,
    Frame,
    Kind,
    control_i,
    control_rr,
    encode_frame,
)
from bab.hdlc.receiver import FrameReceiver
from bab.hdlc.record import decode_records
from bab.hdlc.secondary import MeterStation, StationState
from bab.hdlc.timing import BAUDRATE, SlotTiming
from bab.lmn.node import LinkNode


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def codec_throughput() -> None:
    frames = [Frame(0x20, 1, 1, 1, control_i(i % 8, 0), bytes(range(256)) * 2) for i in range(200)]
    t = time.perf_counter()
    n = 0
    for _ in range(20):
        for f in frames:
            n += len(f.encode())
    enc = n / (time.perf_counter() - t) / 1e6
    stream = b"".join(f.encode() for f in frames)
    rx = FrameReceiver()
    t = time.perf_counter()
    for _ in range(20):
        for i in range(0, len(stream), 256):
            rx.feed(stream[i : i + 256])
    dec = 20 * len(stream) / (time.perf_counter() - t) / 1e6
    print(f"1. frame codec: encode {enc:.1f} MB/s, receive (split+HCS+FCS) {dec:.1f} MB/s (512-byte info fields)")


class Echo:
    def __init__(self) -> None:
        self.out = b""

    def data_received(self, data: bytes) -> None:
        self.out = data[::-1]

    def data_to_send(self, n: int) -> bytes:
        out, self.out = self.out[:n], self.out[n:]
        return out

    def is_busy(self) -> bool:
        return False

    def connection_lost(self) -> None:
        pass


def cpu_share(wrapped: bool = False, fault: str | None = None) -> None:
    """Feed one second's worth of line traffic (92,160 bytes of I frames) to a meter node, which answers with as
    many bytes; CPU per second of line time = share of one core. ``wrapped``: the station and its layers behind
    the lab meter's fault wrappers (as in the daemon), with ``fault`` on at probability 0 if given."""
    from bab.sim.catalogue import parse_fault
    from bab.sim.faults import FaultSet
    from bab.sim.hdlc import FaultyStation, faulty_layers

    faults = FaultSet("bench", clock=time.monotonic)
    if fault:
        faults.install(parse_fault(fault, {"probability": 0.0, **FAULT_PARAMS.get(fault, {})}))
    layers = faulty_layers(lambda s: Echo(), faults) if wrapped else (lambda s: Echo())
    m = MeterStation(b"\x0a\x01BAB\x00\x00\x00\x00\x01", layers)
    m.address, m.state = 0x20, StationState.REGISTERED
    node = LinkNode([FaultyStation(m, faults) if wrapped else m])
    node.bytes_received(encode_frame(0x20, 1, GATEWAY_ADDRESS, 1, SNRM), 0.0)
    node.transmissions_due(0.0)
    info = bytes(range(256)) * 2  # TLS records of up to 512 bytes (MFL 512) + header
    frames = [encode_frame(0x20, 1, GATEWAY_ADDRESS, 1, control_i(i % 8, (i) % 8), info) for i in range(8)]
    per_second = BAUDRATE // 10
    reps = per_second // len(frames[0]) + 1
    seconds = 5
    t = time.process_time()
    sent = 0
    now = 0.0
    for k in range(reps * seconds):
        now += 0.001
        node.bytes_received(frames[k % 8], now)
        for tx in node.transmissions_due(now):
            sent += len(tx.data)
    cpu = (time.process_time() - t) / seconds
    how = f"fault wrappers installed, {fault + ' at probability 0' if fault else 'no fault on'}" if wrapped \
        else "bare station"
    print(f"2. LMN path CPU at 921.6 kbit/s both ways ({how}): {cpu * 100:.2f} % of one core "
          f"({reps * len(frames[0]) / 1000:.0f} kB/s in, {sent / seconds / 1000:.0f} kB/s out)")


#: Required parameters of the kinds, for --fault (probability 0: checked at every frame, never injected).
FAULT_PARAMS = {"late_replies": {"ms": 50}, "rnr": {"seconds": 3600}, "attention": {"object": "1-0:1.8.0"}}
FAULT: str | None = None


def write_config(path: Path, port: str, n: int, state: Path) -> Path:
    faults = ""
    if FAULT:
        params = ", ".join(f"{k}: {v!r}" for k, v in FAULT_PARAMS.get(FAULT, {}).items())
        faults = f"    faults: [{{kind: {FAULT}, probability: 0{', ' + params if params else ''}}}]\n"
    meters = "".join(f'  - id: "1BAB{i:010d}"\n    driver: {{type: simulated}}\n{faults}' for i in range(1, n + 1))
    path.write_text(f"lmn:\n  port: {port}\nstate_dir: {state}\nlog_level: warning\nmeters:\n{meters}")
    return path


class CpuCgroup:
    """A cgroup that limits its processes to ``share`` of one CPU (v1 cpu controller, or v2 ``cpu.max``)."""

    V1 = Path("/sys/fs/cgroup/cpu")
    V2 = Path("/sys/fs/cgroup")

    def __init__(self, share: float, name: str = "bab-bench", realtime: bool = False) -> None:
        self.share = share
        self.realtime = realtime
        self.quota_us = 1000  # the kernel's smallest quota
        self.period_us = round(self.quota_us / share)
        if realtime:
            # SCHED_FIFO, as bab.service runs it: CFS quotas do not apply to RT tasks, the group's RT budget does
            if not (self.V1 / "cpu.rt_runtime_us").exists():
                raise RuntimeError("no cgroup v1 RT bandwidth control (cpu.rt_runtime_us)")
            self.path = self.V1 / f"{name}-rt-{os.getpid()}-{round(share * 100)}"
            self.path.mkdir(exist_ok=True)
            # a group's RT budget cannot exceed its parent's (the root's 95 %): "100 %" is 95 % here
            self.quota_us = min(self.quota_us, self.period_us * 95 // 100)
            (self.path / "cpu.rt_period_us").write_text(str(self.period_us))
            (self.path / "cpu.rt_runtime_us").write_text(str(self.quota_us))
            self.kind = "v1 cpu.rt_runtime_us, SCHED_FIFO 50"
        elif (self.V1 / "cpu.cfs_quota_us").exists():
            self.path = self.V1 / f"{name}-{os.getpid()}"
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(self.quota_us))
            self.kind = "v1 cpu.cfs_quota_us"
        elif (self.V2 / "cgroup.controllers").exists():
            self.path = self.V2 / f"{name}-{os.getpid()}"
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{self.quota_us} {self.period_us}")
            self.kind = "v2 cpu.max"
        else:
            raise RuntimeError("no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2) found")

    def enter(self) -> None:
        """Move the calling process into the cgroup (a ``preexec_fn``: the daemon starts throttled). It leaves
        the gateway side's SCHED_FIFO first: the CFS quota throttles normal tasks, and an RT task cannot
        join a group without an RT budget."""
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        if self.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))

    def throttled(self) -> int:
        for line in (self.path / "cpu.stat").read_text().splitlines():
            if line.startswith(("nr_throttled ", "nr_throttled\t")):
                return int(line.split()[1])
        return 0

    def remove(self) -> None:
        if self.realtime:  # give the RT budget back at once (the next step's group needs it)
            with contextlib.suppress(OSError):
                (self.path / "cpu.rt_runtime_us").write_text("0")
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


class PtyGateway:
    """A minimal blocking gateway on a pty master, timing replies."""

    def __init__(self, meters: int, tmp: Path, realtime: bool = False, cgroup: CpuCgroup | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(self.master)
        self.slave = slave
        cfg = write_config(tmp / f"b{meters}.yaml", os.ttyname(slave), meters, tmp / f"s{meters}")
        self.t_start = time.perf_counter()
        # realtime: what systemd/bab.service sets (CPUSchedulingPolicy=fifo); needs root, as the unit has.
        prefix = ["chrt", "-f", "50"] if realtime else []
        self.log_path = tmp / f"bab{meters}.log"
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "bab.cli", "run", "--config", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=self.log_path.open("w"),
                                     preexec_fn=cgroup.enter if cgroup else None)
        self.rx = FrameReceiver()

    def send(self, data: bytes) -> float:
        os.write(self.master, data)
        return time.perf_counter()

    def read_frames(self, timeout: float) -> list[tuple[float, Frame]]:
        """Frames arriving within timeout, each with the arrival time of its first chunk."""
        return read_frames(self.master, self.rx, timeout)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


def alloc(records: bytes = b"") -> bytes:
    return encode_frame(0x7F, 1, GATEWAY_ADDRESS, 1, UI, records)


def first_broadcast_and_latency(tmp: Path, quick: bool, realtime: bool, cgroup: CpuCgroup | None = None
                                ) -> dict[str, float]:
    tmp.mkdir(exist_ok=True)
    gw = PtyGateway(1, tmp, realtime, cgroup)
    reply_at = None
    record = None
    while time.perf_counter() - gw.t_start < 60:
        gw.send(alloc())
        frames = gw.read_frames(0.4)
        if frames:
            reply_at = frames[0][0]
            record = decode_records(frames[0][1].info)[0]
            break
    startup = (reply_at - gw.t_start) if reply_at else float("nan")
    print(f"6. start to first broadcast answer: {startup:.2f} s (python startup included)")
    if record is None:
        gw.close()
        return {"startup": startup, "p99": float("nan"), "answered": 0.0}
    addr = record.address
    gw.send(alloc(record.with_slot(0).encode()))  # confirm registration
    gw.read_frames(0.4)
    gw.send(encode_frame(addr, 3, GATEWAY_ADDRESS, 3, SNRM))
    gw.read_frames(0.2)
    lat = []
    asked = 200 if quick else 2000
    for _ in range(asked):
        t0 = gw.send(encode_frame(addr, 3, GATEWAY_ADDRESS, 3, control_rr(0)))
        frames = gw.read_frames(0.2)
        if frames and frames[0][1].kind in (Kind.RR, Kind.DM, Kind.RNR):
            lat.append(frames[0][0] - t0)
    tag = " (SCHED_FIFO)" if realtime else ""
    if lat:
        print(f"3. control-frame reply latency over a pty{tag}: p50 {statistics.median(lat)*1e3:.3f} ms, "
              f"p99 {pct(lat, 0.99)*1e3:.3f} ms, max {max(lat)*1e3:.3f} ms, n={len(lat)}")
    print(f"5. daemon RSS, 1 meter: {gw.rss_mb():.1f} MB")
    gw.close()
    return {"startup": startup, "p99": pct(lat, 0.99) if lat else float("nan"), "answered": len(lat) / asked}


def burn(stop) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def slot_hit_rate(tmp: Path, quick: bool, realtime: bool, cgroup: CpuCgroup | None = None, load: bool = True
                  ) -> float:
    gw = PtyGateway(8, tmp, realtime, cgroup)
    slots = SlotTiming()
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=burn, args=(stop,)) for _ in range(2 if load else 0)]
    for h in hogs:
        h.start()
        if os.geteuid() == 0:
            os.sched_setscheduler(h.pid, os.SCHED_OTHER, os.sched_param(0))
    try:
        # wait until the daemon answers (a throttled start takes longer), then measure
        end = time.perf_counter() + 60
        while time.perf_counter() < end:
            gw.send(alloc())
            if gw.read_frames(slots.listen_window()):
                break
        time.sleep(0.5)
        gw.read_frames(0.2)
        hits = total = 0
        late = []
        rounds = 100 if quick else 300
        for _ in range(rounds):
            t_end = gw.send(alloc())  # nobody listed: every meter answers, each in its own slot
            for t, f in gw.read_frames(slots.listen_window()):
                if f.kind is not Kind.UI:
                    continue
                (rec,) = decode_records(f.info)
                begin = t_end + rec.slot * slots.slot_period
                # The reply's first byte arrived at t (chunk arrival); it must lie inside the reply window.
                total += 1
                ok = begin <= t <= begin + slots.reply_window
                hits += ok
                late.append(t - begin)
        expected = rounds * 8
        loaded = "both cores loaded" if load else "no other load"
        print(f"4. slot hit rate{' (SCHED_FIFO)' if realtime else ''}, 8 meters, 10 ms slots, {loaded}: "
              f"{hits}/{expected} replies in their slot = "
              f"{100 * hits / expected:.2f} % ({total} arrived) (reply start after slot begin: p50 "
              f"{statistics.median(late)*1e3 if late else float('nan'):.2f} ms, "
              f"p99 {pct(late, 0.99)*1e3 if late else float('nan'):.2f} ms)")
        print(f"5. daemon RSS, 8 meters: {gw.rss_mb():.1f} MB")
        missed = gw.log_path.read_text().count("missed its slot")
        print(f"   (BAB itself reported {missed} reply(s) dropped because they could not start in their slot)")
        return hits / expected
    finally:
        stop.set()
        for h in hogs:
            h.join()
        gw.close()


def throttled_steps(shares: list[float], quick: bool, realtime: bool = False) -> None:
    """The daemon in a CPU-throttled cgroup at each share of one core: the figures per step, then a table."""
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for share in shares:
            cg = CpuCgroup(share, realtime=realtime)
            print(f"--- {share * 100:.0f} % of one core ({cg.kind}: quota {cg.quota_us} us per {cg.period_us} us)")
            try:
                lat = first_broadcast_and_latency(Path(d) / f"c{share}", quick, False, cg)
                hit = slot_hit_rate(Path(d) / f"c{share}", quick, False, cg, load=False)
                rows.append((share, cg.period_us, lat["startup"], lat["p99"], lat["answered"], hit, cg.throttled()))
            finally:
                cg.remove()
    print("\nCPU share | period | start to first answer | control reply p99 | replies | slot hit rate | throttled")
    for share, period, startup, p99, answered, hit, thr in rows:
        print(f"{share * 100:8.0f} % | {period / 1000:4.0f} ms | {startup:19.2f} s | {p99 * 1e3:14.3f} ms | "
              f"{answered * 100:5.1f} % | {hit * 100:11.2f} % | {thr:9d}")
    print("goals: slot hit rate >= 99.9 %, control-frame reply p99 <= 2 ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fault", help="run the daemon's meters with this fault kind on at probability 0")
    ap.add_argument("--cgroup-cpu", metavar="PCT,PCT,...",
                    help="run the daemon throttled to these percentages of one core (e.g. 100,50,25; root)")
    ap.add_argument("--cgroup-rt", action="store_true",
                    help="with --cgroup-cpu: the daemon SCHED_FIFO (as bab.service), throttled by the RT budget")
    args = ap.parse_args()
    global FAULT
    FAULT = args.fault
    if args.cgroup_cpu:
        if os.geteuid() != 0:
            sys.exit("--cgroup-cpu needs root (cgroups)")
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(60))  # the gateway side: independent hardware
        throttled_steps([float(p) / 100 for p in args.cgroup_cpu.split(",")], args.quick, args.cgroup_rt)
        return
    if os.geteuid() == 0:
        # This process plays the gateway, a separate device in reality: keep its clock honest under the load.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(60))
        print("(bench gateway side runs SCHED_FIFO 60, as independent hardware would)")
    codec_throughput()
    cpu_share()
    cpu_share(wrapped=True, fault=args.fault)
    with tempfile.TemporaryDirectory() as d:
        for realtime in (False, True):
            if realtime and os.geteuid() != 0:
                print("(not root: SCHED_FIFO runs skipped)")
                break
            first_broadcast_and_latency(Path(d) / str(realtime), args.quick, realtime)
            slot_hit_rate(Path(d) / str(realtime), args.quick, realtime)


if __name__ == "__main__":
    main()
