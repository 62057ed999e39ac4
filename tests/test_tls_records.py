"""TLS record splitting, ClientHello summary, policy helpers and the wolfSSL build script."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bab.tls import build_wolfssl
from bab.tls.errors import TlsCertificateError, TlsFailure
from bab.tls.policy import ValidityPolicy, check_validity, resolve_now
from bab.tls.records import RecordSplitter, alert_record, parse_client_hello, split_records


def record(content: int, body: bytes) -> bytes:
    return bytes([content, 3, 3]) + len(body).to_bytes(2, "big") + body


@given(st.lists(st.binary(max_size=600), max_size=8), st.integers(min_value=1, max_value=50))
def test_splitter_returns_whole_records_whatever_the_chunking(bodies: list[bytes], chunk: int) -> None:
    stream = b"".join(record(23, b) for b in bodies)
    splitter = RecordSplitter()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        splitter.feed(stream[i : i + chunk])
        out += splitter.records()
    assert out == [record(23, b) for b in bodies]
    assert len(splitter) == 0


def test_split_records_keeps_partial_tail() -> None:
    recs, rest = split_records(record(22, b"abc") + b"\x17\x03\x03\x00\x10xx")
    assert recs == [record(22, b"abc")] and rest == b"\x17\x03\x03\x00\x10xx"


def test_alert_record() -> None:
    assert alert_record("bad_certificate") == b"\x15\x03\x03\x00\x02\x02\x2a"
    assert alert_record("close_notify", fatal=False, version=b"\x03\x01") == b"\x15\x03\x01\x00\x02\x01\x00"


def client_hello(groups: list[int], suites: list[int], versions: list[int] | None = None, mfl: int = 1) -> bytes:
    exts = b""
    g = b"".join(x.to_bytes(2, "big") for x in groups)
    exts += b"\x00\x0a" + (len(g) + 2).to_bytes(2, "big") + len(g).to_bytes(2, "big") + g
    exts += b"\x00\x01\x00\x01" + bytes([mfl])
    if versions is not None:
        v = b"".join(x.to_bytes(2, "big") for x in versions)
        exts += b"\x00\x2b" + (len(v) + 1).to_bytes(2, "big") + bytes([len(v)]) + v
    s = b"".join(x.to_bytes(2, "big") for x in suites)
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + len(s).to_bytes(2, "big") + s + b"\x01\x00"
    body += len(exts).to_bytes(2, "big") + exts
    return b"\x01" + len(body).to_bytes(3, "big") + body


def test_parse_client_hello_over_several_records_and_incomplete() -> None:
    msg = client_hello([26, 23], [0xC02B, 0xC023], versions=[0x0304, 0x0303])
    stream = record(22, msg[:20]) + record(22, msg[20:])
    hello = parse_client_hello(stream)
    assert hello is not None
    assert hello.groups == [26, 23] and hello.cipher_suites == [0xC02B, 0xC023]
    assert hello.supported_versions == [0x0304, 0x0303] and hello.offers_tls12()
    assert hello.max_fragment_length == 1 and hello.compression_methods == b"\x00"
    assert parse_client_hello(stream[:30]) is None  # incomplete
    assert parse_client_hello(b"") is None


@pytest.mark.parametrize("junk", [b"\x17\x03\x03\x00\x01x", b"GET / HTTP/1.1\r\n", record(22, b"\x02\x00\x00\x00")])
def test_parse_client_hello_refuses_junk(junk: bytes) -> None:
    with pytest.raises(ValueError):
        parse_client_hello(junk)


@given(st.binary(max_size=300))
def test_parse_client_hello_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_client_hello(record(22, data))


def test_check_validity() -> None:
    nb = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    na = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    check_validity(ValidityPolicy.IGNORE, nb, na, None)
    check_validity(ValidityPolicy.GIVEN_TIME, nb, na, dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
    with pytest.raises(TlsCertificateError) as info:
        check_validity(ValidityPolicy.GIVEN_TIME, nb, na, dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert info.value.reason is TlsFailure.CERTIFICATE_EXPIRED
    with pytest.raises(ValueError, match="aware"):
        check_validity(ValidityPolicy.GIVEN_TIME, nb, na, dt.datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="given-time"):
        resolve_now(ValidityPolicy.GIVEN_TIME, None)
    assert resolve_now(ValidityPolicy.IGNORE, None) is None
    assert resolve_now(ValidityPolicy.SYSTEM_CLOCK, None) is not None


def test_build_script_is_idempotent(capsys) -> None:
    if build_wolfssl.built_module() is None:
        pytest.skip("binding not built")
    assert build_wolfssl.main([]) == 0
    assert "up to date" in capsys.readouterr().out


def test_build_script_reports_missing_prerequisites(monkeypatch, capsys) -> None:
    monkeypatch.setattr(build_wolfssl, "_preflight", lambda: "wolfSSL headers not found: " + build_wolfssl.INSTALL_HINT)
    assert build_wolfssl.main(["--force"]) == 1
    err = capsys.readouterr().err
    assert "apt-get install libwolfssl-dev" in err and "python -m bab.tls.build_wolfssl" in err


def test_stale_binding_is_reported(monkeypatch) -> None:
    from bab.tls import wolfssl_binding
    from bab.tls.errors import TlsUnavailable

    if wolfssl_binding.lib is None:
        pytest.skip("binding not built")
    monkeypatch.setattr(wolfssl_binding, "_initialised", False)
    monkeypatch.setattr(build_wolfssl, "BINDING_ID", "bab-wolfssl-someotherversion")
    with pytest.raises(TlsUnavailable, match="out of date.*python -m bab.tls.build_wolfssl"):
        wolfssl_binding.require()
