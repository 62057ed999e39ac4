"""The gateway-side LMN TLS client on Python's :mod:`ssl` (OpenSSL 3), sans-I/O (LMN-STACK.md section 4).

Used by BAB's software gateway, and as the independent peer in the interoperability tests of the
wolfSSL meter server. Same interface as :class:`bab.tls.meter_server.MeterTlsServer`: ``receive_bytes``,
``records_to_send`` / ``bytes_to_send``, ``handshake_complete``, ``send_application_data``,
``read_application_data``, ``close``. Built on ``ssl.MemoryBIO`` + ``SSLObject``.

Policy: TLS 1.2 only; the four TR-03116-3 suites; the TR groups offered as a list through ctypes
``SSL_CTX_set1_groups_list`` (:mod:`bab.tls.openssl_ctl`; if ctypes access is impossible, falls back to
``SSLContext.set_ecdh_curve`` with the first group, see :attr:`GatewayTlsContext.groups_mode`);
signature algorithms ECDSA+SHA-256/384/512; our certificate and key; the meter certificate pinned (trusted
as the only anchor with ``VERIFY_X509_PARTIAL_CHAIN`` and compared by exact DER after the handshake);
max_fragment_length 512 requested through ctypes ``SSL_CTX_set_tlsext_max_fragment_length``; no
compression, no renegotiation; session resumption by passing the previous ``session``. Validity dates follow
:class:`bab.tls.policy.ValidityPolicy` (with ``IGNORE`` and ``GIVEN_TIME`` OpenSSL's time check is off,
``X509_V_FLAG_NO_CHECK_TIME``; ``GIVEN_TIME`` then checks the pinned certificate against ``now``).
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization

from bab.tls import keys, openssl_ctl
from bab.tls.errors import TlsError, TlsFailure, TlsStateError, tls_error
from bab.tls.meter_server import TlsSessionInfo
from bab.tls.policy import (
    CIPHER_SUITE_IDS,
    CIPHER_SUITES,
    GROUPS,
    MAX_FRAGMENT_LENGTH,
    SIGALGS,
    TLS_VERSION,
    ValidityPolicy,
    check_validity,
    resolve_now,
)
from bab.tls.records import RecordSplitter

X509_V_FLAG_NO_CHECK_TIME = 0x200000
#: ``raw_groups`` value that leaves OpenSSL's default group list (X25519, P-256, X448, P-521, P-384) in place.
OPENSSL_DEFAULT_GROUPS = "openssl-default"
_OPENSSL_GROUP_NAMES = {
    keys.Curve.SECP256R1: "P-256",
    keys.Curve.SECP384R1: "P-384",
    keys.Curve.BRAINPOOL_P256R1: "brainpoolP256r1",
    keys.Curve.BRAINPOOL_P384R1: "brainpoolP384r1",
    keys.Curve.BRAINPOOL_P512R1: "brainpoolP512r1",
}
_NID_NAMES = {
    "prime256v1": keys.Curve.SECP256R1,
    "secp384r1": keys.Curve.SECP384R1,
    "brainpoolP256r1": keys.Curve.BRAINPOOL_P256R1,
    "brainpoolP384r1": keys.Curve.BRAINPOOL_P384R1,
    "brainpoolP512r1": keys.Curve.BRAINPOOL_P512R1,
}


class GatewayTlsContext:
    """Long-lived client configuration (one per paired meter).

    ``key_pem``/``cert_pem``: the gateway's key and certificate; ``peer_cert_pem``: the meter's
    certificate, pinned. ``groups``: ECDHE groups offered (default: the five TR groups). ``max_fragment_length``:
    512 (the LMN value) or None. ``validity``: :class:`ValidityPolicy`.

    The test-only knobs ``ciphers``, ``min_version``/``max_version`` and ``raw_groups`` (an OpenSSL groups
    string such as ``"X25519"``, or :data:`OPENSSL_DEFAULT_GROUPS` to keep OpenSSL's own default list, which
    starts with X25519) let the tests play a general-purpose or non-conforming client; production code
    leaves them.
    """

    def __init__(
        self,
        *,
        key_pem: bytes,
        cert_pem: bytes | None,
        peer_cert_pem: bytes,
        groups: Sequence[keys.Curve | str] = GROUPS,
        max_fragment_length: int | None = MAX_FRAGMENT_LENGTH,
        validity: ValidityPolicy | str = ValidityPolicy.IGNORE,
        ciphers: str | None = None,
        min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        raw_groups: str | None = None,
    ) -> None:
        self.validity = ValidityPolicy(validity)
        self.peer_cert_der = keys.certificate_der(peer_cert_pem)
        peer = keys.load_certificate(self.peer_cert_der)
        self.peer_not_before, self.peer_not_after = keys.validity(peer)
        self.groups = tuple(keys.Curve.parse(g) if isinstance(g, str) else g for g in groups)
        self._strict = (
            (ciphers is None or set(ciphers.split(":")) <= set(CIPHER_SUITES))
            and raw_groups is None
            and min_version == max_version == ssl.TLSVersion.TLSv1_2
        )

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = min_version
        ctx.maximum_version = max_version
        ctx.set_ciphers(ciphers or ":".join(CIPHER_SUITES))
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=self.peer_cert_der)
        flags = ctx.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN
        if self.validity is not ValidityPolicy.SYSTEM_CLOCK:
            flags |= X509_V_FLAG_NO_CHECK_TIME
        ctx.verify_flags = flags
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        self.groups_mode = "set1_groups_list"
        keep_default = raw_groups == OPENSSL_DEFAULT_GROUPS
        try:
            if not keep_default:
                openssl_ctl.set_groups(ctx, raw_groups or ":".join(_OPENSSL_GROUP_NAMES[g] for g in self.groups))
            if self._strict:
                openssl_ctl.set_sigalgs(ctx, SIGALGS)
        except openssl_ctl.OpenSslCtlUnavailable:
            self.groups_mode = "set_ecdh_curve"
            if not keep_default:
                ctx.set_ecdh_curve(raw_groups or _OPENSSL_GROUP_NAMES[self.groups[0]])
        self.max_fragment_length: int | None = None
        if max_fragment_length is not None:
            try:
                openssl_ctl.set_max_fragment_length(ctx, max_fragment_length)
                self.max_fragment_length = max_fragment_length
            except openssl_ctl.OpenSslCtlUnavailable:
                self.max_fragment_length = None
        if cert_pem is not None:
            keys.check_key_matches_certificate(key_pem, cert_pem)
            try:
                openssl_ctl.use_certificate_and_key(ctx, keys.certificate_der(cert_pem), keys.private_key_der(key_pem))
            except openssl_ctl.OpenSslCtlUnavailable:
                _load_cert_chain_from_memory(ctx, cert_pem, key_pem)
        self.ssl_context = ctx

    def new_connection(
        self, *, now: dt.datetime | None = None, session: ssl.SSLSession | None = None
    ) -> GatewayTlsClient:
        return GatewayTlsClient(self, now=now, session=session)


class GatewayTlsClient:
    """One TLS 1.2 client connection, sans-I/O. Call :meth:`start` to produce the ClientHello."""

    def __init__(
        self,
        context: GatewayTlsContext,
        *,
        now: dt.datetime | None = None,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self._context = context
        self._now = resolve_now(context.validity, now)
        self._in = ssl.MemoryBIO()
        self._outbio = ssl.MemoryBIO()
        self._obj = context.ssl_context.wrap_bio(self._in, self._outbio, server_side=False, session=session)
        self._out = RecordSplitter()
        self._app_in = bytearray()
        self._error: TlsError | None = None
        self._info: TlsSessionInfo | None = None
        self._started = False
        self.handshake_complete = False
        self.peer_closed = False
        self.closed = False

    def start(self) -> None:
        """Begin the handshake (queues the ClientHello)."""
        if not self._started:
            self._started = True
            self._step()

    def receive_bytes(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._in.write(data)
        self._started = True
        self._step()

    def records_to_send(self) -> list[bytes]:
        pending = self._outbio.read()
        if pending:
            self._out.feed(pending)
        return self._out.records()

    def bytes_to_send(self) -> bytes:
        return b"".join(self.records_to_send())

    def send_application_data(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if not self.handshake_complete:
            raise TlsStateError("handshake not complete")
        try:
            self._obj.write(data)
        except ssl.SSLError as exc:
            self._fail(exc)

    def read_application_data(self) -> bytes:
        data = bytes(self._app_in)
        self._app_in.clear()
        return data

    def close(self) -> None:
        if self._error is not None or self.closed or not self.handshake_complete:
            self.closed = True
            return
        try:
            self._obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass
        self.closed = True

    @property
    def info(self) -> TlsSessionInfo | None:
        return self._info

    @property
    def session(self) -> ssl.SSLSession | None:
        """The session to pass to the next connection for resumption."""
        return self._obj.session

    @property
    def ssl_object(self) -> ssl.SSLObject:
        return self._obj

    @property
    def error(self) -> TlsError | None:
        return self._error

    def _step(self) -> None:
        if not self.handshake_complete:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return
            except ssl.SSLError as exc:
                self._fail(exc)
            try:
                self._info = self._check_negotiated()
            except TlsError as exc:
                self._error = exc
                raise
            self.handshake_complete = True
        while True:
            try:
                chunk = self._obj.read(16384)
            except ssl.SSLWantReadError:
                return
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                self.close()
                return
            except ssl.SSLError as exc:
                self._fail(exc)
            if not chunk:  # _ssl returns b"" once close_notify was received
                self.peer_closed = True
                self.close()
                return
            self._app_in += chunk

    def _check_negotiated(self) -> TlsSessionInfo:
        obj = self._obj
        version = obj.version() or "?"
        cipher = (obj.cipher() or ("?",))[0]
        strict = self._context._strict
        if strict and version != TLS_VERSION:
            raise tls_error(TlsFailure.PROTOCOL_VERSION, f"negotiated {version}")
        if strict and cipher not in CIPHER_SUITE_IDS:
            raise tls_error(TlsFailure.NO_SHARED_CIPHER, f"negotiated {cipher}")
        reused = obj.session_reused
        group: keys.Curve | None = None
        if not reused and self._context.groups_mode == "set1_groups_list":
            name = openssl_ctl.negotiated_group(obj)
            group = _NID_NAMES.get(name or "")
            if group is None and strict:
                raise tls_error(TlsFailure.FORBIDDEN_GROUP, f"negotiated ECDHE group {name}")
        der = obj.getpeercert(binary_form=True)
        if der is None:
            raise tls_error(TlsFailure.NO_CERTIFICATE, "meter sent no certificate")
        if der != self._context.peer_cert_der:
            raise tls_error(TlsFailure.BAD_CERTIFICATE, "meter certificate is not the pinned one")
        ctx = self._context
        check_validity(ctx.validity, ctx.peer_not_before, ctx.peer_not_after, self._now)
        return TlsSessionInfo(
            version=version,
            cipher_suite=cipher,
            group=group,
            session_reused=reused,
            max_fragment_length=ctx.max_fragment_length or 16384,
            peer_certificate_der=der,
        )

    def _fail(self, exc: ssl.SSLError) -> None:
        err = _classify_openssl(exc)
        self._error = err
        raise err from exc


def _load_cert_chain_from_memory(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Fallback when ctypes cannot reach OpenSSL: ``load_cert_chain`` needs files, so the PEMs go to a
    private (0700) temporary directory that is removed right after loading."""
    with tempfile.TemporaryDirectory(prefix="bab-tls-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(keys.load_certificate(cert_pem).public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(keys.private_key_pem(keys.load_private_key(key_pem)))
        ctx.load_cert_chain(cert_path, key_path)


def _classify_openssl(exc: ssl.SSLError) -> TlsError:
    reason = (exc.reason or "").upper()
    text = str(exc)
    if "ALERT" in reason:
        alert = reason.split("ALERT_", 1)[-1].lower()
        return tls_error(TlsFailure.PEER_ALERT, text, alert=alert)
    table = [
        ("CERTIFICATE_VERIFY_FAILED", TlsFailure.BAD_CERTIFICATE),
        ("PEER_DID_NOT_RETURN_A_CERTIFICATE", TlsFailure.NO_CERTIFICATE),
        ("VERSION", TlsFailure.PROTOCOL_VERSION),
        ("NO_PROTOCOLS_AVAILABLE", TlsFailure.PROTOCOL_VERSION),
        ("NO_SHARED_CIPHER", TlsFailure.NO_SHARED_CIPHER),
        ("NO_CIPHERS_AVAILABLE", TlsFailure.NO_SHARED_CIPHER),
        ("WRONG_CURVE", TlsFailure.FORBIDDEN_GROUP),
        ("BAD_RECORD_MAC", TlsFailure.BAD_RECORD_MAC),
        ("DECRYPTION_FAILED", TlsFailure.BAD_RECORD_MAC),
        ("RECORD_OVERFLOW", TlsFailure.RECORD_OVERFLOW),
        ("LENGTH", TlsFailure.DECODE_ERROR),
        ("UNEXPECTED", TlsFailure.UNEXPECTED_MESSAGE),
        ("RENEGOTIATION", TlsFailure.RENEGOTIATION_REFUSED),
    ]
    for key, failure in table:
        if key in reason:
            return tls_error(failure, text)
    return tls_error(TlsFailure.HANDSHAKE_FAILURE, text)
