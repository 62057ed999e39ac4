"""bab.status: the status socket server and the ``bab status`` client, together, on a temp-dir socket."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bab.reading import Reading, ReadingStatus
from bab.status import (
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_PERMISSION,
    DaemonNotRunning,
    PeerCredentials,
    StatusError,
    StatusPermissionDenied,
    StatusServer,
    StatusServerError,
    default_peer_check,
    query_status,
    reading_entry,
    render_status,
    status_command,
)

DOC: dict[str, Any] = {
    "daemon": {"version": "0.1.0", "pid": 4242, "uptime_s": 7300.0, "config": "/etc/bab/bab.yaml"},
    "lmn": {"port": "/dev/bab-lmn", "baudrate": 921600, "port_open": True},
    "meters": [
        {
            "id": "1BAB0012345678",
            "lmn": {"state": "registered", "address": 0x3A, "selector": 1, "paired": True, "tls_up": False,
                    "last_request_age_s": 0.8},
            "driver": {"type": "d0", "health": "stale", "detail": "no telegram for 60 s"},
            "readings": [
                {"obis": "1-0:1.8.0", "value": "12345.678", "unit": "kWh", "status": [], "age_s": 2.1},
                {"obis": "1-0:16.7.0", "value": "432.1", "unit": "W", "status": ["stale"], "age_s": 95.0},
            ],
            "errors": {"bad_frames": 3, "tls_failures": 1, "sym_failures": 0, "driver_errors": 7},
        },
        {"id": "1BAB0000000002", "lmn": {"state": "unregistered", "address": None}, "readings": []},
    ],
}


async def _query(path: Path, **kw: Any) -> dict[str, Any]:
    return await asyncio.to_thread(query_status, str(path), **kw)


async def _command(path: Path, as_json: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(status_command, str(path), as_json, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "status.sock"
    calls = []

    def provider() -> dict[str, Any]:
        calls.append(1)
        return DOC

    async with StatusServer(provider, path) as server:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        doc = await _query(path)
        assert doc == {**DOC, "version": 1}
        doc = await _query(path)  # fresh document per connection
        assert len(calls) == 2 and server.served == 2
    assert not path.exists()  # removed on close


async def test_status_command_json_and_table(tmp_path: Path) -> None:
    path = tmp_path / "status.sock"
    async with StatusServer(lambda: DOC, path):
        code, out, err = await _command(path, as_json=True)
        assert code == EXIT_OK and err == ""
        assert json.loads(out)["meters"][0]["id"] == "1BAB0012345678"

        code, out, err = await _command(path, as_json=False)
    assert code == EXIT_OK, err
    assert "Meter 1BAB0012345678" in out
    assert "registered  address 0x3A  selector 1  paired yes  TLS no  last request 0.8 s ago" in out
    assert "d0: stale (no telegram for 60 s)" in out
    assert "1-0:1.8.0   12345.678 kWh  2.1 s ago" in out
    assert "1.6 min ago  [stale]" in out
    assert "bad frames 3  TLS failures 1  SYM failures 0  driver errors 7" in out
    assert "Meter 1BAB0000000002" in out and "unregistered  address -" in out
    assert "no readings yet" in out
    assert "up 2.0 h" in out and "/dev/bab-lmn @ 921600 baud: open" in out


async def test_peer_check_sees_real_credentials_and_can_refuse(tmp_path: Path) -> None:
    path = tmp_path / "status.sock"
    seen: list[PeerCredentials] = []

    def refuse(cred: PeerCredentials) -> bool:
        seen.append(cred)
        return False

    async with StatusServer(lambda: DOC, path, peer_check=refuse) as server:
        with pytest.raises(StatusPermissionDenied, match="permission denied"):
            await _query(path)
        code, out, err = await _command(path, as_json=True)
    assert code == EXIT_PERMISSION and out == "" and "sudo bab status" in err
    assert server.refused == 2 and server.served == 0
    assert seen[0] == PeerCredentials(os.getpid(), os.geteuid(), os.getegid())


async def test_failing_peer_check_refuses(tmp_path: Path) -> None:
    def broken(cred: PeerCredentials) -> bool:
        raise KeyError("no such user")

    async with StatusServer(lambda: DOC, tmp_path / "s.sock", peer_check=broken) as server:
        with pytest.raises(StatusPermissionDenied):
            await _query(tmp_path / "s.sock")
    assert server.refused == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the client as another user")
async def test_filesystem_permission_refused_for_other_user() -> None:
    """A user who is neither owner nor in the socket's group cannot even connect (mode 0660)."""
    with tempfile.TemporaryDirectory(prefix="bab-status-") as d:  # pytest's tmp_path is not traversable
        os.chmod(d, 0o755)
        await _refused_by_file_mode(Path(d) / "status.sock")


async def _refused_by_file_mode(path: Path) -> None:
    async with StatusServer(lambda: DOC, path, group=0) as server:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: become nobody, run the client, report through the pipe
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                err = io.StringIO()
                code = status_command(str(path), True, io.StringIO(), err, timeout=1.0)
                os.write(wfd, json.dumps([code, err.getvalue()]).encode())
            finally:
                os._exit(0)
        os.close(wfd)
        with os.fdopen(rfd, "rb") as f:
            code, err = json.loads(f.read())
        os.waitpid(pid, 0)
    assert code == EXIT_PERMISSION, err
    assert "permission denied on" in err and "group 'root'" in err
    assert server.served == 0 and server.refused == 0  # stopped by the file mode, before the server


def test_default_peer_check() -> None:
    me = os.geteuid()
    check = default_peer_check(socket_gid=4321, own_uid=me)
    nobody_pid = 2**22 + 12345  # above the kernel's pid_max default: no such process
    assert check(PeerCredentials(nobody_pid, 0, 99))  # root
    assert check(PeerCredentials(nobody_pid, me, 99))  # the daemon's own user
    assert check(PeerCredentials(nobody_pid, 50001, 4321))  # primary group = the socket's group
    assert not check(PeerCredentials(nobody_pid, 50001, 50001))  # stranger
    groups = [g for g in os.getgroups() if g != os.getegid()]
    if groups:  # supplementary membership, read from /proc/PID/status
        assert default_peer_check(groups[0], own_uid=me)(PeerCredentials(os.getpid(), 50001, 50001))


async def test_daemon_not_running(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="not running"):
        await _query(tmp_path / "missing.sock")
    code, out, err = await _command(tmp_path / "missing.sock", as_json=False)
    assert code == EXIT_NOT_RUNNING and "systemctl status bab" in err

    stale = tmp_path / "stale.sock"  # a socket file nobody listens on (daemon crashed)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    with pytest.raises(DaemonNotRunning):
        await _query(stale)


async def test_provider_failure_is_reported_and_server_survives(tmp_path: Path) -> None:
    path = tmp_path / "status.sock"
    fail = [True]

    def provider() -> dict[str, Any]:
        if fail[0]:
            raise RuntimeError("meter table locked")
        return DOC

    async with StatusServer(provider, path) as server:
        with pytest.raises(StatusError, match="meter table locked"):
            await _query(path)
        fail[0] = False
        assert (await _query(path))["meters"][0]["id"] == "1BAB0012345678"
    assert server.failures == 1


async def test_daemon_that_does_not_answer(tmp_path: Path) -> None:
    path = tmp_path / "hang.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    try:
        with pytest.raises(StatusError, match="did not answer"):
            await _query(path, timeout=0.2)
    finally:
        s.close()


async def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "junk.sock"

    async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x7e\xa0garbage")
        writer.close()

    server = await asyncio.start_unix_server(junk, str(path))
    async with server:
        with pytest.raises(StatusError, match="no valid JSON"):
            await _query(path)


async def test_start_replaces_stale_socket_but_not_live_one_or_a_file(tmp_path: Path) -> None:
    path = tmp_path / "status.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # stale leftover
    async with StatusServer(lambda: DOC, path):
        assert (await _query(path))["version"] == 1
        with pytest.raises(StatusServerError, match="running process"):
            await StatusServer(lambda: DOC, path).start()
        assert (await _query(path))["version"] == 1  # the first server is untouched
    other = tmp_path / "not-a-socket"
    other.write_text("keep me")
    with pytest.raises(StatusServerError, match="not a socket"):
        await StatusServer(lambda: DOC, other).start()
    assert other.read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


async def test_start_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(StatusServerError, match="cannot create the status socket"):
        await StatusServer(lambda: DOC, tmp_path / "s.sock", group="no-such-group-bab").start()
    (tmp_path / "file").write_text("")
    with pytest.raises(StatusServerError, match="cannot create the status socket"):
        await StatusServer(lambda: DOC, tmp_path / "file" / "s.sock").start()
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no temp socket left behind


async def test_socket_group_and_mode(tmp_path: Path) -> None:
    gid = os.getegid()
    path = tmp_path / "status.sock"
    async with StatusServer(lambda: DOC, path, mode=0o600, group=gid):
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == gid


def test_reading_entry_is_exact() -> None:
    r = Reading.from_text("1-0:1.8.0", "12345.678", "kWh", time=1000.0)
    assert reading_entry(r, now=1002.5) == {
        "obis": "1-0:1.8.0*255", "value": "12345.678", "unit": "kWh", "status": [], "age_s": 2.5}
    p = Reading.from_text("1-0:16.7.0", "432.1", "W", status=ReadingStatus.STALE | ReadingStatus.ESTIMATED)
    e = reading_entry(p, now=0.0)
    assert (e["value"], e["unit"], e["status"], e["age_s"]) == ("432.1", "W", ["stale", "estimated"], None)
    big = Reading.from_text("1-0:2.8.0", "1", "MWh", time=5.0)
    assert (reading_entry(big, now=1.0)["value"], reading_entry(big, now=1.0)["unit"]) == ("1000", "kWh")
    v = Reading.from_text("1-0:32.7.0", "230.05", "V")
    assert reading_entry(v, now=0.0)["value"] == "230.05"


def test_render_tolerates_a_sparse_document() -> None:
    text = render_status({})
    assert "BAB -" in text and "no meters configured" in text
    text = render_status({"meters": [{"id": "X", "lmn": {"address": True}, "readings": [{"obis": "1-0:1.8.0"}]}]})
    assert "Meter X" in text and "address -" in text and "1-0:1.8.0" in text
