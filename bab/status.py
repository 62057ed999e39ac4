"""The daemon's status socket: a local, permission-checked unix socket that answers one JSON document.

``bab run`` starts a :class:`StatusServer` on ``/run/bab/status.sock`` (systemd's ``RuntimeDirectory=bab``)
with a *provider*, a callable the daemon supplies that returns the current status as a ``dict``. The
provider runs on the event loop for every request: it must be quick and must not block (build the dict from
counters and state the daemon already holds).
Every client that connects gets exactly one JSON document followed by ``\\n``, and the server closes the
connection. A client that sends nothing (or closes its sending side at once, as ``bab status`` does) gets the
status document. A client may instead send one request line, a JSON object such as
``{"command": "sim.fault", "meter": "1BAB0012345678", "kind": "bad_fcs", "params": {"probability": 0.2}}``,
and gets one JSON answer: the daemon's ``commands`` handler decides (the lab meter's commands,
:func:`bab.sim.control.handle_request`); ``{"command": "status"}`` is the status document. A client that sends
nothing and keeps its side open gets the document after :attr:`StatusServer.request_wait` seconds.
``bab status [--json]`` is :func:`status_command`, ``bab sim ...`` uses :func:`query_socket`.

Access control (two layers): the socket file has mode 0660 (connecting needs write permission on it), and
the server checks the peer's credentials (``SO_PEERCRED``) and allows only root, the daemon's own uid and
members of the socket file's group (``group=`` chooses it). A refused peer gets
``{"error": "permission denied", "code": "permission_denied"}``.

The JSON document (shape version 1; the daemon fills it, every key may be missing or null when unknown,
ages are seconds as floats, counters are ints since daemon start)::

    {
      "version": 1,
      "daemon": {"version": "0.1.0", "pid": 1234, "uptime_s": 3600.5, "config": "/etc/bab/bab.yaml"},
      "lmn": {"port": "/dev/bab-lmn", "baudrate": 921600, "port_open": true},
      "meters": [
        {
          "id": "1BAB0012345678",
          "lmn": {
            "state": "registered",          # "unregistered" | "registered"
            "address": 58,                  # 7-bit LMN address or null
            "selector": 1,                  # protocol selector of the open HDLC connection or null
            "paired": true,                 # SYM pairing done (TLS credentials present)
            "tls_up": true,                 # a TLS session is established
            "last_request_age_s": 0.8       # since the last frame the SMGW addressed to this meter
          },
          "driver": {"type": "d0", "health": "ok", "detail": ""},   # health = legacy_drivers.api.Health.value
          "readings": [                     # see reading_entry()
            {"obis": "1-0:1.8.0*255", "value": "12345.678", "unit": "kWh", "status": [], "age_s": 2.1}
          ],
          "errors": {"bad_frames": 0, "tls_failures": 0, "sym_failures": 0, "driver_errors": 0},
          "faults": {                       # the lab meter (bab.sim): what the gateway was exposed to
            "active": [{"kind": "bad_fcs", "params": {}, "probability": 0.2, "count": null, "injected": 3}],
            "injected": {"bad_fcs": 3}      # per kind, since daemon start
          }
        }
      ]
    }

Extra keys are allowed and are shown by ``bab status --json``; the table shows the keys above.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from bab.reading import Reading, ReadingStatus
from bab.units import Unit

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/bab/status.sock"
SOCKET_ENV = "BAB_STATUS_SOCKET"  # overrides DEFAULT_SOCKET for the client
SHAPE_VERSION = 1

# Exit codes of ``bab status`` (3 = "not running" as in LSB init scripts / systemctl status).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3
EXIT_PERMISSION = 4

StatusProvider = Callable[[], Mapping[str, Any]]
CommandHandler = Callable[[Mapping[str, Any]], Mapping[str, Any]]
MAX_REQUEST = 64 * 1024  # bytes of one request line


# --------------------------------------------------------------------------------------------------- server


@dataclass(frozen=True)
class PeerCredentials:
    """Who is on the other end of a unix socket (``struct ucred`` from ``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


PeerCheck = Callable[[PeerCredentials], bool]


def peer_credentials(sock: socket.socket | Any) -> PeerCredentials:
    """The credentials of the process connected to the unix stream socket ``sock``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


def _supplementary_groups(cred: PeerCredentials) -> set[int]:
    """The peer's groups: from /proc/PID/status, else from the group database."""
    try:
        for line in Path(f"/proc/{cred.pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    try:
        name = pwd.getpwuid(cred.uid).pw_name
    except KeyError:
        return set()
    return {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}


def default_peer_check(socket_gid: int, own_uid: int | None = None) -> PeerCheck:
    """Allow root, the daemon's own uid, and members (primary or supplementary) of group ``socket_gid``."""
    me = os.geteuid() if own_uid is None else own_uid

    def allowed(cred: PeerCredentials) -> bool:
        if cred.uid in (0, me) or cred.gid == socket_gid:
            return True
        return socket_gid in _supplementary_groups(cred)

    return allowed


class StatusServerError(RuntimeError):
    """The status socket cannot be created (e.g. another daemon is serving it)."""


class StatusServer:
    """Serves the provider's status document on a unix socket; use ``async with`` or start()/close()."""

    def __init__(
        self,
        provider: StatusProvider,
        path: str | os.PathLike[str] = DEFAULT_SOCKET,
        *,
        mode: int = 0o660,
        group: int | str | None = None,
        peer_check: PeerCheck | None = None,
        commands: CommandHandler | None = None,
        request_wait: float = 0.25,
    ) -> None:
        """``group`` (name or gid) is given to the socket file; ``peer_check`` replaces the default check;
        ``commands`` answers request lines (None: only the status document is served)."""
        self.provider = provider
        self.commands = commands
        self.request_wait = request_wait
        self.requests = 0  # request lines answered (commands)
        self.path = Path(path)
        self.mode = mode
        self.group = group
        self._peer_check = peer_check
        self._server: asyncio.AbstractServer | None = None
        self.served = 0  # documents sent
        self.refused = 0  # peers refused by the credential check
        self.failures = 0  # provider errors

    async def start(self) -> None:
        """Create the socket (replacing a stale one) and start serving.

        Raises :class:`StatusServerError` with the reason when the socket cannot be created (directory not
        writable, unknown group, another daemon serving it).
        """
        try:
            await self._start()
        except StatusServerError:
            raise
        except (OSError, KeyError) as exc:
            raise StatusServerError(f"cannot create the status socket {self.path}: {exc}") from exc
        log.info("status socket %s (mode %o)", self.path, self.mode)

    async def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        # Bind under a temporary name, set mode/group, then rename: the socket is never reachable with
        # looser permissions than ``mode``, whatever the process umask is.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, self.mode)
            if self.group is not None:
                gid = self.group if isinstance(self.group, int) else grp.getgrnam(self.group).gr_gid
                os.chown(tmp, -1, gid)
            os.replace(tmp, self.path)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_REQUEST)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        if self._peer_check is None:
            self._peer_check = default_peer_check(os.stat(self.path).st_gid)

    def _remove_stale(self) -> None:
        try:
            st = self.path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise StatusServerError(f"{self.path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1)
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # nobody listens: a leftover of a crashed daemon
            return
        finally:
            probe.close()
        raise StatusServerError(f"{self.path} is served by a running process (another bab daemon?)")

    async def close(self) -> None:
        """Stop serving and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def __aenter__(self) -> StatusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line: bytes | None = await asyncio.wait_for(reader.readline(), self.request_wait)
            except TimeoutError:
                line = b""
            except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                line = None  # longer than the reader's limit
            writer.write(self._document_for(writer.get_extra_info("socket"), line))
            await asyncio.wait_for(writer.drain(), 5)
        except (TimeoutError, OSError) as exc:
            log.debug("status client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(writer.wait_closed(), 5)

    def _document_for(self, sock: Any, line: bytes | None = b"") -> bytes:
        assert self._peer_check is not None
        try:
            cred = peer_credentials(sock)
            allowed = self._peer_check(cred)
        except Exception as exc:  # a check that fails refuses, it never crashes the daemon
            log.warning("status socket: peer check failed: %s", exc)
            cred, allowed = None, False
        if not allowed:
            self.refused += 1
            log.warning("status socket: refused %s", cred)
            return _encode({"error": "permission denied", "code": "permission_denied"})
        if line is None or line.strip():
            answer = self._answer(line)
            if answer is not None:
                return answer
        try:
            doc = dict(self.provider())
            doc.setdefault("version", SHAPE_VERSION)
            data = _encode(doc)
        except Exception as exc:
            self.failures += 1
            log.exception("status provider failed")
            return _encode({"error": f"status provider failed: {exc}", "code": "provider_failed"})
        self.served += 1
        return data


    def _answer(self, line: bytes | None) -> bytes | None:
        """The answer to a request line (None: it asks for the status document)."""
        if line is None:
            return _encode({"error": f"request longer than {MAX_REQUEST} bytes", "code": "bad_request"})
        try:
            request = json.loads(line)
        except ValueError:
            return _encode({"error": "the request is not valid JSON", "code": "bad_request"})
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return _encode({"error": 'a request is a JSON object with a "command"', "code": "bad_request"})
        if request["command"] == "status":
            return None
        if self.commands is None:
            return _encode({"error": f"command {request['command']!r} not served here", "code": "bad_command"})
        try:
            answer = dict(self.commands(request))
        except Exception as exc:  # a failing command must not take the daemon down
            self.failures += 1
            log.exception("status socket: command %s failed", request["command"])
            return _encode({"error": f"command failed: {exc}", "code": "command_failed"})
        self.requests += 1
        return _encode(answer)


def _encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"


_BASE_SYMBOL = {
    Unit.W: "W", Unit.VA: "VA", Unit.VAR: "var", Unit.WH: "Wh", Unit.VAH: "VAh", Unit.VARH: "varh",
    Unit.A: "A", Unit.V: "V", Unit.HZ: "Hz", Unit.PERCENT: "%", Unit.SECOND: "s", Unit.MINUTE: "min",
    Unit.HOUR: "h", Unit.CELSIUS: "°C", Unit.AH: "Ah", Unit.COUNT: "",
}
_KILO_UNITS = {Unit.W, Unit.VA, Unit.VAR, Unit.WH, Unit.VAH, Unit.VARH}


def reading_entry(reading: Reading, now: float) -> dict[str, Any]:
    """A reading as an entry of ``meters[].readings``: exact decimal string, unit symbol, flags, age.

    Energy and power of 1000 or more base units are shown with the k prefix (12345678 Wh -> "12345.678" kWh).
    """
    value: Decimal = reading.decimal
    symbol = _BASE_SYMBOL.get(reading.unit, reading.unit.name.lower())
    if reading.unit in _KILO_UNITS and abs(value) >= 1000:
        value, symbol = value.scaleb(-3), "k" + symbol
    text = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    flags = [f.name.lower() for f in ReadingStatus if f.name and f in reading.status]
    return {
        "obis": str(reading.obis),
        "value": text,
        "unit": symbol,
        "status": flags,
        "age_s": None if reading.time is None else round(max(0.0, now - reading.time), 3),
    }


# --------------------------------------------------------------------------------------------------- client


class StatusError(Exception):
    """``bab status`` could not get a status document."""

    exit_code = EXIT_ERROR


class DaemonNotRunning(StatusError):
    exit_code = EXIT_NOT_RUNNING


class StatusPermissionDenied(StatusError):
    exit_code = EXIT_PERMISSION


def default_socket_path() -> str:
    """``$BAB_STATUS_SOCKET`` or :data:`DEFAULT_SOCKET`."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def query_status(path: str | os.PathLike[str] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """Connect to the daemon's status socket and return its JSON document (blocking).

    Raises :class:`DaemonNotRunning`, :class:`StatusPermissionDenied` or :class:`StatusError`, each with a
    message an operator can act on.
    """
    return query_socket(path, None, timeout)


def query_socket(path: str | os.PathLike[str] | None, request: Mapping[str, Any] | None,
                 timeout: float = 5.0) -> dict[str, Any]:
    """Send one request line (None: none, ask for the status document) and return the daemon's JSON answer.

    Raises as :func:`query_status`; an answer ``{"error": ...}`` other than permission denied raises
    :class:`StatusError` with the daemon's message.
    """
    path = str(path or default_socket_path())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except FileNotFoundError:
            raise DaemonNotRunning(
                f"no status socket at {path}: the BAB daemon is not running (see: systemctl status bab)"
            ) from None
        except ConnectionRefusedError:
            raise DaemonNotRunning(
                f"nothing listens on {path}: the BAB daemon is not running (see: systemctl status bab)"
            ) from None
        except PermissionError:
            raise StatusPermissionDenied(_permission_hint(path)) from None
        except OSError as exc:
            raise StatusError(f"cannot connect to {path}: {exc}") from None
        try:
            if request is not None:
                s.sendall(json.dumps(request, default=str).encode() + b"\n")
            s.shutdown(socket.SHUT_WR)  # nothing (more) to send: the daemon answers at once
        except OSError as exc:
            raise StatusError(f"writing to {path} failed: {exc}") from None
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            raise StatusError(f"the daemon did not answer on {path} within {timeout:g} s") from None
        except OSError as exc:
            raise StatusError(f"reading {path} failed: {exc}") from None
    finally:
        s.close()
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError:
        raise StatusError(f"the daemon sent no valid JSON on {path}") from None
    if not isinstance(doc, dict):
        raise StatusError(f"the daemon sent no JSON object on {path}")
    if "error" in doc:
        if doc.get("code") == "permission_denied":
            raise StatusPermissionDenied(_permission_hint(path))
        raise StatusError(f"the daemon reported: {doc['error']}")
    return doc


def _permission_hint(path: str) -> str:
    try:
        group = grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        group = "bab"
    return (f"permission denied on {path}: run as root (sudo bab status) or add your user to "
            f"group '{group}' (sudo usermod -aG {group} $USER, then log in again)")


def _fmt(v: Any, suffix: str = "") -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}{suffix}"
    return f"{v}{suffix}"


def _age(v: Any) -> str:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "-"
    if v < 60:
        return f"{v:.1f} s ago"
    if v < 3600:
        return f"{v / 60:.1f} min ago"
    return f"{v / 3600:.1f} h ago"


def render_status(doc: Mapping[str, Any]) -> str:
    """The status document as a human-readable report, one block per meter."""
    lines: list[str] = []
    d = doc.get("daemon") or {}
    up = d.get("uptime_s")
    lines.append(f"BAB {_fmt(d.get('version'))}  pid {_fmt(d.get('pid'))}  "
                 f"up {_age(up).removesuffix(' ago') if up is not None else '-'}")
    lmn = doc.get("lmn") or {}
    if lmn:
        if lmn.get("port_open") is False and lmn.get("port_error"):
            lines.append(f"LMN port missing: {_fmt(lmn.get('port'))} ({lmn['port_error']}); "
                         f"retries {_fmt(lmn.get('port_retries'))}, lost {_fmt(lmn.get('port_losses'))} times")
        else:
            port_state = {True: "open", False: "CLOSED"}.get(lmn.get("port_open"), "-")
            lines.append(f"LMN port {_fmt(lmn.get('port'))} @ {_fmt(lmn.get('baudrate'))} baud: {port_state}")
    meters = doc.get("meters") or []
    if not meters:
        lines.append("no meters configured")
    for m in meters:
        ml = m.get("lmn") or {}
        drv = m.get("driver") or {}
        err = m.get("errors") or {}
        addr = ml.get("address")
        sel = ml.get("selector")
        lines.append("")
        lines.append(f"Meter {_fmt(m.get('id'))}")
        addr_text = f"0x{addr:02X}" if isinstance(addr, int) and not isinstance(addr, bool) else "-"
        lines.append(f"  LMN     {_fmt(ml.get('state'))}  address {addr_text}"
                     f"  selector {_fmt(sel)}  paired {_fmt(ml.get('paired'))}  TLS {_fmt(ml.get('tls_up'))}"
                     f"  last request {_age(ml.get('last_request_age_s'))}")
        detail = drv.get("detail")
        lines.append(f"  driver  {_fmt(drv.get('type'))}: {_fmt(drv.get('health'))}"
                     + (f" ({detail})" if detail else ""))
        readings = m.get("readings") or []
        if readings:
            w_obis = max(len(str(r.get("obis", ""))) for r in readings)
            w_val = max(len(f"{r.get('value', '')} {r.get('unit', '')}".strip()) for r in readings)
            for r in readings:
                val = f"{_fmt(r.get('value'))} {r.get('unit') or ''}".strip()
                flags = ", ".join(r.get("status") or [])
                lines.append(f"  {str(r.get('obis', '-')):<{w_obis}}  {val:>{w_val}}  {_age(r.get('age_s'))}"
                             + (f"  [{flags}]" if flags else ""))
        else:
            lines.append("  no readings yet")
        lines.append("  errors  " + "  ".join(
            f"{label} {_fmt(err.get(key, 0))}" for key, label in (
                ("bad_frames", "bad frames"), ("tls_failures", "TLS failures"),
                ("sym_failures", "SYM failures"), ("driver_errors", "driver errors"))))
        faults = m.get("faults") or {}
        active = ", ".join(str(f.get("kind")) for f in faults.get("active") or [])
        injected = faults.get("injected") or {}
        if active or injected:
            lines.append(f"  faults  active: {active or 'none'}; injected: "
                         + (", ".join(f"{k} {v}" for k, v in sorted(injected.items())) or "none"))
    return "\n".join(lines) + "\n"


def status_command(
    socket_path: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
    timeout: float = 5.0,
) -> int:
    """``bab status [--json] [--socket PATH]``: print the daemon's status; returns the exit code."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        doc = query_status(socket_path, timeout)
    except StatusError as exc:
        print(f"bab status: {exc}", file=err)
        return exc.exit_code
    if as_json:
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render_status(doc))
    return EXIT_OK
