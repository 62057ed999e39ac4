"""Benchmark of BAB's LMN TLS endpoints: meter side on wolfSSL (cffi binding) vs. OpenSSL (Python ssl).

Prints, per TR-03116-3 curve (cert curve = ECDHE group, mutual auth, ECDHE-ECDSA-AES128-GCM-SHA256,
max_fragment_length 512, TLS bytes cut into 128-byte frames):
  * meter-side (server) CPU time per full handshake, median of N;
  * bytes on the wire per handshake (both directions) and line time at 921600 bit/s;
and the bulk application-data throughput through the meter side (encrypt + decrypt, 512-byte records).
The same runs with an OpenSSL server (Python ssl, MemoryBIO) give the ratio wolfSSL/OpenSSL. The client is
always BAB's OpenSSL gateway client. Two figures of the meter's own group choice follow: the meter-side CPU
when the client offers X25519 first and then the group (the meter parses the ClientHello and picks the group's
pinned context), and the time to build a MeterTlsContext (one wolfSSL context per TR group).

    .venv/bin/python bench/tls_handshake.py [-n 30]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import time

from bab.tls import keys, openssl_ctl, wolfssl_binding
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.keys import Curve
from bab.tls.meter_server import MeterTlsContext
from bab.tls.policy import CIPHER_SUITES
from bab.tls.records import RecordSplitter

SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"
OPENSSL_GROUP = {
    Curve.SECP256R1: "P-256",
    Curve.SECP384R1: "P-384",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
}


class OpenSslServer:
    """Minimal sans-I/O OpenSSL TLS 1.2 server with the same interface as MeterTlsServer (bench only)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._in, self._outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._outbio, server_side=True)
        self._out = RecordSplitter()
        self._app = bytearray()
        self.handshake_complete = False

    def receive_bytes(self, data: bytes) -> None:
        self._in.write(data)
        if not self.handshake_complete:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return
            self.handshake_complete = True
        while True:
            try:
                chunk = self._obj.read(16384)
            except ssl.SSLWantReadError:
                return
            if not chunk:
                return
            self._app += chunk

    def records_to_send(self) -> list[bytes]:
        self._out.feed(self._outbio.read())
        return self._out.records()

    def send_application_data(self, data: bytes) -> None:
        self._obj.write(data)

    def read_application_data(self) -> bytes:
        data = bytes(self._app)
        self._app.clear()
        return data


def openssl_server_context(key_pem: bytes, cert_pem: bytes, peer_cert_pem: bytes, curve: Curve) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(":".join(CIPHER_SUITES))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=keys.certificate_der(peer_cert_pem))
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | 0x200000
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    openssl_ctl.set_groups(ctx, OPENSSL_GROUP[curve])
    openssl_ctl.use_certificate_and_key(ctx, keys.certificate_der(cert_pem), keys.private_key_der(key_pem))
    return ctx


def timed_pump(client, server, chunk: int = 128) -> tuple[float, int]:
    """Pump until quiet; returns (CPU seconds spent in the server, bytes moved)."""
    server_cpu = 0.0
    moved = 0
    while True:
        progress = False
        for rec in client.records_to_send():
            progress = True
            moved += len(rec)
            for i in range(0, len(rec), chunk):
                t = time.thread_time()
                server.receive_bytes(rec[i : i + chunk])
                server_cpu += time.thread_time() - t
        t = time.thread_time()
        out = server.records_to_send()
        server_cpu += time.thread_time() - t
        for rec in out:
            progress = True
            moved += len(rec)
            for i in range(0, len(rec), chunk):
                client.receive_bytes(rec[i : i + chunk])
        if not progress:
            return server_cpu, moved


def bench_curve(curve: Curve, n: int) -> dict[str, tuple[float, int]]:
    mk, mc = keys.generate_identity("1EMH0012345678", curve)
    gk, gc = keys.generate_identity("SMGW", curve)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=SUITE)
    results = {}
    wolf = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    ossl = openssl_server_context(mk, mc, gc, curve)
    for name, make in (("wolfSSL", wolf.new_connection), ("OpenSSL", lambda: OpenSslServer(ossl))):
        times, sizes = [], []
        for _ in range(n):
            server, client = make(), cctx.new_connection()
            client.start()
            cpu, moved = timed_pump(client, server)
            assert server.handshake_complete and client.handshake_complete
            times.append(cpu)
            sizes.append(moved)
        results[name] = (statistics.median(times), int(statistics.median(sizes)))
    return results


def bench_x25519_first(curve: Curve, n: int) -> tuple[float, Curve | None]:
    """Meter CPU per handshake (median) for a client offering X25519 first, then ``curve``."""
    mk, mc = keys.generate_identity("1EMH0012345678", curve)
    gk, gc = keys.generate_identity("SMGW", curve)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, raw_groups=f"X25519:{OPENSSL_GROUP[curve]}",
                             ciphers=SUITE)
    wolf = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    times = []
    group = None
    for _ in range(n):
        server, client = wolf.new_connection(), cctx.new_connection()
        client.start()
        cpu, _ = timed_pump(client, server)
        assert server.handshake_complete
        group = server.info.group
        times.append(cpu)
    return statistics.median(times), group


def bench_context_setup(n: int = 20) -> float:
    mk, mc = keys.generate_identity("1EMH0012345678", Curve.BRAINPOOL_P256R1)
    _, gc = keys.generate_identity("SMGW", Curve.BRAINPOOL_P256R1)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
        times.append(time.perf_counter() - t)
        ctx.close()
    return statistics.median(times)


def bench_bulk(total: int = 4 << 20) -> dict[str, tuple[float, float]]:
    curve = Curve.SECP256R1
    mk, mc = keys.generate_identity("1EMH0012345678", curve)
    gk, gc = keys.generate_identity("SMGW", curve)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=SUITE)
    wolf = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    ossl = openssl_server_context(mk, mc, gc, curve)
    block = bytes(range(256)) * 64  # 16 KiB
    out = {}
    for name, make in (("wolfSSL", wolf.new_connection), ("OpenSSL", lambda: OpenSslServer(ossl))):
        server, client = make(), cctx.new_connection()
        client.start()
        timed_pump(client, server)
        # meter encrypts (send) ...
        t = time.perf_counter()
        for _ in range(total // len(block)):
            server.send_application_data(block)
        records = server.records_to_send()
        enc = time.perf_counter() - t
        for rec in records:
            client.receive_bytes(rec)
        assert len(client.read_application_data()) == total
        # ... and decrypts (receive)
        for _ in range(total // len(block)):
            client.send_application_data(block)
        records = client.records_to_send()
        t = time.perf_counter()
        for rec in records:
            server.receive_bytes(rec)
        dec = time.perf_counter() - t
        assert len(server.read_application_data()) == total
        out[name] = (total / enc / 1e6, total / dec / 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=30, help="handshakes per curve and stack (median)")
    args = parser.parse_args()
    print(
        f"wolfSSL {wolfssl_binding.library_version()} (cffi) vs {ssl.OPENSSL_VERSION}; suite {SUITE}, "
        f"MFL 512, 128-byte frames, median of {args.n}"
    )
    print(
        f"{'curve':<16} {'wolfSSL ms':>10} {'OpenSSL ms':>10} {'ratio':>6} {'wire B':>7} {'(OpenSSL)':>9} "
        f"{'line ms':>8}"
    )
    for curve in Curve:
        r = bench_curve(curve, args.n)
        w, o = r["wolfSSL"], r["OpenSSL"]
        line_ms = w[1] * 10 / 921600 * 1000  # 8N1 = 10 bit per byte
        print(
            f"{curve.value:<16} {w[0] * 1e3:>10.2f} {o[0] * 1e3:>10.2f} {w[0] / o[0]:>6.2f} {w[1]:>7d} "
            f"{o[1]:>9d} {line_ms:>8.1f}"
        )
    print("meter-side group choice, client offering X25519 first:")
    for curve in Curve:
        cpu, group = bench_x25519_first(curve, args.n)
        print(f"  X25519:{OPENSSL_GROUP[curve]:<16} -> {group.value if group else '-':<16} {cpu * 1e3:6.2f} ms")
    print(f"MeterTlsContext setup (5 pinned wolfSSL contexts): {bench_context_setup() * 1e3:.2f} ms (median of 20)")
    bulk = bench_bulk()
    for name, (enc, dec) in bulk.items():
        print(f"bulk {name:<8} meter encrypt {enc:7.1f} MB/s, decrypt {dec:7.1f} MB/s (512-byte records)")
    ratio_enc = bulk["OpenSSL"][0] / bulk["wolfSSL"][0]
    ratio_dec = bulk["OpenSSL"][1] / bulk["wolfSSL"][1]
    print(f"bulk OpenSSL/wolfSSL ratio: encrypt {ratio_enc:.1f}x, decrypt {ratio_dec:.1f}x")


if __name__ == "__main__":
    main()
