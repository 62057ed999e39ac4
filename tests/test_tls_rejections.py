"""The meter's TLS server refuses everything outside the TR-03116-3 LMN policy with a clear, named reason,
and stays usable for the next connection; broken records and abandoned handshakes neither crash nor leak."""

from __future__ import annotations

import functools
import gc
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bab.tls import keys, openssl_ctl, wolfssl_binding
from bab.tls.errors import (
    TlsCertificateError,
    TlsError,
    TlsFailure,
    TlsNegotiationError,
    TlsRecordError,
    TlsUnavailable,
)
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.keys import Curve
from bab.tls.loopback import pump
from bab.tls.meter_server import MeterTlsContext

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

CURVE = Curve.SECP256R1


@functools.cache
def identity(name: str, curve: Curve = CURVE) -> tuple[bytes, bytes]:
    return keys.generate_identity(name, curve)


@functools.cache
def server_context(restrict_groups: bool = True) -> MeterTlsContext:
    mk, mc = identity("1EMH0012345678")
    return MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW")[1], _restrict_groups=restrict_groups)


def client_context(**kw) -> GatewayTlsContext:
    gk, gc = identity("SMGW")
    args = dict(key_pem=gk, cert_pem=gc, peer_cert_pem=identity("1EMH0012345678")[1])
    args.update(kw)
    return GatewayTlsContext(**args)


def connect(cctx: GatewayTlsContext, sctx: MeterTlsContext | None = None, tap=None):
    server = (sctx or server_context()).new_connection()
    client = cctx.new_connection()
    client.start()
    pump(client, server, tap=tap)
    return server, client


def reject(cctx: GatewayTlsContext, sctx: MeterTlsContext | None = None) -> TlsError:
    """Run a handshake that the server must refuse; return the server's error."""
    server = (sctx or server_context()).new_connection()
    client = cctx.new_connection()
    client.start()
    with pytest.raises(TlsError):
        pump(client, server)
    assert server.error is not None, f"server did not fail (client: {client.error})"
    assert not server.handshake_complete and not client.handshake_complete
    # the alert for the client is still queued, and the dead server object keeps raising the same error
    alerts = server.records_to_send()
    assert alerts and alerts[-1][0] == 21 and alerts[-1][5] == 2  # fatal alert
    with pytest.raises(TlsError) as again:
        server.receive_bytes(b"\x16\x03\x03\x00\x00")
    assert again.value is server.error
    return server.error


def assert_next_connection_works(sctx: MeterTlsContext | None = None) -> None:
    server, client = connect(client_context(), sctx)
    assert server.handshake_complete and client.handshake_complete
    client.send_application_data(b"hello meter")
    pump(client, server)
    assert server.read_application_data() == b"hello meter"


def test_wrong_client_certificate() -> None:
    ok, oc = identity("INTRUDER")
    err = reject(client_context(key_pem=ok, cert_pem=oc))
    assert isinstance(err, TlsCertificateError) and err.reason is TlsFailure.BAD_CERTIFICATE
    assert keys.fingerprint_sha256(oc) in err.detail and "pinned" in err.detail
    assert_next_connection_works()


def test_wrong_client_certificate_on_another_curve() -> None:
    ok, oc = identity("INTRUDER", Curve.BRAINPOOL_P256R1)
    err = reject(client_context(key_pem=ok, cert_pem=oc))
    assert err.reason is TlsFailure.BAD_CERTIFICATE


def test_no_client_certificate() -> None:
    err = reject(client_context(cert_pem=None))
    assert isinstance(err, TlsCertificateError) and err.reason is TlsFailure.NO_CERTIFICATE
    assert_next_connection_works()


def test_tls13_only_client() -> None:
    err = reject(client_context(min_version=ssl.TLSVersion.TLSv1_3, max_version=ssl.TLSVersion.TLSv1_3))
    assert isinstance(err, TlsNegotiationError) and err.reason is TlsFailure.PROTOCOL_VERSION
    assert "TLSv1.3" in err.detail and err.alert == "protocol_version"
    assert_next_connection_works()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_client(version: ssl.TLSVersion) -> None:
    cctx = client_context(min_version=version, max_version=version, ciphers="ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    err = reject(cctx)
    assert err.reason is TlsFailure.PROTOCOL_VERSION
    assert {"TLSv1": "TLSv1.0", "TLSv1_1": "TLSv1.1"}[version.name] in err.detail
    assert_next_connection_works()


@pytest.mark.parametrize("groups", ["X25519", "P-521", "X448", "X25519:X448:P-521", "secp256k1:P-224"])
def test_only_forbidden_groups(groups: str) -> None:
    err = reject(client_context(raw_groups=groups))
    assert isinstance(err, TlsNegotiationError) and err.reason is TlsFailure.FORBIDDEN_GROUP
    assert err.alert == "handshake_failure"
    assert_next_connection_works()


def test_non_tr_group_listed_with_tr_group_negotiates_tr_group() -> None:
    server, client = connect(client_context(raw_groups="P-521:P-256"))
    assert server.info.group is Curve.SECP256R1 and client.info.group is Curve.SECP256R1


def test_negotiated_group_is_verified_after_the_handshake() -> None:
    """Defence in depth: with wolfSSL's own group restriction switched off (test hook), wolfSSL negotiates
    X25519, and the post-handshake check still refuses the session before it completes for the client."""
    sctx = server_context(restrict_groups=False)
    err = reject(client_context(raw_groups="X25519:P-256"), sctx)
    assert err.reason is TlsFailure.FORBIDDEN_GROUP and "X25519" in err.detail
    assert_next_connection_works(sctx)


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ],
)
def test_non_tr_cipher_suites(ciphers: str) -> None:
    err = reject(client_context(ciphers=ciphers))
    assert isinstance(err, TlsNegotiationError) and err.reason is TlsFailure.NO_SHARED_CIPHER
    assert_next_connection_works()


def _established():
    server, client = connect(client_context())
    assert server.handshake_complete
    return server, client


def test_corrupted_application_record_is_bad_record_mac() -> None:
    server, client = _established()
    client.send_application_data(b"x" * 100)
    (record,) = client.records_to_send()
    broken = bytearray(record)
    broken[40] ^= 0x01
    with pytest.raises(TlsRecordError) as info:
        server.receive_bytes(bytes(broken))
    assert info.value.reason is TlsFailure.BAD_RECORD_MAC
    assert server.read_application_data() == b""
    assert_next_connection_works()


def test_truncated_application_record() -> None:
    """A record whose length field was cut: its tail is parsed as the next record header."""
    server, client = _established()
    client.send_application_data(b"y" * 100)
    (record,) = client.records_to_send()
    length = int.from_bytes(record[3:5], "big")
    cut = record[:3] + (length - 10).to_bytes(2, "big") + record[5:]
    with pytest.raises(TlsRecordError) as info:
        server.receive_bytes(cut)
    assert info.value.reason in (TlsFailure.BAD_RECORD_MAC, TlsFailure.DECODE_ERROR)
    assert_next_connection_works()


def test_oversized_record_is_refused() -> None:
    server, _ = _established()
    with pytest.raises(TlsRecordError) as info:
        server.receive_bytes(b"\x17\x03\x03\xff\xff" + b"\x00" * 64)
    assert info.value.reason in (TlsFailure.RECORD_OVERFLOW, TlsFailure.DECODE_ERROR)


@pytest.mark.parametrize("index", [9, 44, 60])
def test_corrupted_handshake_record(index: int) -> None:
    """Flip a byte in the client's second flight (certificate / key exchange)."""
    flights = {"n": 0}

    def tap(direction: str, record: bytes) -> bytes | None:
        if direction == "c2s" and record[0] == 22:
            flights["n"] += 1
            if flights["n"] == 2:
                b = bytearray(record)
                b[index] ^= 0x40
                return bytes(b)
        return None

    server = server_context().new_connection()
    client = client_context().new_connection()
    client.start()
    with pytest.raises(TlsError):
        pump(client, server, tap=tap)
    assert server.error is not None or client.error is not None
    assert not server.handshake_complete
    assert_next_connection_works()


@pytest.mark.parametrize(
    "noise",
    [
        b"\x00" * 40,
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00",
        b"\x16\x03\x03\x00\x04\x01\x00\x00\x00",
        b"\x15\x03\x03\x00\x02\x02\x28",
    ],
)
def test_line_noise_instead_of_client_hello(noise: bytes) -> None:
    server = server_context().new_connection()
    with pytest.raises(TlsError):
        server.receive_bytes(noise)
        server.receive_bytes(b"\x16\x03\x03\x00\x01\x00" * 8)  # whatever follows must not revive it
        raise AssertionError("no error")  # pragma: no cover
    assert server.error is not None


def test_renegotiation_is_refused() -> None:
    cctx = client_context()
    cctx.ssl_context.options &= ~ssl.OP_NO_RENEGOTIATION
    server, client = connect(cctx)
    try:
        openssl_ctl.renegotiate(client.ssl_object)
    except (openssl_ctl.OpenSslCtlUnavailable, ssl.SSLError):
        pytest.skip("cannot drive an OpenSSL renegotiation here")
    with pytest.raises(ssl.SSLWantReadError):
        client.ssl_object.do_handshake()
    with pytest.raises(TlsError) as info:
        pump(client, server)
    assert server.error is not None
    assert server.error.reason in (TlsFailure.RENEGOTIATION_REFUSED, TlsFailure.UNEXPECTED_MESSAGE)
    assert info.value is server.error or client.error is not None


def test_abandoned_handshakes_are_freed() -> None:
    finalizers = []
    for _ in range(30):
        server = server_context().new_connection()
        client = client_context().new_connection()
        client.start()
        for record in client.records_to_send():
            server.receive_bytes(record)
        server.records_to_send()  # server flight produced, client never answers
        finalizers.append(server._finalizer)
        del server, client
    gc.collect()
    assert not any(f.alive for f in finalizers)
    assert_next_connection_works()


def test_half_a_record_then_nothing() -> None:
    server = server_context().new_connection()
    client = client_context().new_connection()
    client.start()
    (hello,) = client.records_to_send()
    server.receive_bytes(hello[: len(hello) // 2])
    assert server.records_to_send() == [] and server.error is None and not server.handshake_complete
    server.free()
    server.free()  # idempotent


def test_unavailable_binding_names_the_fix(monkeypatch) -> None:
    monkeypatch.setattr(wolfssl_binding, "lib", None)
    monkeypatch.setattr(wolfssl_binding, "_IMPORT_ERROR", "No module named 'bab.tls._wolfssl_cffi'")
    with pytest.raises(TlsUnavailable, match=r"apt-get install libwolfssl-dev.*python -m bab.tls.build_wolfssl"):
        MeterTlsContext(key_pem=b"", cert_pem=b"", peer_cert_pem=b"")
    assert not wolfssl_binding.available()


def test_server_context_refuses_foreign_key_material() -> None:
    mk, _ = identity("1EMH0012345678")
    _, other_cert = identity("OTHER")
    with pytest.raises(keys.KeyMaterialError, match="does not belong"):
        MeterTlsContext(key_pem=mk, cert_pem=other_cert, peer_cert_pem=identity("SMGW")[1])


@functools.cache
def recorded_client_stream() -> tuple[bytes, bytes]:
    """(ClientHello flight, second client flight) of one real handshake."""
    server = server_context().new_connection()
    client = client_context().new_connection()
    client.start()
    first = b"".join(client.records_to_send())
    server.receive_bytes(first)
    for rec in server.records_to_send():
        client.receive_bytes(rec)
    second = b"".join(client.records_to_send())
    return first, second


def feed_expecting_only_tls_errors(chunks: list[bytes]) -> None:
    server = server_context().new_connection()
    try:
        for chunk in chunks:
            server.receive_bytes(chunk)
            server.records_to_send()
    except TlsError:
        assert server.error is not None
    finally:
        server.free()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=1500))
def test_fuzz_random_bytes(data: bytes) -> None:
    feed_expecting_only_tls_errors([data])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fuzz_mutated_client_flights(data: st.DataObject) -> None:
    first, second = recorded_client_stream()
    stream = bytearray(first + second)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, 200))
    feed_expecting_only_tls_errors([bytes(stream[i : i + cut]) for i in range(0, len(stream), cut)])


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.data())
def test_fuzz_mutated_client_flights_long(data: st.DataObject) -> None:
    test_fuzz_mutated_client_flights.hypothesis.inner_test(data)  # type: ignore[attr-defined]


def test_closed_context_refuses_new_connections() -> None:
    from bab.tls.errors import TlsStateError

    mk, mc = identity("1EMH0012345678")
    sctx = MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=identity("SMGW")[1])
    live = sctx.new_connection()
    sctx.close()
    with pytest.raises(TlsStateError):
        sctx.new_connection()
    # an existing connection keeps working (wolfSSL reference-counts the context)
    client = client_context().new_connection()
    client.start()
    pump(client, live)
    assert live.handshake_complete


def crafted_client_hello(compression: bytes, groups: bytes = b"\x00\x1a\x00\x17") -> bytes:
    """A TLS 1.2 ClientHello record offering the TR suites, ``groups`` (brainpoolP256r1 and secp256r1 by
    default) and the given compression methods."""
    suites = b"\xc0\x2b\xc0\x2c\xc0\x23\xc0\x24"
    exts = b"\x00\x0a" + (len(groups) + 2).to_bytes(2, "big") + len(groups).to_bytes(2, "big") + groups
    exts += b"\x00\x0b\x00\x02\x01\x00"  # ec_point_formats: uncompressed
    exts += b"\x00\x0d\x00\x04\x00\x02\x04\x03"  # signature_algorithms: ecdsa_secp256r1_sha256
    body = b"\x03\x03" + b"\x42" * 32 + b"\x00" + len(suites).to_bytes(2, "big") + suites
    body += bytes([len(compression)]) + compression + len(exts).to_bytes(2, "big") + exts
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg


def test_client_without_null_compression_is_refused() -> None:
    server = server_context().new_connection()
    with pytest.raises(TlsError) as info:
        server.receive_bytes(crafted_client_hello(b"\x01"))  # DEFLATE only
    assert info.value.reason is TlsFailure.HANDSHAKE_FAILURE and "compression" in info.value.detail


def test_server_selects_null_compression() -> None:
    server = server_context().new_connection()
    server.receive_bytes(crafted_client_hello(b"\x01\x00"))  # DEFLATE preferred, null offered
    records = server.records_to_send()
    hello = records[0][5:]
    assert hello[0] == 2  # ServerHello
    sid_len = hello[4 + 2 + 32]
    pos = 4 + 2 + 32 + 1 + sid_len
    assert hello[pos : pos + 2] in (b"\xc0\x2b", b"\xc0\x2c", b"\xc0\x23", b"\xc0\x24")
    assert hello[pos + 2] == 0  # compression method: null
