"""wolfSSL meter server <-> OpenSSL gateway client: the full TR-03116-3 matrix (4 suites x 5 curves), with
TLS bytes cut into 128-byte chunks, an application-data round trip and the max_fragment_length 512 check;
session resumption; close_notify; the validity-date policies."""

from __future__ import annotations

import datetime as dt
import functools

import pytest
from cryptography.hazmat.primitives import serialization

from bab.tls import keys, wolfssl_binding
from bab.tls.errors import TlsCertificateError, TlsError, TlsFailure, TlsPeerAlert, TlsStateError
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.keys import Curve
from bab.tls.loopback import pump
from bab.tls.meter_server import MeterTlsContext
from bab.tls.policy import CIPHER_SUITES, MAX_FRAGMENT_LENGTH, ValidityPolicy

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

METER_ID = "1EMH0012345678"


@functools.cache
def identity(name: str, curve: Curve) -> tuple[bytes, bytes]:
    return keys.generate_identity(name, curve)


def make_pair(curve: Curve, suite: str | None = None, **server_kw):
    mk, mc = identity(METER_ID, curve)
    gk, gc = identity("SMGW", curve)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc, **server_kw)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[curve], ciphers=suite)
    return sctx, cctx


def overhead(suite: str) -> int:
    """Largest per-record expansion of the suite (explicit IV/nonce + MAC/tag + CBC padding)."""
    if "GCM" in suite:
        return 8 + 16
    mac = 48 if suite.endswith("SHA384") else 32
    return 16 + mac + 16


@pytest.mark.parametrize("curve", list(Curve))
@pytest.mark.parametrize("suite", CIPHER_SUITES)
def test_matrix_handshake_and_application_data(suite: str, curve: Curve) -> None:
    sctx, cctx = make_pair(curve, suite)
    server = sctx.new_connection()
    client = cctx.new_connection()
    log: list[tuple[str, bytes]] = []

    def tap(direction: str, record: bytes) -> None:
        log.append((direction, record))

    client.start()
    pump(client, server, chunk=128, tap=tap)
    assert server.handshake_complete and client.handshake_complete
    for info in (server.info, client.info):
        assert info is not None
        assert info.version == "TLSv1.2"
        assert info.cipher_suite == suite
        assert info.group is curve
        assert not info.session_reused
    assert server.info.peer_certificate_der == keys.certificate_der(identity("SMGW", curve)[1])
    assert client.info.peer_certificate_der == keys.certificate_der(identity(METER_ID, curve)[1])
    # the client asked for max_fragment_length 2^9 and the meter honours it
    assert server.max_fragment_length == MAX_FRAGMENT_LENGTH
    ccs_seen = False
    for direction, record in log:
        if direction != "s2c":
            continue
        body = len(record) - 5
        if ccs_seen:
            assert body <= MAX_FRAGMENT_LENGTH + overhead(suite)
        else:
            assert body <= MAX_FRAGMENT_LENGTH
        ccs_seen = ccs_seen or record[0] == 20

    log.clear()
    up = bytes(range(256)) * 2 + b"u" * 88  # 600 bytes
    down = b"d" * 600
    client.send_application_data(up)
    server.send_application_data(down)
    pump(client, server, chunk=128, tap=tap)
    assert server.read_application_data() == up
    assert client.read_application_data() == down
    for direction in ("s2c", "c2s"):
        app = [r for d, r in log if d == direction and r[0] == 23]
        assert len(app) == 2, direction  # 600 bytes need two records of <= 512 plaintext bytes
        for record in app:
            assert len(record) - 5 <= MAX_FRAGMENT_LENGTH + overhead(suite)
        if "GCM" in suite:
            assert sorted(len(r) - 5 - overhead(suite) for r in app) == [88, 512]

    client.close()
    pump(client, server)
    assert server.peer_closed and server.closed
    server.free()


def test_records_to_send_yields_whole_records() -> None:
    sctx, cctx = make_pair(Curve.SECP256R1)
    server, client = sctx.new_connection(), cctx.new_connection()
    client.start()
    hello = client.records_to_send()
    assert len(hello) == 1 and hello[0][0] == 22
    server.receive_bytes(hello[0][:3])  # partial header: nothing yet
    assert server.records_to_send() == []
    server.receive_bytes(hello[0][3:])
    flight = server.records_to_send()
    assert len(flight) >= 2
    for record in flight:
        assert record[0] == 22 and len(record) == 5 + int.from_bytes(record[3:5], "big")


def test_application_data_before_handshake_is_a_state_error() -> None:
    sctx, _ = make_pair(Curve.SECP256R1)
    server = sctx.new_connection()
    with pytest.raises(TlsStateError):
        server.send_application_data(b"x")


def test_session_resumption() -> None:
    sctx, cctx = make_pair(Curve.BRAINPOOL_P256R1)
    s1, c1 = sctx.new_connection(), cctx.new_connection()
    c1.start()
    pump(c1, s1)
    assert not s1.info.session_reused
    s2, c2 = sctx.new_connection(), cctx.new_connection(session=c1.session)
    c2.start()
    pump(c2, s2)
    assert s1.session_lifetime_s == 744 * 3600
    assert s2.info.session_reused and c2.info.session_reused
    assert s2.info.group is None  # abbreviated handshake: no ECDHE
    assert s2.info.peer_certificate_der == s1.info.peer_certificate_der
    c2.send_application_data(b"ping")
    pump(c2, s2)
    assert s2.read_application_data() == b"ping"


@pytest.mark.parametrize("by", ["session-id", "ticket"])
def test_session_from_another_pairing_is_refused(by: str) -> None:
    """By session ID: wolfSSL's session cache is process-wide (and 5.5.4 resumes across contexts despite the
    session-ID context), so the post-handshake pin check refuses a session created under another pairing
    before any application data is accepted. By ticket: the other context cannot decrypt it, the handshake is
    a full one, and the pin refuses the client certificate in it."""
    import ssl

    sctx, cctx = make_pair(Curve.SECP256R1)
    if by == "session-id":
        cctx.ssl_context.options |= ssl.OP_NO_TICKET
    s1, c1 = sctx.new_connection(), cctx.new_connection()
    c1.start()
    pump(c1, s1)
    assert c1.session.has_ticket == (by == "ticket")
    mk, mc = identity(METER_ID, Curve.SECP256R1)
    other_gw = identity("OTHER-SMGW", Curve.SECP256R1)[1]
    sctx2 = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=other_gw)
    s2, c2 = sctx2.new_connection(), cctx.new_connection(session=c1.session)
    c2.start()
    with pytest.raises(TlsCertificateError) as info:
        pump(c2, s2)
    assert info.value.reason is TlsFailure.BAD_CERTIFICATE
    if by == "ticket":
        assert info.value.alert == "bad_certificate"  # refused inside the full handshake, with a plain alert
    else:
        assert info.value.alert is None and "close_notify" in info.value.detail  # after our Finished
    assert not s2.handshake_complete and s2.info is None
    with pytest.raises(TlsCertificateError):
        s2.receive_bytes(b"\x17\x03\x03\x00\x01x")  # dead: nothing more is processed
    assert s2.read_application_data() == b""
    if by == "session-id":  # the refused session was dropped: the original pairing cannot resume it either
        s3, c3 = sctx.new_connection(), cctx.new_connection(session=c1.session)
        c3.start()
        pump(c3, s3)
        assert s3.handshake_complete and not s3.info.session_reused
    else:  # the ticket still resumes where it was issued
        s3, c3 = sctx.new_connection(), cctx.new_connection(session=c1.session)
        c3.start()
        pump(c3, s3)
        assert s3.handshake_complete and s3.info.session_reused


def _gateway_cert(not_before: dt.datetime, days: int) -> tuple[bytes, bytes]:
    key = keys.generate_private_key(Curve.SECP256R1)
    cert = keys.self_signed_certificate(key, "SMGW", not_before=not_before, validity=dt.timedelta(days=days))
    return keys.private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


EXPIRED = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)


def _connect(policy: ValidityPolicy, gw: tuple[bytes, bytes], now: dt.datetime | None):
    mk, mc = identity(METER_ID, Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gw[1], validity=policy)
    cctx = GatewayTlsContext(key_pem=gw[0], cert_pem=gw[1], peer_cert_pem=mc)
    server, client = sctx.new_connection(now=now), cctx.new_connection()
    client.start()
    pump(client, server)
    return server, client


def test_validity_ignore_accepts_expired_pinned_certificate() -> None:
    server, client = _connect(ValidityPolicy.IGNORE, _gateway_cert(EXPIRED, 30), None)
    assert server.handshake_complete and client.handshake_complete


def test_validity_system_clock_rejects_expired_certificate() -> None:
    with pytest.raises(TlsCertificateError) as info:
        _connect(ValidityPolicy.SYSTEM_CLOCK, _gateway_cert(EXPIRED, 30), None)
    assert info.value.reason is TlsFailure.CERTIFICATE_EXPIRED


def test_validity_system_clock_rejects_not_yet_valid_certificate() -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(TlsCertificateError) as info:
        _connect(ValidityPolicy.SYSTEM_CLOCK, _gateway_cert(future, 30), None)
    assert info.value.reason is TlsFailure.CERTIFICATE_NOT_YET_VALID


def test_validity_system_clock_accepts_current_certificate() -> None:
    server, _ = _connect(ValidityPolicy.SYSTEM_CLOCK, identity("SMGW", Curve.SECP256R1), None)
    assert server.handshake_complete


def test_validity_given_time() -> None:
    gw = _gateway_cert(EXPIRED, 30)  # valid 2001-01-01 .. 2001-01-31
    inside = EXPIRED + dt.timedelta(days=3)
    server, _ = _connect(ValidityPolicy.GIVEN_TIME, gw, inside)  # the system clock is not consulted
    assert server.handshake_complete
    with pytest.raises(TlsCertificateError) as info:
        _connect(ValidityPolicy.GIVEN_TIME, gw, EXPIRED + dt.timedelta(days=31))
    assert info.value.reason is TlsFailure.CERTIFICATE_EXPIRED
    with pytest.raises(TlsCertificateError) as info:
        _connect(ValidityPolicy.GIVEN_TIME, gw, EXPIRED - dt.timedelta(days=1))
    assert info.value.reason is TlsFailure.CERTIFICATE_NOT_YET_VALID


def test_validity_given_time_needs_now() -> None:
    mk, mc = identity(METER_ID, Curve.SECP256R1)
    sctx = MeterTlsContext(
        key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW", Curve.SECP256R1)[1], validity="given-time"
    )
    with pytest.raises(ValueError, match="now"):
        sctx.new_connection()


def test_server_initiated_close() -> None:
    sctx, cctx = make_pair(Curve.SECP384R1)
    server, client = sctx.new_connection(), cctx.new_connection()
    client.start()
    pump(client, server)
    server.send_application_data(b"last words")
    server.close()
    pump(client, server)
    assert client.read_application_data() == b"last words"
    assert client.peer_closed and server.peer_closed
    with pytest.raises(TlsStateError):
        server.send_application_data(b"more")


def test_meter_rejected_by_gateway_pin_gives_peer_alert_on_meter() -> None:
    """The gateway pins another meter certificate: it aborts, and the meter reports the gateway's alert."""
    mk, mc = identity(METER_ID, Curve.SECP256R1)
    gk, gc = identity("SMGW", Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=identity("OTHER-METER", Curve.SECP256R1)[1])
    server, client = sctx.new_connection(), cctx.new_connection()
    client.start()
    with pytest.raises(TlsError) as info:
        pump(client, server)
    assert info.value is client.error and client.error.reason is TlsFailure.BAD_CERTIFICATE
    with pytest.raises(TlsPeerAlert) as alert:
        for record in client.records_to_send():  # the client's fatal alert
            server.receive_bytes(record)
    assert alert.value.reason is TlsFailure.PEER_ALERT and alert.value.alert


def test_without_mfl_request_records_are_full_size() -> None:
    """Control for the matrix: the 512-byte limit comes from the client's max_fragment_length request."""
    mk, mc = identity(METER_ID, Curve.SECP256R1)
    gk, gc = identity("SMGW", Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, max_fragment_length=None)
    server, client = sctx.new_connection(), cctx.new_connection()
    client.start()
    pump(client, server)
    assert server.client_hello is not None and server.client_hello.max_fragment_length is None
    assert server.max_fragment_length == 16384
    server.send_application_data(b"z" * 600)
    records = server.records_to_send()
    assert len(records) == 1
    for record in records:
        client.receive_bytes(record)
    assert client.read_application_data() == b"z" * 600


def test_gateway_client_without_ctypes_access(monkeypatch) -> None:
    """If the OpenSSL pointers cannot be reached, the client falls back to set_ecdh_curve (one group) and
    load_cert_chain from a private temporary directory, and still interoperates (without MFL)."""
    from bab.tls import openssl_ctl

    def unavailable(*args, **kwargs):
        raise openssl_ctl.OpenSslCtlUnavailable("test")

    monkeypatch.setattr(openssl_ctl, "ctx_pointer", unavailable)
    mk, mc = identity(METER_ID, Curve.BRAINPOOL_P384R1)
    gk, gc = identity("SMGW", Curve.BRAINPOOL_P384R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc)
    cctx = GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc, groups=[Curve.BRAINPOOL_P384R1])
    assert cctx.groups_mode == "set_ecdh_curve" and cctx.max_fragment_length is None
    server, client = sctx.new_connection(), cctx.new_connection()
    client.start()
    pump(client, server)
    assert server.info.group is Curve.BRAINPOOL_P384R1 and server.info.peer_certificate_der == keys.certificate_der(gc)


def test_error_codes_fit_the_platforms_unsigned_long() -> None:
    """wolfSSL's negative error codes are passed as C ``unsigned long``: 8 bytes on 64-bit platforms, 4 on
    32-bit ARM (armhf), where a 64-bit two's complement overflowed and turned every TLS failure into an
    internal error."""
    ffi, _ = wolfssl_binding.require()
    for width, ctype in ((4, "uint32_t *"), (8, "uint64_t *")):
        value = wolfssl_binding.as_unsigned_long(-313, width)
        ffi.new(ctype, value)  # OverflowError if it does not fit that width
        assert value == (1 << (8 * width)) - 313
    assert wolfssl_binding.as_unsigned_long(-313) == (1 << (8 * ffi.sizeof("unsigned long"))) - 313
    assert "alert" in wolfssl_binding.error_string(-313)
