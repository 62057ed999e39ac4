"""Harness for running BAB against the reference SMGW: the LMN gateway software of the Ostfalia/PTB project that BAB
descends from (public repository dom3141/LMN_Communication_Example, commit 16042fb, GPLv3; LMN-STACK.md section 13).

The reference gateway is a test partner only: this module builds it from a checkout of that repository with the
build script and patches the workspace ships in ``../shared/tools/ostfalia-smgw/`` (nothing of its code is in
BAB), runs it on one end of a socat pty pair, talks to its control socket (UDP 127.0.0.1:50001, the protocol its
web UI used) and parses its debug output (``debug=1`` prints every frame it sends and receives, with a 100 us
time stamp) into :class:`WireFrame` records. :class:`BabProcess` runs ``bab run`` on the other end.

Where the pieces come from (each may be given by an environment variable):

* ``BAB_REFERENCE_SMGW``: a built ``lmn_smgw`` binary; otherwise
* ``BAB_REFERENCE_SMGW_GIT``: a git directory of the repository (bare or not), built once into
  ``~/.cache/bab/reference-smgw/<commit>/`` with ``build.sh``; default: the workspace mirror
  ``../.mirror/dom3141+LMN_Communication_Example/repo/.git`` next to the checkout, when present;
* ``BAB_REFERENCE_SMGW_TOOLS``: the folder with ``build.sh`` and ``patches.diff`` (default
  ``../shared/tools/ostfalia-smgw``).

:func:`unavailable` says in one sentence why a live run is not possible here (tests skip with it).

Recording conformance vectors (``tests/vectors/reference-smgw/``, see the README there)::

    .venv/bin/python tests/reference_smgw.py record tests/vectors/reference-smgw
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMIT = "16042fbed5f36e90e2d8704446e6d868d5a545d5"
TOOLS = Path(os.environ.get("BAB_REFERENCE_SMGW_TOOLS", REPO.parent / "shared" / "tools" / "ostfalia-smgw"))
DEFAULT_GIT = REPO.parent / ".mirror" / "dom3141+LMN_Communication_Example" / "repo" / ".git"
CONTROL = ("127.0.0.1", 50001)
PACKAGES = "g++ libwolfssl-dev libsml-dev uuid-dev socat"

#: The session of the reference README: meter ID 1EMH0004911613 = server ID 0A01454D4800004AF1FD, this MK.
METER_ID = "1EMH0004911613"
SERVER_ID = bytes.fromhex("0A01454D4800004AF1FD")
MASTER_KEY = bytes(range(16))


# --- building -----------------------------------------------------------------------------------------------


def _missing_tools() -> list[str]:
    missing = [t for t in ("socat", "g++", "patch", "git") if shutil.which(t) is None]
    for header in ("/usr/include/wolfssl/ssl.h", "/usr/include/sml/sml_file.h", "/usr/include/uuid/uuid.h"):
        if not Path(header).exists():
            missing.append(header)
    return missing


def unavailable() -> str | None:
    """None when a live run is possible, else the reason (one sentence)."""
    binary = os.environ.get("BAB_REFERENCE_SMGW")
    if binary:
        if not os.access(binary, os.X_OK):
            return f"BAB_REFERENCE_SMGW={binary} is not an executable"
        return None if shutil.which("socat") else "socat is not installed (apt-get install socat)"
    git = Path(os.environ.get("BAB_REFERENCE_SMGW_GIT", DEFAULT_GIT))
    if not git.exists():
        return ("the reference SMGW is not available: set BAB_REFERENCE_SMGW to a built lmn_smgw or "
                "BAB_REFERENCE_SMGW_GIT to a git directory of dom3141/LMN_Communication_Example")
    if not (TOOLS / "build.sh").exists():
        return f"the reference SMGW build tools are not at {TOOLS} (set BAB_REFERENCE_SMGW_TOOLS)"
    missing = _missing_tools()
    if missing:
        return f"cannot build the reference SMGW, missing: {', '.join(missing)} (apt-get install {PACKAGES})"
    return None


def binary() -> Path:
    """The reference gateway binary, built (once, cached) when needed."""
    given = os.environ.get("BAB_REFERENCE_SMGW")
    if given:
        return Path(given)
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bab" / "reference-smgw" / COMMIT[:12]
    built = out / "lmn_smgw"
    if not built.exists():
        git = Path(os.environ.get("BAB_REFERENCE_SMGW_GIT", DEFAULT_GIT))
        subprocess.run([str(TOOLS / "build.sh"), str(git), str(out)], check=True, capture_output=True)
    return built


# --- the gateway's debug output -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WireFrame:
    """One HDLC frame as the reference gateway logged it: ``t`` in seconds (its clock, 100 us steps),
    ``sent`` True for gateway -> meter, ``data`` the whole frame with its flags."""

    t: float
    sent: bool
    data: bytes

    @property
    def control(self) -> int:
        return self.data[7]


@dataclass
class Exchange:
    """One write of the gateway and what it read back (a unicast reply, or all broadcast replies)."""

    request: WireFrame
    replies: list[WireFrame] = field(default_factory=list)
    raw_reply: bytes = b""
    no_reply: bool = False
    frame_error: bool = False


_HEAD = re.compile(r"^(SEND|RECEIVE) DATA: \[TIME\]=(\d+)\.(\d{4})(.*)$")
_HEX_LINE = re.compile(r"^(0x[0-9A-F]{2} ?)+$")


def split_frames(raw: bytes) -> list[bytes]:
    """Split bytes read in one go by the HDLC length field, as the gateway does (LMN-STACK.md 3.1)."""
    out, pos = [], 0
    while pos + 3 <= len(raw) and raw[pos] == 0x7E:
        n = ((raw[pos + 1] & 0x07) << 8 | raw[pos + 2]) + 2
        out.append(raw[pos : pos + n])
        pos += n
    return out


def parse_log(text: str) -> list[Exchange]:
    """The gateway's ``debug=1`` output as a list of exchanges (request frame + reply frames)."""
    exchanges: list[Exchange] = []
    block: tuple[str, float, str, list[str]] | None = None

    def flush() -> None:
        if block is None:
            return
        kind, t, head, lines = block
        data = bytes(int(h, 16) for line in lines for h in line.split())
        if kind == "SEND":
            exchanges.append(Exchange(WireFrame(t, True, data)))
        elif exchanges:
            ex = exchanges[-1]
            ex.no_reply = "NO REPLY" in head
            ex.frame_error = "FRAME ERROR" in head or any("FRAME ERROR" in ln for ln in lines)
            ex.raw_reply = data
            ex.replies = [WireFrame(t, False, f) for f in split_frames(data)]

    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            flush()
            block = (m.group(1), int(m.group(2)) + int(m.group(3)) / 10000, m.group(4), [])
        elif block is not None:
            line = line.strip()
            if _HEX_LINE.match(line):
                block[3].append(line.replace("0x", ""))
            elif line.startswith("----"):
                flush()
                block = None
            elif "FRAME ERROR" in line:
                block = (block[0], block[1], block[2] + " FRAME ERROR", block[3])
    flush()
    return exchanges


def is_rnr(frame: bytes) -> bool:
    return len(frame) >= 9 and frame[7] & 0x0F == 0x05


def wire_report(exchanges: list[Exchange]) -> dict[str, object]:
    """What the gateway saw of a meter's discipline (LMN-STACK.md 13): every unicast answered by exactly one
    frame and nothing else, no frame errors, and the longest run of RNR answers."""
    problems: list[str] = []
    longest = run = 0
    unicast = 0
    for i, ex in enumerate(exchanges):
        if ex.request.data[3] == 0xFE:
            continue
        unicast += 1
        if ex.frame_error:
            problems.append(f"#{i}: frame error in the answer {ex.raw_reply.hex()}")
        elif ex.no_reply:
            problems.append(f"#{i}: no answer to {ex.request.data.hex()}")
        elif len(ex.replies) != 1 or ex.replies[0].data != ex.raw_reply:
            problems.append(f"#{i}: {len(ex.replies)} frames / stray bytes in {ex.raw_reply.hex()}")
        if ex.replies and is_rnr(ex.replies[0].data):
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return {"unicast_exchanges": unicast, "problems": problems, "longest_rnr_run": longest}


# --- processes ----------------------------------------------------------------------------------------------


def _kill(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class ReferenceSmgw:
    """The reference gateway on one end of a pty pair; :attr:`meter_tty` is the other end (BAB's port)."""

    def __init__(self, rundir: Path, *, exe: Path | None = None) -> None:
        self.rundir = Path(rundir)
        self.exe = exe or binary()
        self.meter_tty = self.rundir / "ttyMETER"
        self.log_path = self.rundir / "smgw.log"
        self._socat: subprocess.Popen | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> ReferenceSmgw:
        self.rundir.mkdir(parents=True, exist_ok=True)
        (self.rundir / "config.ini").write_text(
            "[config]\nport=50001\ntcp=0\nsim=0\nlog=1\nclear=1\ndebug=1\nflush=1\nrnrus=1\ndetails=0\n"
            "moredetails=0\n")
        self._socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.rundir / 'ttySMGW'}",
             f"pty,raw,echo=0,link={self.meter_tty}"], start_new_session=True)
        for _ in range(100):
            if self.meter_tty.exists() and (self.rundir / "ttySMGW").exists():
                break
            time.sleep(0.05)
        env = dict(os.environ, LMN_SERIAL=str(self.rundir / "ttySMGW"))
        log = self.log_path.open("wb")
        self._proc = subprocess.Popen(["stdbuf", "-oL", str(self.exe)], cwd=self.rundir, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        _kill(self._proc)
        _kill(self._socat)

    def command(self, cmd: str, timeout: float = 20.0) -> str:
        """One control-socket command; its final answer (the gateway first says BUSY), or 'timeout'."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(cmd.encode() + b"\n", CONTROL)
            end = time.monotonic() + timeout
            try:
                while time.monotonic() < end:
                    s.settimeout(max(0.01, end - time.monotonic()))
                    data, _ = s.recvfrom(65535)
                    if data != b"BUSY\n":
                        return data.decode(errors="replace").strip()
            except TimeoutError:
                pass
        return "timeout"

    def broadcast(self) -> list[str]:
        """The server IDs (hex) the gateway has registered."""
        answer = self.command("broadcast")
        return [] if answer.startswith("NO METER") or answer == "timeout" else answer.replace(";", " ").split()

    def get_value(self, server_id: bytes, obis_class_attr: str = "0100010800FF800200", tls: bool = False) -> str:
        return self.command(f"getValue({server_id.hex().upper()},{obis_class_attr},"
                            f"{'TLS_SML_COSEM' if tls else 'SML_COSEM'})")

    def load_credentials(self, server_id: bytes, master_key: bytes, meter_cert: bytes, meter_key: bytes,
                         gateway_cert: bytes, gateway_key: bytes, *, emh_bug: bool = False,
                         timeout: float = 30.0) -> str:
        """The four load commands of its web UI; SYM pairing runs after the fourth (its answer is returned)."""
        sid, mk, bug = server_id.hex().upper(), master_key.hex().upper(), int(emh_bug)
        answer = ""
        for cmd, der in (("loadServerCert", meter_cert), ("loadServerKey", meter_key),
                         ("loadClientCert", gateway_cert), ("loadClientKey", gateway_key)):
            answer = self.command(f"{cmd}({sid},{mk},{bug},{der.hex().upper()})", timeout)
        return answer

    def wait_registered(self, server_id: bytes, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if server_id.hex().upper() in self.broadcast():
                return True
            time.sleep(0.5)
        return False

    def exchanges(self) -> list[Exchange]:
        return parse_log(self.log_path.read_text(errors="replace")) if self.log_path.exists() else []


def realtime_prefix() -> list[str]:
    """``chrt -f 20``: BAB under the real-time scheduling its unit gives it (systemd/bab.service,
    ``CPUSchedulingPolicy=fifo``, priority 20), when this runs as root; otherwise nothing. Without it a busy
    machine can stall BAB's loop past a presence-check slot (seen: 10.8 ms on a loaded 2-core machine), which
    the reference gateway punishes with a drop at the first miss."""
    if os.geteuid() == 0 and shutil.which("chrt") and os.environ.get("BAB_INTEROP_REALTIME", "1") != "0":
        return ["chrt", "-f", "20"]
    return []


class BabProcess:
    """``bab run`` on the meter end of the pty pair, with its own config and state directory."""

    def __init__(self, workdir: Path, port: Path, meters: list[dict], *, seed: int | None = 7) -> None:
        self.workdir = Path(workdir)
        self.state_dir = self.workdir / "state"
        self.config_path = self.workdir / "bab.yaml"
        self.log_path = self.workdir / "bab.log"
        lines = [f"lmn:\n  port: {port}", f"state_dir: {self.state_dir}",
                 f"status_socket: {self.workdir / 'status.sock'}", "log_level: debug", "meters:"]
        if seed is not None:
            lines.insert(1, f"  random_seed: {seed}")
        for m in meters:
            if m.get("driver"):  # a driver of its own (e.g. an M-Bus meter on a pty), as a mapping
                driver = "".join(f"\n      {k}: {json.dumps(v)}" for k, v in m["driver"].items())
                lines.append(f"  - id: \"{m['id']}\"\n    driver:{driver}")
                continue
            lines.append(f"  - id: \"{m['id']}\"\n    driver:\n      type: simulated")
            if m.get("registers"):
                regs = ", ".join(f'"{k}": {v}' for k, v in m["registers"].items())
                lines.append(f"      registers: {{{regs}}}")
            if m.get("emh_bug"):
                lines.append("    sym:\n      emh_bug: true")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen | None = None

    def _bab(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bab.cli", *args], input=stdin, capture_output=True,
                              check=True, cwd=REPO)

    def set_master_key(self, meter_id: str, master_key: bytes) -> None:
        self._bab("keys", "--config", str(self.config_path), "set-master-key", "--meter", meter_id, "-",
                  stdin=master_key.hex().encode() + b"\n")

    def start(self) -> BabProcess:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([*realtime_prefix(), sys.executable, "-m", "bab.cli", "run", "--config",
                                       str(self.config_path)],
                                      cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def stop(self) -> int | None:
        _kill(self._proc)
        return None if self._proc is None else self._proc.returncode

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Credentials:
    """DER files of one commissioning: the meter's key and certificate (injected by SYM 0x03) and the gateway's,
    P-256 because the reference gateway offers only secp256r1."""

    meter_cert: bytes
    meter_key: bytes
    gateway_cert: bytes
    gateway_key: bytes

    @classmethod
    def generate(cls) -> Credentials:
        from bab.tls import keys

        out = []
        for name in ("BAB meter (interop)", "reference SMGW (interop)"):
            key, cert = keys.generate_identity(name, "secp256r1")
            out += [keys.certificate_der(cert), keys.private_key_der(key, sec1=True)]
        return cls(*out)

    @classmethod
    def load(cls, folder: Path) -> Credentials:
        return cls(*((folder / n).read_bytes() for n in
                     ("meter-cert.der", "meter-key.der", "gateway-cert.der", "gateway-key.der")))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (("meter-cert.der", self.meter_cert), ("meter-key.der", self.meter_key),
                           ("gateway-cert.der", self.gateway_cert), ("gateway-key.der", self.gateway_key)):
            (folder / name).write_bytes(data)


class Session:
    """A reference gateway and one ``bab run`` joined by a pty pair; a context manager that stops both."""

    def __init__(self, meters: list[dict] | None = None, *, workdir: Path | None = None, seed: int | None = 7,
                 master_key: bytes | None = MASTER_KEY) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bab-interop-"))
        self.meters = meters or [{"id": METER_ID}]
        self.gateway = ReferenceSmgw(self.workdir / "smgw")
        self.bab = BabProcess(self.workdir / "bab", self.gateway.meter_tty, self.meters, seed=seed)
        if master_key is not None:
            for m in self.meters:
                self.bab.set_master_key(m["id"], m.get("master_key", master_key))

    def __enter__(self) -> Session:
        self.gateway.start()
        self.bab.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bab.stop()
        self.gateway.stop()

    def unicast(self) -> Iterator[Exchange]:
        """Exchanges to a meter address (not the broadcasts)."""
        return (e for e in self.gateway.exchanges() if e.request.data[3] != 0xFE)


# --- recording vectors --------------------------------------------------------------------------------------


def record(folder: Path) -> None:
    """Record the reference sessions of ``tests/vectors/reference-smgw`` (see its README)."""
    from bab.meter_id import MeterId

    folder.mkdir(parents=True, exist_ok=True)
    creds = Credentials.generate()
    creds.save(folder / "keys")
    (folder / "keys" / "master-key.hex").write_text(MASTER_KEY.hex() + "\n")
    for name, meter in (("commissioning", {"id": METER_ID}), ("commissioning-emh", {"id": METER_ID, "emh_bug": True})):
        with Session([meter]) as s:
            sid = MeterId.parse(meter["id"]).server_id
            if not s.gateway.wait_registered(sid):
                raise SystemExit(f"{name}: the reference gateway did not register BAB")
            steps = [("plain read", s.gateway.get_value(sid)),
                     ("pairing", s.gateway.load_credentials(sid, MASTER_KEY, creds.meter_cert, creds.meter_key,
                                                            creds.gateway_cert, creds.gateway_key,
                                                            emh_bug=bool(meter.get("emh_bug")))),
                     ("plain read after pairing", s.gateway.get_value(sid)),
                     ("TLS read", s.gateway.get_value(sid, tls=True))]
            time.sleep(1.0)
            exchanges = s.gateway.exchanges()
        write_trace(folder / f"{name}.trace", exchanges, meter, steps)
        print(f"{name}: {len(exchanges)} exchanges; " + "; ".join(f"{k} -> {v}" for k, v in steps))


def write_trace(path: Path, exchanges: list[Exchange], meter: dict, steps: list[tuple[str, str]]) -> None:
    """The trace format of ``tests/vectors/reference-smgw/README.md``."""
    t0 = exchanges[0].request.t if exchanges else 0.0
    lines = ["# reference SMGW (Ostfalia, commit 16042fb) <-> BAB, recorded by tests/reference_smgw.py",
             f"# meter {meter['id']}  master key {MASTER_KEY.hex()}  emh_bug {bool(meter.get('emh_bug'))}  "
             "BAB lmn.random_seed 7",
             *(f"# step: {k} -> {v}" for k, v in steps)]
    for ex in exchanges:
        lines.append(f"{ex.request.t - t0:.4f} > {ex.request.data.hex()}")
        if ex.no_reply:
            lines.append(f"{ex.request.t - t0:.4f} < none")
        for r in ex.replies:
            lines.append(f"{r.t - t0:.4f} < {r.data.hex()}")
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        raise SystemExit("usage: reference_smgw.py record FOLDER")
    reason = unavailable()
    if reason:
        raise SystemExit(reason)
    sys.path.insert(0, str(REPO))
    record(Path(sys.argv[2]))
