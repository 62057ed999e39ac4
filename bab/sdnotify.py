"""The systemd readiness and watchdog protocol (``sd_notify(3)``), in the few lines BAB needs.

systemd starts ``bab.service`` with ``Type=notify`` and ``WatchdogSec=``: it passes the path of a datagram
socket in ``$NOTIFY_SOCKET`` (a file path, or an abstract-namespace name written with a leading ``@``) and,
when the watchdog is on, the interval in ``$WATCHDOG_USEC`` (for the process ``$WATCHDOG_PID`` if set).
The daemon sends newline-separated ``KEY=VALUE`` datagrams: ``READY=1`` once it serves the LMN,
``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` as keep-alive, ``STOPPING=1`` on shutdown.

The keep-alive is sent from the asyncio event loop itself (:func:`watchdog_keepalive`), at half the interval,
so a blocked or spinning loop stops pinging and systemd restarts the service.

Without ``$NOTIFY_SOCKET`` (started by hand, in tests, in ``bab demo``) every call is a cheap no-op.
Sending never raises and never blocks: the socket is non-blocking, so a service manager that stops reading
(its queue of ~10 datagrams full, a slow PID 1) cannot stall the event loop and with it the LMN slot timing.
A datagram that does not fit is dropped and counted (:attr:`Notifier.dropped`), logged once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """A sender of ``sd_notify`` datagrams to the service manager's notify socket."""

    def __init__(self, address: str | None = None) -> None:
        """``address`` is the value of ``$NOTIFY_SOCKET``; ``None`` reads the environment.

        An empty or missing address gives a disabled notifier whose calls do nothing.
        """
        if address is None:
            address = os.environ.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()  # Linux abstract namespace
        elif address.startswith("/"):
            self._address = address
        elif address:
            log.warning("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract name", address)
        self._sock: socket.socket | None = None
        self._warned = False
        self._warned_full = False
        self.dropped = 0
        """Datagrams dropped because the receiver's queue was full (it did not read)."""

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send one datagram made of ``KEY=VALUE`` fields; True if it was sent."""
        if self._address is None or not fields:
            return False
        for f in fields:
            if "=" not in f or "\n" in f:
                raise ValueError(f"not a single KEY=VALUE field: {f!r}")
        data = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX,
                                           socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._sock.sendto(data, self._address)
        except BlockingIOError:
            self.dropped += 1
            if not self._warned_full:
                log.warning("sd_notify to %r: the receiver's queue is full; dropping notifications "
                            "(counted, logged once)", self._address)
                self._warned_full = True
            return False
        except OSError as exc:
            if not self._warned:  # once: the watchdog would otherwise flood the journal
                log.warning("sd_notify to %r failed: %s", self._address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
        return self.notify("READY=1", *([f"STATUS={_one_line(status)}"] if status is not None else []))

    def status(self, text: str) -> bool:
        """Set the free-form status line shown by ``systemctl status bab``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """One watchdog keep-alive (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd the daemon is shutting down (``STOPPING=1``)."""
        return self.notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status is not None else []))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start-up/shutdown time (``EXTEND_TIMEOUT_USEC``), e.g. while a slow port opens."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog interval in seconds that systemd expects keep-alives within, or None if it is off.

    Reads ``$WATCHDOG_USEC``; when ``$WATCHDOG_PID`` is set it must equal ``pid`` (default: this process),
    as in ``sd_watchdog_enabled(3)``. Malformed values count as "off".
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid:
        try:
            if int(wpid) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return value / 1_000_000


async def watchdog_keepalive(notifier: Notifier, interval: float | None = None) -> None:
    """Send ``WATCHDOG=1`` every ``interval / 2`` seconds until cancelled (run it as an asyncio task).

    ``interval`` defaults to :func:`watchdog_interval`; with no watchdog configured this returns at once.
    Because the ping runs on the event loop, a loop that stops turning stops the pings.
    """
    if interval is None:
        interval = watchdog_interval()
    if interval is None or not notifier.enabled:
        return
    period = interval / 2
    while True:
        notifier.watchdog()
        await asyncio.sleep(period)
