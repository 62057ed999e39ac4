"""Journald output with structured fields, rate limiting of repeats, no secrets."""

from __future__ import annotations

import logging
import socket

from bab.logs import JournalHandler, RateLimitFilter, SecretFilter


def test_journal_native_protocol_fields(tmp_path):
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    handler = JournalHandler(path)
    log = logging.getLogger("bab.test.journal")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.warning("meter %s registered", "1BAB0000000001", extra={"meter_id": "1BAB0000000001", "layer": "hdlc"})
        log.info("two\nlines")
        first = server.recv(65536)
        second = server.recv(65536)
    finally:
        log.removeHandler(handler)
        handler.close()
        server.close()
    fields = dict(line.split(b"=", 1) for line in first.split(b"\n") if b"=" in line)
    assert fields[b"MESSAGE"] == b"meter 1BAB0000000001 registered"
    assert fields[b"PRIORITY"] == b"4" and fields[b"SYSLOG_IDENTIFIER"] == b"bab"
    assert fields[b"BAB_METER_ID"] == b"1BAB0000000001" and fields[b"BAB_LAYER"] == b"hdlc"
    assert second.startswith(b"MESSAGE\n") and b"two\nlines" in second  # binary-safe form for newlines


def test_rate_limit_suppresses_repeats_and_reports_them():
    now = [0.0]
    f = RateLimitFilter(burst=3, interval=10.0, clock=lambda: now[0])

    def rec(msg="bad frame from %s"):
        return logging.LogRecord("bab.x", logging.WARNING, __file__, 1, msg, ("a",), None)

    passed = [f.filter(rec()) for _ in range(100)]
    assert passed.count(True) == 3
    assert f.filter(rec("another message")) is True
    now[0] = 11.0
    r = rec()
    assert f.filter(r) is True and "97 similar messages suppressed" in r.msg


def test_secret_records_are_dropped():
    r = logging.LogRecord("bab.x", logging.INFO, __file__, 1, "key", (), None)
    r.secret = b"\x00" * 16
    assert SecretFilter().filter(r) is False
