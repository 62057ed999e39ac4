"""The meter's ECDHE group choice (one wolfSSL context pinned per TR-03116-3 group, the group chosen from the
pre-parsed ClientHello) and the fatal alert the client receives for every refusal. Both ends in memory: BAB's
wolfSSL server and an OpenSSL client (the same stack as openssl s_client), TLS bytes in 128-byte chunks."""

from __future__ import annotations

import datetime as dt
import functools
import ssl

import pytest

from bab.tls import keys, openssl_ctl, wolfssl_binding
from bab.tls.errors import TlsError, TlsFailure
from bab.tls.gateway_client import OPENSSL_DEFAULT_GROUPS, GatewayTlsContext
from bab.tls.keys import Curve
from bab.tls.loopback import pump
from bab.tls.meter_server import MeterTlsContext
from bab.tls.policy import GROUPS, ValidityPolicy
from bab.tls.records import parse_client_hello

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

OPENSSL_NAME = {
    Curve.SECP256R1: "P-256",
    Curve.SECP384R1: "P-384",
    Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
}


@functools.cache
def identity(name: str, curve: Curve) -> tuple[bytes, bytes]:
    return keys.generate_identity(name, curve)


@functools.cache
def meter(cert_curve: Curve, groups: tuple[Curve, ...] = GROUPS) -> MeterTlsContext:
    mk, mc = identity("1BAB0000000042", cert_curve)
    return MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW", Curve.SECP256R1)[1],
                           groups=groups)


def gateway(cert_curve: Curve, raw_groups: str | None, **kw) -> GatewayTlsContext:
    gk, gc = identity("SMGW", Curve.SECP256R1)
    args = dict(key_pem=gk, cert_pem=gc, peer_cert_pem=identity("1BAB0000000042", cert_curve)[1],
                raw_groups=raw_groups)
    args.update(kw)
    return GatewayTlsContext(**args)


def handshake(sctx: MeterTlsContext, cctx: GatewayTlsContext, session=None):
    server = sctx.new_connection()
    client = cctx.new_connection(session=session)
    client.start()
    pump(client, server, chunk=128)
    assert server.handshake_complete and client.handshake_complete
    return server, client


def refused(sctx: MeterTlsContext, cctx: GatewayTlsContext, **conn_kw) -> tuple[TlsError, TlsError, list[bytes]]:
    """Run a handshake the meter refuses; deliver its last records (the alert) to the client.

    Returns (meter's error, client's error, the records the meter sent after failing)."""
    server = sctx.new_connection(**conn_kw)
    client = cctx.new_connection()
    client.start()
    with pytest.raises(TlsError):
        pump(client, server, chunk=128)
    assert server.error is not None, f"the meter did not refuse (client: {client.error})"
    tail = server.records_to_send()
    with pytest.raises(TlsError):
        for record in tail:
            client.receive_bytes(record)
    assert client.error is not None and not client.handshake_complete
    return server.error, client.error, tail


# --- the client offers of issue 11 -------------------------------------------------------------------------

TABLE = [
    # (client's groups, meter certificate curve, group the meter must choose)
    (OPENSSL_DEFAULT_GROUPS, Curve.SECP256R1, Curve.SECP256R1),  # X25519:P-256:X448:P-521:P-384
    (OPENSSL_DEFAULT_GROUPS, Curve.SECP384R1, Curve.SECP256R1),  # our preference: P-256 before P-384
    ("X25519:brainpoolP256r1", Curve.BRAINPOOL_P256R1, Curve.BRAINPOOL_P256R1),
    ("X25519:P-384", Curve.SECP384R1, Curve.SECP384R1),
    ("P-384:X25519", Curve.SECP384R1, Curve.SECP384R1),
    ("X448:brainpoolP384r1:brainpoolP512r1", Curve.BRAINPOOL_P384R1, Curve.BRAINPOOL_P384R1),
    ("X448:brainpoolP384r1:brainpoolP512r1", Curve.BRAINPOOL_P512R1, Curve.BRAINPOOL_P384R1),
    ("P-521:P-384", Curve.SECP384R1, Curve.SECP384R1),
    ("P-384:brainpoolP256r1", Curve.SECP384R1, Curve.BRAINPOOL_P256R1),  # the meter's order, not the client's
] + [(OPENSSL_NAME[c], c, c) for c in Curve]  # each of the five alone


@pytest.mark.parametrize(("offer", "cert_curve", "expected"), TABLE)
def test_the_meter_chooses_an_allowed_group(offer: str, cert_curve: Curve, expected: Curve) -> None:
    server, client = handshake(meter(cert_curve), gateway(cert_curve, offer))
    assert server.group is expected
    assert server.info.group is expected and client.info.group is expected  # what both ends negotiated
    assert server.info.version == "TLSv1.2" and not server.info.session_reused
    client.send_application_data(b"GetList")
    pump(client, server)
    assert server.read_application_data() == b"GetList"


def test_the_openssl_default_list_really_starts_with_x25519() -> None:
    client = gateway(Curve.SECP256R1, OPENSSL_DEFAULT_GROUPS).new_connection()
    client.start()
    hello = parse_client_hello(client.bytes_to_send())
    assert hello.groups[0] == 29 and 30 in hello.groups  # X25519 first, X448 too


def test_a_meter_serving_a_subset_uses_its_own_order() -> None:
    sctx = meter(Curve.SECP384R1, (Curve.SECP384R1, Curve.SECP256R1))
    server, _ = handshake(sctx, gateway(Curve.SECP384R1, OPENSSL_DEFAULT_GROUPS))
    assert server.group is Curve.SECP384R1
    err, client_err, _ = refused(sctx, gateway(Curve.SECP384R1, "brainpoolP256r1:X25519"))
    assert err.reason is TlsFailure.FORBIDDEN_GROUP and client_err.alert == "handshake_failure"
    assert "serves only secp384r1, secp256r1" in err.detail


def test_group_subset_must_be_tr_groups() -> None:
    mk, mc = identity("1BAB0000000042", Curve.SECP256R1)
    with pytest.raises(ValueError):
        MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=mc, groups=())
    with pytest.raises(ValueError):
        MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=mc, groups=(Curve.SECP256R1, Curve.SECP256R1))


@pytest.mark.parametrize("offer", ["X25519", "X448", "X25519:X448:P-521", "P-521", "secp256k1:P-224"])
def test_only_forbidden_groups_get_handshake_failure(offer: str) -> None:
    err, client_err, tail = refused(meter(Curve.SECP256R1), gateway(Curve.SECP256R1, offer))
    assert err.reason is TlsFailure.FORBIDDEN_GROUP and err.alert == "handshake_failure"
    assert client_err.reason is TlsFailure.PEER_ALERT and client_err.alert == "handshake_failure"
    assert tail == [b"\x15\x03\x03\x00\x02\x02\x28"]  # one plaintext fatal alert, TLS 1.2 record version


def test_a_list_without_the_certificate_curve_is_served_and_left_to_the_client() -> None:
    """The meter does not hold the client's list against its certificate's curve (the reference gateway
    offers secp256r1 only and takes a brainpool meter certificate). An OpenSSL client does check it: it refuses
    the certificate itself, and the meter sees the client's alert."""
    sctx = meter(Curve.BRAINPOOL_P256R1)
    server = sctx.new_connection()
    client = gateway(Curve.BRAINPOOL_P256R1, OPENSSL_DEFAULT_GROUPS).new_connection()
    client.start()
    with pytest.raises(TlsError):
        pump(client, server, chunk=128)
    assert server.group is Curve.SECP256R1  # the meter answered, on an allowed group
    assert client.error.reason is TlsFailure.FORBIDDEN_GROUP and "WRONG_CURVE" in str(client.error)
    with pytest.raises(TlsError):
        for record in client.records_to_send():  # the client's alert
            server.receive_bytes(record)
    assert server.error.reason is TlsFailure.PEER_ALERT and server.records_to_send() == []


def test_a_secp256r1_only_hello_gets_a_brainpool_certificate_and_p256() -> None:
    """What the reference gateway sends (supported_groups secp256r1 only), to a meter with a brainpool
    certificate: served, ECDHE on P-256."""
    from test_tls_rejections import crafted_client_hello

    hello = crafted_client_hello(b"\x00", groups=b"\x00\x17")
    assert parse_client_hello(hello).groups == [23]
    server = meter(Curve.BRAINPOOL_P256R1).new_connection()
    server.receive_bytes(hello)
    flight = b"".join(server.records_to_send())
    assert server.error is None and server.group is Curve.SECP256R1
    assert flight[5] == 2  # ServerHello
    ske = flight.index(b"\x0c\x00")
    assert flight[ske + 4 : ske + 7] == b"\x03\x00\x17"


def test_resumption_across_the_pinned_contexts() -> None:
    """A session made on the brainpoolP256r1 context resumes from a ClientHello that is given to the P-256
    context (the client now offers only P-256), and the other way round."""
    sctx = meter(Curve.SECP256R1)
    cctx = gateway(Curve.SECP256R1, "brainpoolP256r1:P-256")
    first, c1 = handshake(sctx, cctx)
    assert first.group is Curve.BRAINPOOL_P256R1
    openssl_ctl.set_groups(cctx.ssl_context, "P-256")  # same client context (Python ssl requires it to resume)
    again, c2 = handshake(sctx, cctx, session=c1.session)
    assert again.group is Curve.SECP256R1
    assert again.info.session_reused and c2.info.session_reused
    c2.send_application_data(b"resumed")
    pump(c2, again)
    assert again.read_application_data() == b"resumed"
    openssl_ctl.set_groups(cctx.ssl_context, "brainpoolP256r1:P-256")
    third, _ = handshake(sctx, cctx, session=c2.session)
    assert third.group is Curve.BRAINPOOL_P256R1 and third.info.session_reused


def test_client_hello_without_supported_groups_gets_p256() -> None:
    from test_tls_rejections import crafted_client_hello

    hello = crafted_client_hello(b"\x00")
    # drop the supported_groups extension from the crafted hello
    ext = b"\x00\x0a\x00\x06\x00\x04\x00\x1a\x00\x17"
    assert ext in hello
    body = hello[5:].replace(ext, b"")
    msg_body = body[4:]
    ext_len_pos = msg_body.index(b"\x00\x0b\x00\x02") - 2
    msg_body = msg_body[:ext_len_pos] + (len(msg_body) - ext_len_pos - 2).to_bytes(2, "big") + msg_body[
        ext_len_pos + 2:]
    msg = b"\x01" + len(msg_body).to_bytes(3, "big") + msg_body
    record = b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg
    assert parse_client_hello(record).groups is None
    server = meter(Curve.SECP256R1).new_connection()
    server.receive_bytes(record)
    assert server.group is Curve.SECP256R1
    flight = b"".join(server.records_to_send())
    # ServerKeyExchange: curve_type named_curve (3), then the group 0x0017
    ske = flight.index(b"\x0c\x00")
    assert flight[ske + 4 : ske + 7] == b"\x03\x00\x17"


# --- the alert for every refusal ---------------------------------------------------------------------------


def test_wrong_client_certificate_gets_bad_certificate() -> None:
    ik, ic = identity("INTRUDER", Curve.SECP256R1)
    err, client_err, _ = refused(meter(Curve.SECP256R1), gateway(Curve.SECP256R1, None, key_pem=ik, cert_pem=ic))
    assert err.reason is TlsFailure.BAD_CERTIFICATE and err.alert == "bad_certificate"
    assert client_err.alert == "bad_certificate"


def test_missing_client_certificate_gets_handshake_failure() -> None:
    """wolfSSL 5.5.4 itself answers bad_certificate; RFC 5246 7.4.6 names handshake_failure."""
    err, client_err, tail = refused(meter(Curve.SECP256R1), gateway(Curve.SECP256R1, None, cert_pem=None))
    assert err.reason is TlsFailure.NO_CERTIFICATE and err.alert == "handshake_failure"
    assert client_err.alert == "handshake_failure"
    assert tail[-1] == b"\x15\x03\x03\x00\x02\x02\x28"


def test_expired_client_certificate_gets_certificate_expired() -> None:
    mk, mc = identity("1BAB0000000042", Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW", Curve.SECP256R1)[1],
                           validity=ValidityPolicy.GIVEN_TIME)
    err, client_err, _ = refused(sctx, gateway(Curve.SECP256R1, None), now=dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
    assert err.reason is TlsFailure.CERTIFICATE_EXPIRED
    assert client_err.alert == "certificate_expired"


def test_tls13_only_client_gets_protocol_version() -> None:
    err, client_err, tail = refused(meter(Curve.SECP256R1), gateway(
        Curve.SECP256R1, None, min_version=ssl.TLSVersion.TLSv1_3, max_version=ssl.TLSVersion.TLSv1_3))
    assert err.reason is TlsFailure.PROTOCOL_VERSION and client_err.alert == "protocol_version"
    assert tail == [b"\x15\x03\x03\x00\x02\x02\x46"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls10_client_gets_protocol_version_in_a_record_it_reads() -> None:
    err, client_err, tail = refused(meter(Curve.SECP256R1), gateway(
        Curve.SECP256R1, None, min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1,
        ciphers="ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"))
    assert err.reason is TlsFailure.PROTOCOL_VERSION
    assert tail == [b"\x15\x03\x01\x00\x02\x02\x46"]  # the client's version, 03 01
    assert client_err.alert == "protocol_version"


def test_non_tr_suites_get_handshake_failure() -> None:
    err, client_err, _ = refused(meter(Curve.SECP256R1), gateway(Curve.SECP256R1, None,
                                                                 ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"))
    assert err.reason is TlsFailure.NO_SHARED_CIPHER and client_err.alert == "handshake_failure"


def test_bad_certificate_verify_signature_gets_decrypt_error() -> None:
    """A client whose CertificateVerify does not verify: RFC 5246 names decrypt_error."""
    sctx = meter(Curve.SECP256R1)
    server = sctx.new_connection()
    client = gateway(Curve.SECP256R1, None).new_connection()
    client.start()

    def tap(direction: str, record: bytes) -> bytes | None:
        if direction != "c2s" or record[0] != 22:
            return None
        pos = 5
        out = bytearray(record)
        while pos + 4 <= len(record):  # walk the handshake messages in this record
            kind, length = record[pos], int.from_bytes(record[pos + 1 : pos + 4], "big")
            if kind == 15:  # CertificateVerify: flip a bit in the last signature byte
                out[pos + 4 + length - 1] ^= 0x01
                return bytes(out)
            pos += 4 + length
        return None

    with pytest.raises(TlsError):
        pump(client, server, tap=tap)
    assert server.error.reason is TlsFailure.BAD_CERTIFICATE and server.error.alert == "decrypt_error"
    assert server.records_to_send()[-1][5:] == b"\x02\x33"


@pytest.mark.parametrize(
    ("first_bytes", "reason", "alert"),
    [
        (b"\x00" * 40, TlsFailure.DECODE_ERROR, "decode_error"),
        (b"GET / HTTP/1.1\r\n\r\n", TlsFailure.DECODE_ERROR, "decode_error"),
        (b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00", TlsFailure.UNEXPECTED_MESSAGE, "unexpected_message"),
        (b"\x17\x03\x03\x00\x03abc", TlsFailure.UNEXPECTED_MESSAGE, "unexpected_message"),
        (b"\x16\x03\x03\x00\x04\x01\x00\x00\x00", TlsFailure.DECODE_ERROR, "decode_error"),
        (b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10", TlsFailure.PROTOCOL_VERSION, "protocol_version"),
    ],
)
def test_first_flights_that_are_no_client_hello(first_bytes: bytes, reason: TlsFailure, alert: str) -> None:
    server = meter(Curve.SECP256R1).new_connection()
    with pytest.raises(TlsError) as info:
        server.receive_bytes(first_bytes)
    assert info.value.reason is reason and info.value.alert == alert
    (record,) = server.records_to_send()
    assert record[0] == 21 and record[5] == 2 and record[6] == {
        "decode_error": 50, "unexpected_message": 10, "protocol_version": 70}[alert]


def test_a_client_alert_first_is_not_answered() -> None:
    server = meter(Curve.SECP256R1).new_connection()
    with pytest.raises(TlsError) as info:
        server.receive_bytes(b"\x15\x03\x03\x00\x02\x02\x28")
    assert info.value.reason is TlsFailure.PEER_ALERT and info.value.alert == "handshake_failure"
    assert server.records_to_send() == []


def test_the_post_handshake_group_check_still_refuses_with_an_alert() -> None:
    """With the pins switched off (test hook) wolfSSL negotiates X25519 for an X25519-first client; the check
    after the handshake withholds our Finished and sends handshake_failure instead."""
    mk, mc = identity("1BAB0000000042", Curve.SECP256R1)
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW", Curve.SECP256R1)[1],
                           _restrict_groups=False)
    err, client_err, tail = refused(sctx, gateway(Curve.SECP256R1, "X25519:P-256"))
    assert err.reason is TlsFailure.FORBIDDEN_GROUP and "X25519" in err.detail
    assert tail == [b"\x15\x03\x03\x00\x02\x02\x28"] and client_err.alert == "handshake_failure"


def _extensions(hello_body: bytes, after: int) -> list[int]:
    """Extension types of a Client/ServerHello body, whose extensions block starts at ``after``."""
    end = after + 2 + int.from_bytes(hello_body[after : after + 2], "big")
    pos, types = after + 2, []
    while pos + 4 <= end:
        types.append(int.from_bytes(hello_body[pos : pos + 2], "big"))
        pos += 4 + int.from_bytes(hello_body[pos + 2 : pos + 4], "big")
    return types


def test_truncated_hmac_is_granted_to_a_client_that_asks_and_openssl_does_not_ask() -> None:
    """What testssl.sh reports as "truncated HMAC/#4" (docs/tls-testing.md): wolfSSL 5.5.4 grants the
    RFC 6066 extension when a client asks for it; an OpenSSL client (like a TR gateway) never asks."""
    from test_tls_rejections import crafted_client_hello

    client = gateway(Curve.SECP256R1, None).new_connection()
    client.start()
    body = client.bytes_to_send()[9:]
    sid = body[34]
    suites = int.from_bytes(body[35 + sid : 37 + sid], "big")
    comp = body[37 + sid + suites]
    assert 4 not in _extensions(body, 38 + sid + suites + comp)
    hello = bytearray(crafted_client_hello(b"\x00"))
    ext_len_at = 5 + 4 + 2 + 32 + 1 + 2 + 8 + 1 + 1
    ext_len = int.from_bytes(hello[ext_len_at : ext_len_at + 2], "big")
    hello[ext_len_at : ext_len_at + 2] = (ext_len + 4).to_bytes(2, "big")
    hello += b"\x00\x04\x00\x00"  # truncated_hmac, empty
    hello[3:5] = (len(hello) - 5).to_bytes(2, "big")
    hello[6:9] = (len(hello) - 9).to_bytes(3, "big")
    assert parse_client_hello(bytes(hello)).groups == [26, 23]
    server = meter(Curve.SECP256R1).new_connection()
    server.receive_bytes(bytes(hello))
    server_hello = server.records_to_send()[0][9:]
    sid = server_hello[34]
    granted = _extensions(server_hello, 35 + sid + 3)
    assert 4 in granted and 11 in granted  # (ec_point_formats: the walk reads the real extension list)
