"""bab.sdnotify against a fake service manager: a real AF_UNIX datagram socket in a temp dir."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bab.sdnotify import Notifier, watchdog_interval, watchdog_keepalive


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    yield str(path), s
    s.close()


def _recv(s: socket.socket) -> list[str]:
    return s.recv(4096).decode().split("\n")


def test_ready_status_watchdog_stopping(notify_socket: tuple[str, socket.socket]) -> None:
    path, s = notify_socket
    n = Notifier(path)
    assert n.enabled
    assert n.ready("serving 1 meter")
    assert _recv(s) == ["READY=1", "STATUS=serving 1 meter"]
    assert n.status("LMN  address\n0x3A")  # newlines would split the field: folded into one line
    assert _recv(s) == ["STATUS=LMN address 0x3A"]
    assert n.watchdog()
    assert _recv(s) == ["WATCHDOG=1"]
    assert n.extend_timeout(2.5)
    assert _recv(s) == ["EXTEND_TIMEOUT_USEC=2500000"]
    assert n.stopping()
    assert _recv(s) == ["STOPPING=1"]
    n.close()


def test_reads_notify_socket_from_environment(
    notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, s = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    n = Notifier()
    assert n.ready()
    assert _recv(s) == ["READY=1"]


def test_abstract_namespace_socket() -> None:
    name = f"bab-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name.encode())
    s.settimeout(2)
    try:
        n = Notifier("@" + name)
        assert n.watchdog()
        assert _recv(s) == ["WATCHDOG=1"]
    finally:
        s.close()


def test_disabled_without_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.ready()
    assert not Notifier("relative/path").enabled


def test_send_failure_does_not_raise(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert n.enabled
    assert n.watchdog() is False
    assert n.watchdog() is False


def test_rejects_malformed_field(notify_socket: tuple[str, socket.socket]) -> None:
    n = Notifier(notify_socket[0])
    with pytest.raises(ValueError):
        n.notify("READY")
    with pytest.raises(ValueError):
        n.notify("A=1\nB=2")


def test_watchdog_interval() -> None:
    me = os.getpid()
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me)}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(me + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "thirty"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "42"}, pid=42) == 0.5


async def test_keepalive_pings_from_event_loop(notify_socket: tuple[str, socket.socket]) -> None:
    path, s = notify_socket
    s.setblocking(False)
    n = Notifier(path)
    task = asyncio.create_task(watchdog_keepalive(n, interval=0.02))
    loop = asyncio.get_running_loop()
    got = [await asyncio.wait_for(loop.sock_recv(s, 100), 2) for _ in range(3)]
    assert got == [b"WATCHDOG=1"] * 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_keepalive_stops_when_loop_is_blocked(notify_socket: tuple[str, socket.socket]) -> None:
    path, s = notify_socket
    s.setblocking(False)
    n = Notifier(path)
    task = asyncio.create_task(watchdog_keepalive(n, interval=0.02))
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_recv(s, 100), 2)  # first ping
    while True:  # drain, then block the loop: no ping may arrive while it is blocked
        try:
            s.recv(100)
        except BlockingIOError:
            break
    time.sleep(0.1)  # a stuck event loop (5 periods)
    pings = 0
    while True:
        try:
            s.recv(100)
            pings += 1
        except BlockingIOError:
            break
    assert pings == 0
    task.cancel()


async def test_keepalive_returns_without_watchdog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    await asyncio.wait_for(watchdog_keepalive(Notifier(str(tmp_path / "x"))), 1)
    await asyncio.wait_for(watchdog_keepalive(Notifier(""), interval=1.0), 1)


def test_receiver_that_never_reads_does_not_block(
    notify_socket: tuple[str, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    """A service manager that stops reading fills its queue; further sends are dropped and counted, not
    blocked on (a blocking sendto stalled the whole event loop: status queries and SIGTERM went unanswered)."""
    import threading

    path, _never_read = notify_socket
    n = Notifier(path)
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.extend(n.watchdog() for _ in range(500)), daemon=True)
    with caplog.at_level("WARNING", logger="bab.sdnotify"):
        worker.start()
        worker.join(30)
    assert not worker.is_alive(), "sd_notify blocked on a full receiver queue"
    assert len(results) == 500
    assert results[0] is True  # the first datagrams fit into the queue
    assert n.dropped == results.count(False) > 0
    assert sum("queue is full" in r.getMessage() for r in caplog.records) == 1
    n.close()
