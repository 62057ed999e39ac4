"""Stock TLS tools through the bridge, in real time: ``openssl s_client`` subprocesses talk TCP to the
bridge, which carries each connection as one HDLC connection on selector 1 over a virtual RS-485 bus to a
meter station running BAB's wolfSSL TLS layer (with a reversing application behind it, so that application
data can be checked). The client offers of issue 11 complete on an allowed group; each refusal reaches
s_client as the right fatal alert. The last test runs everything as processes: ``bab bus``, ``bab run``,
``bab bridge`` and s_client with OpenSSL's default groups. testssl.sh through the bridge runs behind the
``testssl`` marker (``pytest -m testssl``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lmn_helpers import FAST_GATEWAY, ReversingServer, frame_message

from bab.gateway.app import SoftwareGateway
from bab.gateway.bridge import SelectorBridge
from bab.gateway.bridge_server import serve_bridge
from bab.hdlc.secondary import MeterStation, StationState
from bab.hdlc.timing import MeterTiming
from bab.lmn.asyncbus import AsyncBus
from bab.lmn.node import LinkNode
from bab.lmn.runner import NodeRunner
from bab.meter_id import MeterId
from bab.tls import keys, wolfssl_binding
from bab.tls.errors import TlsError
from bab.tls.keys import Curve

pytestmark = [
    pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed"),
]

METER_ID = "1BAB0000000042"
TEMP_KEY_NAME = {  # how s_client names the ECDHE group ("Server Temp Key: ECDH, <name>, <bits> bits")
    Curve.SECP256R1: "prime256v1",
    Curve.SECP384R1: "secp384r1",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
}
GROUP_ARG = {Curve.SECP256R1: "P-256", Curve.SECP384R1: "P-384", Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
             Curve.BRAINPOOL_P384R1: "brainpoolP384r1", Curve.BRAINPOOL_P512R1: "brainpoolP512r1"}


def write_identity(directory: Path, name: str, cn: str, curve: Curve) -> tuple[Path, Path]:
    key, cert = keys.generate_identity(cn, curve)
    keys.save_private_key(directory / f"{name}-key.pem", key)
    keys.save_certificate(directory / f"{name}-cert.pem", cert)
    return directory / f"{name}-key.pem", directory / f"{name}-cert.pem"


class Lab:
    """Meter station (BAB's TLS layer) + bridge on an AsyncBus in this event loop; TCP on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.gw_key, self.gw_cert = write_identity(directory, "gw", "SMGW", Curve.SECP256R1)
        self.bad_key, self.bad_cert = write_identity(directory, "intruder", "INTRUDER", Curve.SECP256R1)
        self.meter_cert: Path | None = None
        self.identities: dict[Curve, tuple[Path, object]] = {}
        self.ctx = None
        self.plain = False  # serve the reversing application without TLS (tests of the bridge itself)
        self.failures: list[TlsError] = []
        self.log: list[bytes] = []
        self.lines: list[str] = []

    def use_meter_curve(self, curve: Curve) -> None:
        """Give the meter its identity on ``curve`` (the next connection uses it). The identities and
        contexts are made once, before the bus runs: making one blocks this event loop, which the meter
        station shares, for 5-20 ms, enough to miss a presence-check slot under load."""
        from bab.tls.meter_server import MeterTlsContext

        if curve not in self.identities:
            key, cert = write_identity(self.dir, f"meter-{curve.value}", METER_ID, curve)
            self.identities[curve] = cert, MeterTlsContext(key_pem=key.read_bytes(), cert_pem=cert.read_bytes(),
                                                           peer_cert_pem=self.gw_cert.read_bytes())
        self.meter_cert, self.ctx = self.identities[curve]

    def layers(self, selector: int):  # type: ignore[no-untyped-def]
        from bab.tls.hdlc_layer import TlsServerLayer

        if selector == 1 and self.plain:
            return ReversingServer(self.log)
        if selector != 1 or self.ctx is None:
            return None
        return TlsServerLayer(self.ctx.new_connection(), lambda: ReversingServer(self.log),
                              on_failure=self.failures.append, name=METER_ID)

    async def start(self) -> None:
        bus = AsyncBus()
        self.station = MeterStation(MeterId.parse(METER_ID).server_id, self.layers, MeterTiming(),
                                    rng=random.Random(3))
        meter_runner = NodeRunner(LinkNode([self.station]), lambda data: meter_port.write(data))
        meter_port = bus.attach("meter", meter_runner.feed)
        gateway = SoftwareGateway(FAST_GATEWAY, report=self.lines.append, report_exchanges=False,
                                  conversation_timeout=60.0)
        self.bridge = SelectorBridge(gateway, report=self.lines.append)
        gw_runner = NodeRunner(LinkNode([self.bridge]), lambda data: gw_port.write(data))
        gw_port = bus.attach("gateway", gw_runner.feed)
        self.tasks = [asyncio.create_task(meter_runner.run()), asyncio.create_task(gw_runner.run())]
        self.server, self.stats = await serve_bridge(self.bridge, gw_runner.poke, "127.0.0.1", 0,
                                                     report=self.lines.append)
        self.port = self.server.sockets[0].getsockname()[1]
        for _ in range(200):
            if self.station.state is StationState.REGISTERED and gateway.station.participants:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the meter did not register")

    async def stop(self) -> None:
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def pinned(self) -> list[str]:
        assert self.meter_cert is not None
        return ["-cert", str(self.gw_cert), "-key", str(self.gw_key), "-CAfile", str(self.meter_cert),
                "-verify_return_error"]


async def s_client(port: int, *args: str, send: bytes = b"", expect: bytes = b"",
                   timeout: float = 30.0) -> tuple[int, bytes, str]:
    """Run ``openssl s_client -brief`` against ``port``; send ``send`` after the handshake and wait for
    ``expect`` on stdout before closing stdin. Returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = bytearray(), bytearray()

    async def collect(stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(4096):
            into.extend(chunk)

    readers = [asyncio.create_task(collect(proc.stdout, out)), asyncio.create_task(collect(proc.stderr, err))]
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        if send:
            while b"CONNECTION ESTABLISHED" not in err and proc.returncode is None and loop.time() < end:
                await asyncio.sleep(0.02)
            proc.stdin.write(send)
            await proc.stdin.drain()
        while expect and expect not in out and proc.returncode is None and loop.time() < end:
            await asyncio.sleep(0.02)
        with contextlib.suppress(ConnectionError):
            proc.stdin.close()
        rc = await asyncio.wait_for(proc.wait(), max(1.0, end - loop.time()))
        await asyncio.gather(*readers)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return rc, bytes(out), err.decode(errors="replace")


@pytest.fixture
async def lab(tmp_path: Path):
    lab = Lab(tmp_path)
    for curve in Curve:
        lab.use_meter_curve(curve)
    lab.use_meter_curve(Curve.SECP256R1)
    await lab.start()
    yield lab
    await lab.stop()


def temp_key(stderr: str) -> str | None:
    m = re.search(r"Server Temp Key: ECDH, ([^,]+),", stderr)
    return m.group(1) if m else None


async def test_s_client_with_default_groups_and_a_pinned_certificate(lab: Lab) -> None:
    """The done criterion of issue 11 in one process: OpenSSL's default groups (X25519 first), -tls1_2."""
    rc, out, err = await s_client(lab.port, "-tls1_2", *lab.pinned(), send=frame_message(b"hello meter"),
                                  expect=frame_message(b"retem olleh"))
    assert "Protocol version: TLSv1.2" in err and "Verification: OK" in err, err
    assert temp_key(err) == "prime256v1", err
    assert frame_message(b"retem olleh") in out and lab.log == [b"hello meter"]
    assert lab.failures == [] and rc == 0


GROUP_OFFERS = [
    ("X25519:P-256", Curve.SECP256R1, Curve.SECP256R1),  # X25519 first
    ("X448:brainpoolP384r1:brainpoolP512r1", Curve.BRAINPOOL_P384R1, Curve.BRAINPOOL_P384R1),
    ("P-521:P-384", Curve.SECP384R1, Curve.SECP384R1),
] + [(GROUP_ARG[c], c, c) for c in Curve]  # each of the five alone


async def test_client_offers_through_the_bridge(lab: Lab) -> None:
    for offer, cert_curve, chosen in GROUP_OFFERS:
        lab.use_meter_curve(cert_curve)
        payload = f"offer {offer}".encode()
        rc, out, err = await s_client(lab.port, "-tls1_2", "-groups", offer, *lab.pinned(),
                                      send=frame_message(payload), expect=frame_message(payload[::-1]))
        assert temp_key(err) == TEMP_KEY_NAME[chosen], (offer, err)
        assert frame_message(payload[::-1]) in out, (offer, out, err)
    assert lab.failures == []


REFUSALS = [
    # (s_client arguments, meter certificate curve, alert number s_client must report, failure on the meter)
    (["-tls1_2", "-cert", "{bad_cert}", "-key", "{bad_key}"], Curve.SECP256R1, 42, "bad certificate"),
    (["-tls1_2"], Curve.SECP256R1, 40, "no certificate"),
    (["-tls1_2", "-groups", "X25519:X448", "{pinned}"], Curve.SECP256R1, 40, "forbidden group"),
    (["-tls1_3", "{pinned}"], Curve.SECP256R1, 70, "protocol version"),
    (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "{pinned}"], Curve.SECP256R1, 70, "protocol version"),
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256", "{pinned}"],
     Curve.SECP256R1, 40, "no shared cipher"),
]


async def test_each_refusal_reaches_s_client_as_its_alert(lab: Lab) -> None:
    for args, cert_curve, alert_number, failure in REFUSALS:
        lab.use_meter_curve(cert_curve)
        expanded: list[str] = []
        for a in args:
            if a == "{pinned}":
                expanded += lab.pinned()
            else:
                expanded.append(a.format(bad_cert=lab.bad_cert, bad_key=lab.bad_key))
        before = len(lab.failures)
        rc, _, err = await s_client(lab.port, *expanded)
        assert rc != 0 and f"SSL alert number {alert_number}" in err, (args, err)
        assert "unexpected eof" not in err
        for _ in range(100):  # the meter's failure callback runs in its own step
            if len(lab.failures) > before:
                break
            await asyncio.sleep(0.02)
        assert [f.reason.value for f in lab.failures[before:]] == [failure], (args, lab.failures[before:])
    # a brainpool meter certificate and OpenSSL's default groups: the meter answers (on P-256), and OpenSSL
    # refuses the certificate itself, its curve not being in its own list
    lab.use_meter_curve(Curve.BRAINPOOL_P256R1)
    rc, _, err = await s_client(lab.port, "-tls1_2", *lab.pinned())
    assert rc != 0 and "wrong curve" in err, err
    rc, _, err = await s_client(lab.port, "-tls1_2", "-groups", "X25519:brainpoolP256r1", *lab.pinned())
    assert temp_key(err) == "brainpoolP256r1" and rc == 0, err
    # the meter still serves a correct client afterwards
    lab.use_meter_curve(Curve.SECP256R1)
    rc, _, err = await s_client(lab.port, "-tls1_2", *lab.pinned())
    assert "Protocol version: TLSv1.2" in err and rc == 0


async def test_a_half_closed_client_still_gets_the_answer(lab: Lab) -> None:
    """The client shuts down its sending side right after its request: the bridge sends DISC only once the
    meter has answered and been quiet, then closes the TCP connection."""
    lab.plain = True
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
    writer.write(frame_message(b"half closed"))
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10.0)  # until the bridge closes
    assert answer == frame_message(b"desolc flah")
    writer.close()
    for _ in range(100):
        if any("closed by the client" in line for line in lab.lines):
            break
        await asyncio.sleep(0.02)
    assert any("closed by the client (13 bytes to the meter, 13 back)" in line for line in lab.lines), lab.lines
    assert lab.station.connected_selector is None


# --- the whole thing as processes --------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bab(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bab.cli", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@contextlib.contextmanager
def processes(tmp_path: Path, meter_curve: Curve = Curve.SECP256R1):
    """``bab bus``, ``bab run`` (one simulated meter, TLS files in the config) and ``bab bridge``."""
    mkey, mcert = write_identity(tmp_path, "meter", METER_ID, meter_curve)
    gkey, gcert = write_identity(tmp_path, "gw", "SMGW", Curve.SECP256R1)
    bus_port, tls_port = free_port(), free_port()
    config = tmp_path / "bab.yaml"
    config.write_text(
        f"lmn:\n  port: socket://127.0.0.1:{bus_port}\nstate_dir: {tmp_path / 'state'}\n"
        f"status_socket: {tmp_path / 'status.sock'}\nlog_level: info\nmeters:\n"
        f'  - id: "{METER_ID}"\n    driver: {{type: simulated}}\n'
        f"    tls: {{key_file: {mkey}, cert_file: {mcert}, gateway_cert_file: {gcert}}}\n")
    procs = [bab("bus", "--listen", f"127.0.0.1:{bus_port}", log=tmp_path / "bus.log")]
    try:
        wait_for_port(bus_port)
        procs.append(bab("run", "--config", str(config), log=tmp_path / "run.log"))
        procs.append(bab("bridge", "--port", f"socket://127.0.0.1:{bus_port}", "--listen", f"127.0.0.1:{tls_port}",
                         "--broadcast-period", "2", "--log-level", "info", log=tmp_path / "bridge.log"))
        wait_for_port(tls_port)
        wait_for_line(tmp_path / "bridge.log", "registered at address", 20.0)
        yield tls_port, (gkey, gcert, mcert)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    import socket
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def wait_for_line(path: Path, text: str, timeout: float) -> None:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path}:\n{path.read_text() if path.exists() else ''}")


def test_bab_bridge_to_bab_run_with_openssl_s_client(tmp_path: Path) -> None:
    with processes(tmp_path) as (port, (gkey, gcert, mcert)):
        done = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-brief", "-cert", str(gcert),
             "-key", str(gkey), "-CAfile", str(mcert), "-verify_return_error"],
            input=b"", capture_output=True, timeout=60)
        err = done.stderr.decode()
        assert "Protocol version: TLSv1.2" in err and "Verification: OK" in err, err
        assert temp_key(err) == "prime256v1", err
        # and an intruder gets its alert from the daemon, which logs and counts the refusal
        ikey, icert = write_identity(tmp_path, "intruder", "INTRUDER", Curve.SECP256R1)
        bad = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-brief", "-cert", str(icert),
             "-key", str(ikey)], input=b"", capture_output=True, timeout=60)
        assert "SSL alert number 42" in bad.stderr.decode(), bad.stderr
        wait_for_line(tmp_path / "run.log", "TLS failure: bad certificate", 10.0)
    run_log = (tmp_path / "run.log").read_text()
    assert "TLS established (TLSv1.2, ECDHE-ECDSA-AES128-GCM-SHA256, group secp256r1)" in run_log, run_log
    assert "answered with alert bad_certificate" in run_log
    bridge_log = (tmp_path / "bridge.log").read_text()
    assert "connection 1 from 127.0.0.1" in bridge_log and "connection 2 from 127.0.0.1" in bridge_log


def test_bridge_command_line_errors(tmp_path: Path) -> None:
    from bab.cli import main

    assert main(["bridge", "--port", "socket://127.0.0.1:1", "--listen", "nohostport"]) == 2
    assert main(["bridge", "--port", "socket://127.0.0.1:1", "--meter", "not-a-meter-id"]) == 2
    assert main(["bridge", "--port", "loop://", "--listen", "127.0.0.1:0", "--duration", "0.3"]) == 0


@pytest.mark.testssl
@pytest.mark.skipif(shutil.which("testssl") is None, reason="testssl.sh not installed (apt-get install testssl.sh)")
def test_testssl_through_the_bridge(tmp_path: Path) -> None:
    """testssl.sh sees TLS 1.2 only, exactly the four TR-03116-3 suites and all five TR groups, against a
    meter with a certificate on brainpoolP256r1 (BAB's default curve)."""
    with processes(tmp_path, Curve.BRAINPOOL_P256R1) as (port, _):
        done = subprocess.run(["testssl", "--color", "0", "--warnings", "off", "-p", "-E", "-f",
                               f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=900)
    out = done.stdout
    protocols = dict(re.findall(r"^ (SSLv2|SSLv3|TLS 1(?:\.\d)?)\s+(.*?)\s*$", out, re.M))
    assert protocols["TLS 1.2"].startswith("offered"), out
    assert all(v.startswith("not offered") for k, v in protocols.items() if k != "TLS 1.2"), protocols
    suites = re.findall(r"^ x(c0[0-9a-f]{2})\s", out, re.M)
    assert sorted(set(suites)) == ["c023", "c024", "c02b", "c02c"], out
    curves = re.search(r"Elliptic curves offered:\s+(.*?)\n\n", out, re.S).group(1).split()
    assert sorted(curves) == sorted(["prime256v1", "secp384r1", "brainpoolP256r1", "brainpoolP384r1",
                                     "brainpoolP512r1"]), out
