"""Logging for the daemon: journald with structured fields under systemd, stderr otherwise; repeats rate-limited.

* Under systemd (``$JOURNAL_STREAM`` names our stderr) records go to journald over its native protocol
  (a datagram of ``KEY=value`` fields to ``/run/systemd/journal/socket``), with ``PRIORITY``,
  ``SYSLOG_IDENTIFIER=bab`` and BAB's own fields ``BAB_METER_ID`` and ``BAB_LAYER`` from the record's
  ``extra={"meter_id": ..., "layer": ...}``, and ``BAB_FAULT`` (``extra={"fault": ...}``) for every fault the
  lab meter injects (:mod:`bab.sim`), so ``journalctl -u bab BAB_METER_ID=1BAB0012345678`` works.
* The same message from the same place is let through ``burst`` times per ``interval``; after that it is counted
  and one line reports how many were suppressed, so line noise or a flapping source cannot flood the journal.
* Key material never reaches a log: the layers never pass it, and :class:`SecretFilter` drops any record that
  carries a value marked secret (``extra={"secret": ...}``) as a last line of defence.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import time

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def _field(key: str, value: str) -> bytes:
    raw = value.encode("utf-8", "replace")
    if b"\n" in raw:
        return key.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
    return key.encode() + b"=" + raw + b"\n"


class JournalHandler(logging.Handler):
    """Sends records to journald's native socket; falls back to stderr if the socket refuses."""

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "bab") -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            fields = [
                _field("MESSAGE", msg),
                _field("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
                _field("SYSLOG_IDENTIFIER", self.identifier),
                _field("LOGGER", record.name),
                _field("CODE_FILE", record.pathname),
                _field("CODE_LINE", str(record.lineno)),
                _field("CODE_FUNC", record.funcName),
            ]
            for attr, key in (("meter_id", "BAB_METER_ID"), ("layer", "BAB_LAYER"), ("fault", "BAB_FAULT")):
                value = getattr(record, attr, None)
                if value is not None:
                    fields.append(_field(key, str(value)))
            self.sock.sendto(b"".join(fields), self.path)
        except OSError:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


class RateLimitFilter(logging.Filter):
    """Lets the same (logger, message template) through ``burst`` times per ``interval`` seconds."""

    def __init__(self, burst: int = 5, interval: float = 60.0, clock=time.monotonic) -> None:
        super().__init__()
        self.burst, self.interval, self.clock = burst, interval, clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [window start, count, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "fault", None) is not None:
            return True  # the lab meter's injected faults: every one is logged (module docstring)
        key = (record.name, str(record.msg))
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.interval:
            suppressed = int(entry[2]) if entry else 0
            self._seen[key] = [now, 1, 0]
            if len(self._seen) > 4096:  # bounded: forget the oldest windows
                for k in list(self._seen)[:1024]:
                    del self._seen[k]
            if suppressed:
                record.msg = f"{record.msg} [{suppressed} similar messages suppressed]"
            return True
        entry[1] += 1
        if entry[1] <= self.burst:
            return True
        entry[2] += 1
        return False


class SecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "secret")


def under_journald() -> bool:
    """True when stderr is connected to the journal (systemd sets ``$JOURNAL_STREAM`` to its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: str = "info", *, journal: bool | None = None) -> logging.Handler:
    """Configure the root logger once for the process; returns the handler."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    use_journal = under_journald() if journal is None else journal
    if use_journal and os.path.exists(JOURNAL_SOCKET):
        handler: logging.Handler = JournalHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter())
    handler.addFilter(RateLimitFilter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler
