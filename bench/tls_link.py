"""Benchmark: LMN TLS over the HDLC link (virtual bus at 921.6 kbit/s, virtual time), per TR-03116-3 curve.

For each curve (cert curve = ECDHE group, ECDHE-ECDSA-AES128-GCM-SHA256, MFL 512, one record per I-frame),
with the meter side on wolfSSL (BAB) and, side by side, on OpenSSL (Python ssl, the bench-only server of
bench/tls_handshake.py); the gateway side is always BAB's OpenSSL client:

* handshake conversation (SNRM, full handshake, close_notify, DISC): link time (frames, turnarounds and polls
  in virtual time), meter CPU and gateway CPU (thread time of the TLS calls), and the sum = the expected
  wall time with stop-and-wait on a PC (the CPU share grows 10-20x on a Raspberry Pi Zero);
* the slowest single meter-side handshake step (what the worker thread computes while the station answers
  RNR);
* request/response round trips of SML size (default 120-byte request, 120-byte answer; the test server
  reverses the request) through an established TLS connection: link time + CPU per round trip and the
  resulting rate, next to the same over plain selector 3.

    .venv/bin/python bench/tls_link.py [-n 5] [--round-trips 50]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from lmn_helpers import RequestClient, ReversingServer, frame_message  # noqa: E402
from tls_handshake import OpenSslServer, openssl_server_context  # noqa: E402

from bab.hdlc import events as ev  # noqa: E402
from bab.hdlc.primary import GatewayStation  # noqa: E402
from bab.hdlc.secondary import MeterStation, StationState  # noqa: E402
from bab.hdlc.timing import GatewayTiming, MeterTiming  # noqa: E402
from bab.lmn.bus import VirtualBus  # noqa: E402
from bab.lmn.node import LinkNode  # noqa: E402
from bab.lmn.simulation import Simulation  # noqa: E402
from bab.meter_id import MeterId  # noqa: E402
from bab.tls import keys, wolfssl_binding  # noqa: E402
from bab.tls.gateway_client import GatewayTlsContext  # noqa: E402
from bab.tls.hdlc_layer import InlineExecutor, TlsClientLayer, TlsServerLayer  # noqa: E402
from bab.tls.keys import Curve  # noqa: E402
from bab.tls.meter_server import MeterTlsContext  # noqa: E402

SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"
SERVER_ID = MeterId.parse("1BAB0000000001").server_id
# broadcasts early (to register), then practically never, so that they do not interleave with the measurement
TIMING = GatewayTiming(broadcast_period=1e6, broadcast_period_empty=0.3, check_period=1e6)


class Cpu:
    """Wraps a sans-I/O TLS object and sums the thread time of its calls."""

    def __init__(self, obj) -> None:
        self.obj = obj
        self.cpu = 0.0
        self.app_cpu = 0.0  # calls made after the handshake was complete
        self.steps: list[float] = []

    def _timed(self, name: str, *args):
        after_handshake = bool(getattr(self.obj, "handshake_complete", False))
        t = time.thread_time()
        try:
            return getattr(self.obj, name)(*args)
        finally:
            dt = time.thread_time() - t
            self.cpu += dt
            if after_handshake:
                self.app_cpu += dt
            if name == "receive_bytes" and not self.obj.handshake_complete or name == "receive_bytes" and dt > 1e-3:
                self.steps.append(dt)

    def receive_bytes(self, data: bytes) -> None:
        self._timed("receive_bytes", data)

    def records_to_send(self) -> list[bytes]:
        return self._timed("records_to_send")

    def send_application_data(self, data: bytes) -> None:
        self._timed("send_application_data", data)

    def start(self) -> None:
        self._timed("start")

    def close(self) -> None:
        self._timed("close")

    def __getattr__(self, name: str):
        return getattr(self.obj, name)


class OpenSslMeter(OpenSslServer):
    """The bench OpenSSL server with the attributes TlsServerLayer reads."""

    closed = False
    peer_closed = False
    info = None
    max_fragment_length = 512

    def receive_bytes(self, data: bytes) -> None:
        try:
            super().receive_bytes(data)
        except Exception as exc:  # close_notify etc. after the exchange: not part of the measurement
            if "EOF" not in str(exc) and "ZERO" not in type(exc).__name__.upper():
                raise


class Rounds:
    """Gateway-side inner layer: ``n`` request/response round trips, one after the other."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size
        self.done = 0
        self.out = bytearray(frame_message(b"r" * size))
        self.inbox = bytearray()

    def data_to_send(self, max_size: int) -> bytes:
        chunk = bytes(self.out[:max_size])
        del self.out[:max_size]
        return chunk

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        while len(self.inbox) >= 2 + int.from_bytes(self.inbox[:2], "big"):
            del self.inbox[: 2 + int.from_bytes(self.inbox[:2], "big")]
            self.done += 1
            if self.done < self.n:
                self.out += frame_message(b"r" * self.size)

    def is_done(self) -> bool:
        return self.done >= self.n

    def connection_lost(self, reason) -> None:
        self.reason = reason


def link(layers) -> tuple[Simulation, GatewayStation, MeterStation]:
    sim = Simulation(VirtualBus())
    gw = GatewayStation(TIMING)
    gw.start(0.0)
    st = MeterStation(SERVER_ID, layers, MeterTiming(), rng=random.Random(1))
    sim.add("gw", LinkNode([gw]))
    sim.add("bab", LinkNode([st]))
    assert sim.run_for(10.0, lambda: st.state is StationState.REGISTERED and st.address in gw.participants)
    sim.run_for(1.5)  # let the post-registration broadcast pass
    gw.next_events()
    return sim, gw, st


def converse(sim: Simulation, gw: GatewayStation, st: MeterStation, selector: int, layer) -> float:
    """Run one conversation; returns its duration in virtual (link) time."""
    t0 = sim.now
    gw.converse(st.address, selector, layer)
    ends: list = []

    def done() -> bool:
        ends.extend(e for e in gw.next_events() if isinstance(e, ev.ConversationDone | ev.ExchangeFailed))
        return bool(ends)

    assert sim.run_for(60.0, done)
    assert isinstance(ends[0], ev.ConversationDone), ends[0]
    return sim.now - t0


def bench_curve(curve: Curve, n: int, rounds: int, size: int) -> dict[str, dict[str, float]]:
    mk, mc = keys.generate_identity("1BAB0000000001", curve)
    gk, gc = keys.generate_identity("SMGW", curve)
    gctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=SUITE)
    wolf = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    ossl = openssl_server_context(mk, mc, gc, curve)
    out: dict[str, dict[str, float]] = {}
    for name, make in (("wolfSSL", wolf.new_connection), ("OpenSSL", lambda: OpenSslMeter(ossl))):
        meters: list[Cpu] = []

        def layers(selector: int, make=make, meters=meters):
            if selector != 1:
                return None
            meters.append(Cpu(make()))
            return TlsServerLayer(meters[-1], ReversingServer, executor=InlineExecutor())

        sim, gw, st = link(layers)
        hs_line, hs_meter, hs_gw, steps, rt_line, rt_cpu = [], [], [], [], [], []
        for _ in range(n):
            client = Cpu(gctx.new_connection())
            inner = RequestClient(b"")
            inner.answer = b""  # nothing to ask: handshake, close_notify, DISC
            hs_line.append(converse(sim, gw, st, 1, TlsClientLayer(client, inner)))
            hs_meter.append(meters[-1].cpu)
            hs_gw.append(client.cpu)
            steps.append(max(meters[-1].steps))
            # round trips through a fresh full handshake connection (handshake time subtracted)
            client = Cpu(gctx.new_connection())
            line = converse(sim, gw, st, 1, TlsClientLayer(client, Rounds(rounds, size)))
            rt_line.append((line - hs_line[-1]) / rounds)
            rt_cpu.append((meters[-1].app_cpu + client.app_cpu) / rounds)
        out[name] = {
            "hs_line": statistics.median(hs_line), "hs_meter": statistics.median(hs_meter),
            "hs_gw": statistics.median(hs_gw), "step": statistics.median(steps),
            "rt_line": statistics.median(rt_line), "rt_cpu": statistics.median(rt_cpu),
        }
    return out


def bench_plain(rounds: int, size: int) -> float:
    sim, gw, st = link(lambda sel: ReversingServer() if sel == 3 else None)
    empty = RequestClient(b"")
    empty.answer = b""
    base = converse(sim, gw, st, 3, empty)
    return (converse(sim, gw, st, 3, Rounds(rounds, size)) - base) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5, help="handshakes per curve and stack (median)")
    parser.add_argument("--round-trips", type=int, default=50)
    parser.add_argument("--size", type=int, default=120, help="request (and answer) size in bytes")
    args = parser.parse_args()
    if not wolfssl_binding.available():
        sys.exit("wolfSSL binding not built: python -m bab.tls.build_wolfssl")
    print(f"TLS over the LMN link, 921600 bit/s 8N1, suite {SUITE}, MFL 512, one record per I-frame; "
          f"median of {args.n}; gateway = OpenSSL client")
    print(f"{'curve':<16} {'meter':<8} {'link ms':>8} {'meterCPU':>9} {'gwCPU':>7} {'total ms':>9} "
          f"{'max step':>9} {'RT link':>8} {'RT CPU':>7} {'RT/s':>6}")
    for curve in Curve:
        r = bench_curve(curve, args.n, args.round_trips, args.size)
        for name, v in r.items():
            total = v["hs_line"] + v["hs_meter"] + v["hs_gw"]
            rt = v["rt_line"] + v["rt_cpu"]
            print(f"{curve.value:<16} {name:<8} {v['hs_line'] * 1e3:>8.1f} {v['hs_meter'] * 1e3:>9.2f} "
                  f"{v['hs_gw'] * 1e3:>7.2f} {total * 1e3:>9.1f} {v['step'] * 1e3:>9.2f} "
                  f"{v['rt_line'] * 1e3:>8.2f} {v['rt_cpu'] * 1e3:>7.3f} {1 / rt:>6.0f}")
    plain = bench_plain(args.round_trips, args.size)
    print(f"plain selector 3 (no TLS): round trip {plain * 1e3:.2f} ms link time, {1 / plain:.0f}/s")


if __name__ == "__main__":
    main()
