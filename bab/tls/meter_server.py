"""The meter-side LMN TLS server on wolfSSL, sans-I/O (LMN-STACK.md section 4, spec TLS-WOLFSSL.md).

BAB is the TLS server on the LMN; the gateway is the client. TLS bytes travel in HDLC I-frames (section 3.3):
the caller feeds the bytes of received I-frames to :meth:`MeterTlsServer.receive_bytes` and sends what
:meth:`MeterTlsServer.records_to_send` hands out, one TLS record per I-frame. No I/O, no threads, no clock
reads in this module (wolfSSL itself reads the system clock only for the session cache expiry and, with
``ValidityPolicy.SYSTEM_CLOCK``, for certificate dates).

Policy (enforced by configuration *and* checked again after every handshake):

* TLS 1.2 only (``wolfTLSv1_2_server_method``); anything else: ``PROTOCOL_VERSION``.
* Exactly the four suites of :data:`bab.tls.policy.CIPHER_SUITES`; otherwise ``NO_SHARED_CIPHER``.
* ECDHE groups: only the five TR curves (or the subset given as ``groups``, in the meter's order of
  preference). wolfSSL 5.5.4's TLS 1.2 server ignores its own group list: it takes the first group *in the
  client's order* whose size equals its ephemeral key size (so X25519 wins whenever a client lists it first),
  and ``wolfSSL_CTX_set1_curves_list`` cannot change that on a TLS 1.2-only context. So the choice is made
  here, in four layers. (1) :class:`MeterTlsContext` holds one wolfSSL context per group, each pinned to it
  with ``wolfSSL_SSL_CTX_set_tmp_ecdh`` (a pinned context negotiates its group or fails, whatever else the
  client lists). (2) The ClientHello is parsed in Python before wolfSSL sees it; the group is the first of
  ours that the client offers (:meth:`MeterTlsContext.choose_group`; a client offering X25519, X448, P-521...
  *besides* one of ours is served on ours), and the wolfSSL connection is created on that group's context. A
  client offering none of ours is refused (``FORBIDDEN_GROUP``). The list is not held against the curve of
  our certificate: a gateway offering only secp256r1 (the reference gateway) accepts a brainpool meter
  certificate, and a client that does check it refuses it on its side. (3) The ephemeral key is made by a C
  key-generation callback that refuses any ECC curve outside the five. (4) The negotiated group is verified
  after the handshake (a TR group, and the pinned one); on a violation our ChangeCipherSpec/Finished are
  withheld and replaced by a fatal alert, so the handshake never completes.
* Our certificate and the pinned peer certificate must be ECDSA on one of the five curves (checked when the
  context is built). Signature algorithms: ECDSA with SHA-256/384/512.
* Mutual authentication: the client must send a certificate (``NO_CERTIFICATE`` otherwise) whose DER is
  exactly the provisioned gateway certificate (``BAD_CERTIFICATE`` otherwise). The pin is checked in the
  verify callback (so a wrong certificate aborts the handshake before it completes) and again afterwards.
* Certificate dates: :class:`bab.tls.policy.ValidityPolicy` (``IGNORE`` by default, ``SYSTEM_CLOCK``, or
  ``GIVEN_TIME`` with ``now`` passed to the connection).
* No compression (Debian's libwolfssl is built without zlib; only the null method is ever selected), no
  renegotiation (the library is built without secure renegotiation; a renegotiating ClientHello fails the
  connection with unexpected_message).
* No truncated MACs: this wolfSSL accepts a client's truncated_hmac request (RFC 6066) unconditionally (no
  switch to ignore it) and would then cut a CBC suite's MAC to 80 bits, which TR-03116-3 forbids. A client
  offering truncated_hmac is therefore served on the two GCM suites only (the extension is echoed, but an
  AEAD suite has no MAC to truncate; checked again after the handshake), and refused with handshake_failure
  when it offers CBC suites only. TaSK's TLS_B2_FR_02_T offers exactly that (each CBC suite alone) and
  expects the extension to be ignored: BAB fails that case on purpose (docs/conformance.md).
* max_fragment_length: wolfSSL honours the client's request; with 2^9 every record we send carries at most
  512 bytes of plaintext (see :attr:`MeterTlsServer.max_fragment_length`).
* Session resumption by session ID and by session ticket (RFC 5077), lifetime 744 h: the session cache's timeout
  (``wolfSSL_CTX_set_timeout``), and for tickets the binding's own ticket callback (wolfSSL 5.5.4's default one
  fails every further ticket once the timeout exceeds its 1 h key lifetime). It encrypts the ticket with
  AES-256-GCM under a key set of this :class:`MeterTlsContext` (:class:`TicketKeys`), puts the issue time into
  the authenticated key name, and rejects a ticket that is older than the lifetime or was made under another key
  set; a full handshake follows. A ticket carries no peer certificate: a resumption from one of ours is taken as
  the pinned gateway's (we issue tickets only after the pin check). Ours are 174 bytes; wolfSSL refuses a ticket
  of more than 206 bytes with handshake_failure instead of a full handshake ("Bad session ticket message Size
  Error"). wolfSSL's session cache is process-wide: a session resumes on whichever pinned context the resuming
  ClientHello is given (all of one :class:`MeterTlsContext` share a session-ID context), and 5.5.4 resumes a
  session even across contexts whose session-ID context differs; the post-handshake check compares the resumed
  session's peer certificate with *this* context's pin, so a session from another pairing is refused
  (close_notify, no application data accepted) and removed from the cache (the client's next attempt is a full
  handshake). That refusal comes after our Finished, when an alert would have to be encrypted, and wolfSSL 5.5.4
  has no call to send one: the client gets an encrypted close_notify and then the end of the connection.
* Keys are handed to wolfSSL as SEC1 (RFC 5915) DER: wolfSSL 5.5.4 mis-reads brainpool keys in PKCS#8 form
  (the handshake then fails at the peer with a bad ServerKeyExchange signature).

Errors raise :class:`bab.tls.errors.TlsError` subclasses with a :class:`~bab.tls.errors.TlsFailure` reason.
Every refusal during the handshake is answered with the fatal alert that names it
(:data:`bab.tls.errors.ALERT_FOR`: protocol_version, handshake_failure, bad_certificate, certificate_expired,
decrypt_error for a bad CertificateVerify, decode_error, unexpected_message...), carried in ``alert`` of the
error. Refusals decided in Python before wolfSSL runs get a plaintext alert record built here, with the
record version the client announced (capped at TLS 1.2); for failures inside wolfSSL its plaintext alert is
replaced by the right one or ours appended (5.5.4 answers a missing client certificate with bad_certificate,
and some failures with no alert). After our ChangeCipherSpec (a resumed handshake, or application data) an
alert must be encrypted, and wolfSSL's own stands. A client's fatal alert is not answered.
After an error the alert for the peer is still in :meth:`records_to_send`; the object is then dead.
A fresh :class:`MeterTlsServer` is created per connection from one long-lived :class:`MeterTlsContext`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization

from bab.tls import keys, wolfssl_binding
from bab.tls.errors import ALERT_FOR, TlsError, TlsFailure, TlsStateError, tls_error
from bab.tls.policy import (
    CIPHER_SUITE_IDS,
    CIPHER_SUITES,
    GCM_SUITES,
    GROUPS,
    SESSION_LIFETIME_S,
    SIGALGS,
    TLS_VERSION,
    ValidityPolicy,
    check_validity,
    resolve_now,
)
from bab.tls.records import (
    ALERT_DESCRIPTIONS,
    CONTENT_ALERT,
    CONTENT_APPLICATION_DATA,
    CONTENT_CHANGE_CIPHER_SPEC,
    CONTENT_HANDSHAKE,
    ClientHelloSummary,
    RecordSplitter,
    alert_record,
    alert_version,
    is_plaintext_alert,
    parse_client_hello,
    split_records,
)

# wolfSSL's names for the five groups (wolfSSL_get_curve_name) and for set1_curves_list.
_WOLF_CURVE_NAMES = {
    "SECP256R1": keys.Curve.SECP256R1,
    "SECP384R1": keys.Curve.SECP384R1,
    "BRAINPOOLP256R1": keys.Curve.BRAINPOOL_P256R1,
    "BRAINPOOLP384R1": keys.Curve.BRAINPOOL_P384R1,
    "BRAINPOOLP512R1": keys.Curve.BRAINPOOL_P512R1,
}
# the binding's NID constants, for wolfSSL_EC_KEY_new_by_curve_name
_NIDS = {
    keys.Curve.SECP256R1: "NID_X9_62_prime256v1",
    keys.Curve.SECP384R1: "NID_secp384r1",
    keys.Curve.BRAINPOOL_P256R1: "NID_brainpoolP256r1",
    keys.Curve.BRAINPOOL_P384R1: "NID_brainpoolP384r1",
    keys.Curve.BRAINPOOL_P512R1: "NID_brainpoolP512r1",
}
_ALLOWED_GROUP_IDS = {c.tls_group_id for c in GROUPS}
_MAX_HELLO = 32768
_READ_CHUNK = 16384


@dataclass(frozen=True)
class TlsSessionInfo:
    """The negotiated parameters of an established connection."""

    version: str
    cipher_suite: str
    group: keys.Curve | None  # None on a resumed session (no ECDHE in an abbreviated handshake)
    session_reused: bool
    max_fragment_length: int  # largest plaintext per record we send
    peer_certificate_der: bytes


class MeterTlsContext:
    """Long-lived server configuration: our key + certificate, the pinned gateway certificate, the policy.

    ``key_pem``/``cert_pem``: the meter's private key and certificate (PEM or DER; ECDSA on a TR curve).
    ``peer_cert_pem``: the provisioned gateway certificate, pinned by exact DER match.
    ``validity``: how the pinned certificate's dates are checked (:class:`ValidityPolicy`).
    ``session_lifetime_s``: session cache timeout (744 h).
    ``groups``: the ECDHE groups served, in the meter's order of preference (default
    :data:`bab.tls.policy.GROUPS`; any non-empty subset of the five).

    Holds one ``WOLFSSL_CTX`` per group, each pinned to that group (see the module docstring); create
    connections with :meth:`new_connection`. Raises :class:`bab.tls.errors.TlsUnavailable` when the wolfSSL
    binding is not built, and :class:`bab.tls.keys.KeyMaterialError` for unusable key material.
    """

    def __init__(
        self,
        *,
        key_pem: bytes,
        cert_pem: bytes,
        peer_cert_pem: bytes,
        validity: ValidityPolicy | str = ValidityPolicy.IGNORE,
        session_lifetime_s: int = SESSION_LIFETIME_S,
        groups: Sequence[keys.Curve] = GROUPS,
        _restrict_groups: bool = True,
    ) -> None:
        ffi, lib = wolfssl_binding.require()
        self._restrict_groups = _restrict_groups
        self.validity = ValidityPolicy(validity)
        self.groups = tuple(groups)
        if not self.groups or any(g not in GROUPS for g in self.groups) or len(set(self.groups)) != len(self.groups):
            raise ValueError(f"groups must be distinct TR-03116-3 groups, got {groups!r}")
        self.cert_der = keys.certificate_der(cert_pem)
        self.peer_cert_der = keys.certificate_der(peer_cert_pem)
        key_der = keys.private_key_der(key_pem, sec1=True)
        keys.check_key_matches_certificate(key_pem, cert_pem)
        peer = keys.load_certificate(self.peer_cert_der)
        self.peer_not_before, self.peer_not_after = keys.validity(peer)
        self.peer_fingerprint = keys.fingerprint_sha256(self.peer_cert_der)
        self.session_lifetime_s = session_lifetime_s
        # One context per group, all with the same session-ID context (a session resumes on any of them).
        self._sid_ctx = hashlib.sha256(b"BAB-LMN-TLS\0" + self.cert_der + self.peer_cert_der).digest()
        self._ctxs: dict[keys.Curve | None, Any] = {}
        self._ticket_keys = TicketKeys(ffi, lib, session_lifetime_s)
        self._finalizer = weakref.finalize(self, _free_contexts, lib, self._ctxs, self._ticket_keys)
        pins: tuple[keys.Curve | None, ...] = self.groups if _restrict_groups else (None,)
        for pin in pins:
            self._ctxs[pin] = self._new_wolf_context(ffi, lib, key_der, pin)

    def _new_wolf_context(self, ffi: Any, lib: Any, key_der: bytes, pin: keys.Curve | None) -> Any:
        ctx = lib.wolfSSL_CTX_new(lib.wolfTLSv1_2_server_method())
        if ctx == ffi.NULL:
            self.close()
            raise TlsError(TlsFailure.INTERNAL_ERROR, "wolfSSL_CTX_new failed")
        self._ctxs[pin] = ctx  # freed with the others, also when the configuration below fails

        def check(ok: int, what: str) -> None:
            if ok != lib.WOLFSSL_SUCCESS:
                self.close()
                raise TlsError(TlsFailure.INTERNAL_ERROR, f"wolfSSL configuration failed: {what} ({ok})")

        asn1 = lib.WOLFSSL_FILETYPE_ASN1
        check(lib.wolfSSL_CTX_set_cipher_list(ctx, ":".join(CIPHER_SUITES).encode()), "cipher list")
        check(lib.wolfSSL_CTX_use_certificate_buffer(ctx, self.cert_der, len(self.cert_der), asn1), "cert")
        check(lib.wolfSSL_CTX_use_PrivateKey_buffer(ctx, key_der, len(key_der), asn1), "private key")
        check(lib.wolfSSL_CTX_check_private_key(ctx), "key/certificate mismatch")
        check(
            lib.wolfSSL_CTX_trust_peer_buffer(ctx, self.peer_cert_der, len(self.peer_cert_der), asn1),
            "pinned peer certificate",
        )
        if pin is not None:
            # Pin the ECDHE group: wolfSSL then takes this group or none (MATCH_SUITE_ERROR), whatever else
            # the client lists. The EC_KEY only carries the curve; wolfSSL copies it and keeps no reference.
            ec_key = lib.wolfSSL_EC_KEY_new_by_curve_name(getattr(lib, _NIDS[pin]))
            if ec_key == ffi.NULL:
                self.close()
                raise TlsError(TlsFailure.INTERNAL_ERROR, f"wolfSSL has no curve {pin.value}")
            try:
                check(lib.wolfSSL_SSL_CTX_set_tmp_ecdh(ctx, ec_key), f"ECDHE group {pin.value}")
            finally:
                lib.wolfSSL_EC_KEY_free(ec_key)
            # Second layer: the ephemeral key is made by a C callback that refuses every non-TR ECC curve.
            check(lib.bab_restrict_ecdhe_groups(ctx), "ECDHE group restriction")
        check(lib.wolfSSL_CTX_set1_sigalgs_list(ctx, SIGALGS.encode()), "signature algorithms")
        check(lib.wolfSSL_CTX_SetMinEccKey_Sz(ctx, 256), "minimum ECC key size")
        check(lib.bab_use_ticket_keys(ctx, self._ticket_keys.ptr), "session tickets")
        lib.wolfSSL_CTX_set_timeout(ctx, self.session_lifetime_s)  # returns the previous timeout (OpenSSL-style)
        check(lib.wolfSSL_CTX_set_session_id_context(ctx, self._sid_ctx, len(self._sid_ctx)), "session id context")
        lib.wolfSSL_CTX_set_options(ctx, lib.WOLFSSL_OP_NO_COMPRESSION)
        lib.wolfSSL_CTX_set_verify(
            ctx, lib.WOLFSSL_VERIFY_PEER | lib.WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, lib._bab_verify
        )
        lib.wolfSSL_CTX_SetIORecv(ctx, lib._bab_io_recv)
        lib.wolfSSL_CTX_SetIOSend(ctx, lib._bab_io_send)
        return ctx

    def choose_group(self, hello: ClientHelloSummary) -> keys.Curve:
        """The ECDHE group for this ClientHello: the first of :attr:`groups` the client offers, or
        secp256r1 (else our first group) when it sends no supported_groups extension (RFC 8422 5.1.1 then
        leaves the choice to the server). Raises :class:`TlsNegotiationError` (``FORBIDDEN_GROUP``) when it
        offers none of them."""
        if hello.groups is None:
            return keys.Curve.SECP256R1 if keys.Curve.SECP256R1 in self.groups else self.groups[0]
        offered = set(hello.groups)
        for group in self.groups:
            if group.tls_group_id in offered:
                return group
        raise tls_error(
            TlsFailure.FORBIDDEN_GROUP,
            f"client offered ECDHE groups {_describe_groups(hello.groups)}; this meter serves only "
            + ", ".join(g.value for g in self.groups),
            alert="handshake_failure",
        )

    def new_connection(self, *, now: dt.datetime | None = None) -> MeterTlsServer:
        """A fresh server connection object (``now`` is needed for ``ValidityPolicy.GIVEN_TIME``)."""
        return MeterTlsServer(self, now=now)

    def close(self) -> None:
        """Free the wolfSSL contexts (connections keep theirs alive while they exist)."""
        self._finalizer()

    def _ctxs_of(self, group: keys.Curve | None, refs: list[Any]) -> Any:
        """The WOLFSSL_CTX pinned to ``group``, among the ones a connection holds references on."""
        index = self.groups.index(group) if self._restrict_groups and group is not None else 0
        return refs[index]


class TicketKeys:
    """The session-ticket key set of one :class:`MeterTlsContext` (C memory of the binding's ticket callback:
    a random key ID and AES-256-GCM key). Contexts and connections hold it until their wolfSSL objects are
    freed, so the callback never sees freed keys."""

    def __init__(self, ffi: Any, lib: Any, lifetime_s: int) -> None:
        self.ptr = lib.bab_ticket_keys_new(lifetime_s)
        if self.ptr == ffi.NULL:
            raise TlsError(TlsFailure.INTERNAL_ERROR, "cannot create the session-ticket keys")
        weakref.finalize(self, lib.bab_ticket_keys_free, self.ptr)


def _free_contexts(lib: Any, ctxs: dict[keys.Curve | None, Any], ticket_keys: TicketKeys | None = None) -> None:
    # wolfSSL reference-counts a context: one still used by a live connection is freed with that connection.
    # ``ticket_keys`` is only referenced to outlive the contexts that point to it.
    for ctx in ctxs.values():
        lib.wolfSSL_CTX_free(ctx)
    ctxs.clear()


class MeterTlsServer:
    """One TLS 1.2 server connection, sans-I/O (like ``ssl.SSLObject`` with memory BIOs).

    Feed received TLS bytes with :meth:`receive_bytes`; send what :meth:`records_to_send` returns (one TLS
    record per I-frame); once :attr:`handshake_complete`, exchange application data with
    :meth:`send_application_data` / :meth:`read_application_data`; end with :meth:`close` (close_notify).
    The wolfSSL connection itself is created once the whole ClientHello is in, on the context of the group
    chosen for it (:meth:`MeterTlsContext.choose_group`); :attr:`group` tells which.
    """

    def __init__(self, context: MeterTlsContext, *, now: dt.datetime | None = None) -> None:
        ffi, lib = wolfssl_binding.require()
        if not context._finalizer.alive:
            raise TlsStateError("the MeterTlsContext was closed")
        self._ffi = ffi
        self._lib = lib
        self._context = context
        self._now = resolve_now(context.validity, now)
        self._io = wolfssl_binding.WolfIo()
        # weak: the finalizer keeps the I/O object (through its cffi handle) alive until wolfSSL_free, and a
        # strong reference back to this object would keep it from ever being collected
        verify = weakref.WeakMethod(self._verify)
        self._io.verify_hook = lambda *args: (method := verify()) is not None and method(*args)
        self._io.handle = ffi.new_handle(self._io)
        self._ssl: Any = None  # the WOLFSSL object, created by _attach once the ClientHello is in
        self._wctx: Any = None  # the WOLFSSL_CTX it was created on
        # Until then this object holds a reference on each of the context's WOLFSSL_CTXs (wolfSSL counts
        # them), so that closing the MeterTlsContext does not pull them away from a connection in progress.
        self._ctx_refs: list[Any] = []
        for wctx in context._ctxs.values():
            if lib.wolfSSL_CTX_up_ref(wctx) != lib.WOLFSSL_SUCCESS:
                _release(lib, self._ctx_refs)
                raise TlsError(TlsFailure.INTERNAL_ERROR, "wolfSSL_CTX_up_ref failed")
            self._ctx_refs.append(wctx)
        # The finalizer references the handle so it outlives the WOLFSSL object that points to it.
        self._holder: list[Any] = []
        self._finalizer = weakref.finalize(self, _free_ssl, lib, self._holder, self._ctx_refs, self._io.handle,
                                           context._ticket_keys)
        self._out = RecordSplitter()
        self._app_in = bytearray()
        self._hello_bytes = bytearray()  # the client's stream up to the end of its ClientHello
        self._hello: ClientHelloSummary | None = None
        self._hello_checked = False
        self._verify_failure: TlsError | None = None
        self._error: TlsError | None = None
        self._info: TlsSessionInfo | None = None
        self._cipher_active = False  # our ChangeCipherSpec went out: later alerts are encrypted (wolfSSL's)
        self.group: keys.Curve | None = None  # the ECDHE group chosen for this connection
        self.handshake_complete = False
        self.peer_closed = False  # close_notify received
        self.closed = False  # close_notify sent
        self._buf = ffi.new("unsigned char[]", _READ_CHUNK)

    # -- bytes in / out ------------------------------------------------------------------------------------

    def receive_bytes(self, data: bytes) -> None:
        """Process TLS bytes received from the gateway (any chunking). Raises :class:`TlsError`."""
        self._check_alive()
        if not data:
            return
        if not self._hello_checked:
            # Hold the bytes back until the ClientHello is complete, check it against the policy and choose the
            # ECDHE group; only then is the wolfSSL connection created, on that group's context.
            self._hello_bytes += data
            stream = bytes(self._hello_bytes)
            try:
                hello = parse_client_hello(stream)
            except ValueError as exc:
                self._refuse(_first_flight_error(stream, str(exc)), stream)
            if hello is None:
                if len(stream) < _MAX_HELLO:
                    return
                self._refuse(
                    tls_error(TlsFailure.DECODE_ERROR, f"no complete ClientHello in the first {_MAX_HELLO} bytes"),
                    stream,
                )
            self._hello_checked = True
            self._hello = hello
            self._attach(self._precheck_hello(hello, stream))
            data = stream
            self._hello_bytes = bytearray()
        self._io.incoming += data
        if not self.handshake_complete:
            self._do_handshake()
            if not self.handshake_complete:
                return
        self._read_application_data()

    def bytes_to_send(self) -> bytes:
        """All pending output bytes (whole records)."""
        return b"".join(self.records_to_send())

    def records_to_send(self) -> list[bytes]:
        """Pending output, cut at TLS record boundaries: send each element in its own I-frame."""
        if self._io.outgoing:
            self._out.feed(bytes(self._io.outgoing))
            self._io.outgoing.clear()
        records = self._out.records()
        if not self._cipher_active and any(r[0] == CONTENT_CHANGE_CIPHER_SPEC for r in records):
            self._cipher_active = True
        return records

    def send_application_data(self, data: bytes) -> None:
        """Encrypt ``data`` (records of at most :attr:`max_fragment_length` plaintext bytes)."""
        self._check_alive()
        if not self.handshake_complete:
            raise TlsStateError("handshake not complete")
        if self.closed:
            raise TlsStateError("connection closed (close_notify sent)")
        view = memoryview(data)
        while view:
            n = self._lib.wolfSSL_write(self._ssl, self._ffi.from_buffer(view), len(view))
            if n <= 0:
                self._raise_from(n, "write")
            view = view[n:]

    def read_application_data(self) -> bytes:
        """Application data decrypted so far (and clears it)."""
        data = bytes(self._app_in)
        self._app_in.clear()
        return data

    def close(self) -> None:
        """Send close_notify (idempotent; a no-op after a failure)."""
        if self._error is not None or self.closed or self._finalizer.alive is False:
            return
        if self.handshake_complete and self._ssl is not None:
            self._lib.wolfSSL_shutdown(self._ssl)
        self.closed = True

    def free(self) -> None:
        """Release the wolfSSL connection now (otherwise when the object is garbage-collected)."""
        self._finalizer()

    def __enter__(self) -> MeterTlsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def info(self) -> TlsSessionInfo | None:
        """Negotiated parameters once the handshake is complete."""
        return self._info

    @property
    def resumed_by_ticket(self) -> bool:
        """The client offered a session ticket (RFC 5077) and the session was resumed: from the ticket
        (wolfSSL tries an offered ticket first)."""
        if self._ssl is None or self._hello is None or not self._hello.session_ticket:
            return False
        return bool(self._lib.wolfSSL_session_reused(self._ssl))

    @property
    def max_fragment_length(self) -> int:
        """Largest plaintext we put in one record (512 when the client asked for max_fragment_length 2^9;
        16384, the TLS maximum, before the ClientHello was processed)."""
        self._check_alive()
        if self._ssl is None:
            return 16384
        return int(self._lib.wolfSSL_GetMaxOutputSize(self._ssl))

    @property
    def session_lifetime_s(self) -> int | None:
        """Lifetime of the established session in the resumption cache (744 h), None before the handshake."""
        if not self.handshake_complete or not self._finalizer.alive or self._ssl is None:
            return None
        sess = self._lib.wolfSSL_get1_session(self._ssl)
        if sess == self._ffi.NULL:
            return None
        try:
            return int(self._lib.wolfSSL_SESSION_get_timeout(sess))
        finally:
            self._lib.wolfSSL_SESSION_free(sess)

    @property
    def error(self) -> TlsError | None:
        """The error that killed the connection, if any."""
        return self._error

    @property
    def client_hello(self) -> ClientHelloSummary | None:
        """What the client offered in its ClientHello (None before it arrived or if it was malformed)."""
        return self._hello

    # -- internals -----------------------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._finalizer.alive:
            raise TlsStateError("connection object already freed")

    def _precheck_hello(self, hello: ClientHelloSummary, stream: bytes) -> keys.Curve | None:
        """Refuse a ClientHello that cannot lead to a policy-conformant session, with a precise reason and the
        matching alert; otherwise return the ECDHE group to pin (None only with the test hook)."""
        ctx = self._context
        exc: TlsError | None = None
        group: keys.Curve | None = None
        if not hello.offers_tls12():
            exc = tls_error(
                TlsFailure.PROTOCOL_VERSION,
                f"only TLS 1.2 is accepted; client offered {_describe_versions(hello)}",
                alert="protocol_version",
            )
        elif not set(hello.cipher_suites) & set(CIPHER_SUITE_IDS.values()):
            suites = ", ".join(f"0x{x:04X}" for x in hello.cipher_suites[:16])
            exc = tls_error(
                TlsFailure.NO_SHARED_CIPHER,
                f"client offered none of the four TR-03116-3 suites ({suites})",
                alert="handshake_failure",
            )
        elif hello.truncated_hmac and not set(hello.cipher_suites) & {CIPHER_SUITE_IDS[n] for n in GCM_SUITES}:
            # wolfSSL (5.5.4 as packaged by Debian, built with HAVE_TRUNCATED_HMAC) always accepts the
            # extension and then truncates the CBC MACs to 80 bits; it has no switch to ignore it. TR-03116-3
            # forbids truncated HMAC (TaSK profile NO_TRUNC_HMAC). With a GCM suite on offer the connection is
            # served on GCM only (no MAC to truncate, see _attach); with CBC suites only it is refused here.
            exc = tls_error(
                TlsFailure.HANDSHAKE_FAILURE,
                "client offers truncated_hmac (RFC 6066) with CBC suites only: TR-03116-3 forbids truncated MACs "
                "and this wolfSSL would truncate them",
                alert="handshake_failure",
            )
        elif 0 not in hello.compression_methods:
            exc = tls_error(
                TlsFailure.HANDSHAKE_FAILURE,
                "client does not offer the null compression method",
                alert="handshake_failure",
            )
        elif ctx._restrict_groups:
            # The client's list is not also held against our certificate's curve (RFC 8422 5.1 would have
            # it so): the reference gateway offers secp256r1 only and accepts a meter certificate on any TR
            # curve; a client that does check refuses our certificate itself (an OpenSSL client: wrong curve).
            try:
                group = ctx.choose_group(hello)
            except TlsError as err:
                exc = err
        if exc is not None:
            self._refuse(exc, stream)
        return group

    def _refuse(self, exc: TlsError, stream: bytes) -> NoReturn:
        """A refusal decided here, before wolfSSL saw anything: queue the plaintext fatal alert ourselves."""
        alert = exc.alert if exc.reason is not TlsFailure.PEER_ALERT else None
        if alert is None and exc.reason is not TlsFailure.PEER_ALERT:
            alert = ALERT_FOR.get(exc.reason)
            exc = tls_error(exc.reason, exc.detail, alert=alert, code=exc.code)
        if alert is not None:
            self._io.outgoing += alert_record(alert, version=alert_version(self._hello, stream))
        self._hello_checked = True
        self._error = exc
        raise exc

    def _attach(self, group: keys.Curve | None) -> None:
        """Create the wolfSSL connection on the context pinned to ``group``."""
        ffi, lib = self._ffi, self._lib
        wctx = self._context._ctxs_of(group, self._ctx_refs)
        ssl = lib.wolfSSL_new(wctx)
        if ssl == ffi.NULL:
            self._refuse(tls_error(TlsFailure.INTERNAL_ERROR, "wolfSSL_new failed"), b"")
        self._holder.append(ssl)
        _release(lib, self._ctx_refs)  # the WOLFSSL object now holds its own context
        self._ssl = ssl
        self._wctx = wctx
        self.group = group
        # wolfSSL would truncate a CBC suite's MAC for a truncated_hmac client: serve it on the AEAD suites only.
        if (self._hello is not None and self._hello.truncated_hmac
                and lib.wolfSSL_set_cipher_list(ssl, ":".join(GCM_SUITES).encode()) != lib.WOLFSSL_SUCCESS):
            self._refuse(tls_error(TlsFailure.INTERNAL_ERROR, "cannot restrict the suites to GCM"), b"")
        lib.wolfSSL_SetIOReadCtx(ssl, self._io.handle)
        lib.wolfSSL_SetIOWriteCtx(ssl, self._io.handle)

    def _do_handshake(self) -> None:
        lib = self._lib
        ret = lib.wolfSSL_accept(self._ssl)
        if ret != lib.WOLFSSL_SUCCESS:
            err = lib.wolfSSL_get_error(self._ssl, ret)
            if err == lib.WOLFSSL_ERROR_WANT_READ:
                return
            self._raise_from(ret, "handshake")
        try:
            self._info = self._check_negotiated()
        except TlsError as exc:
            self._abort_after_handshake(exc)
        self.handshake_complete = True

    def _check_negotiated(self) -> TlsSessionInfo:
        """Verify the negotiated parameters against the policy (defence in depth)."""
        ffi, lib, ssl = self._ffi, self._lib, self._ssl
        version = ffi.string(lib.wolfSSL_get_version(ssl)).decode()
        if version != TLS_VERSION:
            raise tls_error(TlsFailure.PROTOCOL_VERSION, f"negotiated {version}", alert="protocol_version")
        suite = ffi.string(lib.wolfSSL_get_cipher_name(ssl)).decode()
        if suite not in CIPHER_SUITE_IDS:
            raise tls_error(TlsFailure.NO_SHARED_CIPHER, f"negotiated {suite}", alert="handshake_failure")
        if self._hello is not None and self._hello.truncated_hmac and suite not in GCM_SUITES:
            raise tls_error(TlsFailure.HANDSHAKE_FAILURE, f"truncated_hmac offered and {suite} negotiated",
                            alert="handshake_failure")
        reused = bool(lib.wolfSSL_session_reused(ssl))
        group: keys.Curve | None = None
        if not reused:
            p = lib.wolfSSL_get_curve_name(ssl)
            name = ffi.string(p).decode() if p != ffi.NULL else "none"
            group = _WOLF_CURVE_NAMES.get(name.upper())
            if group is None:
                raise tls_error(
                    TlsFailure.FORBIDDEN_GROUP,
                    f"negotiated ECDHE group {name} is not a TR-03116-3 group",
                    alert="handshake_failure",
                )
            if self.group is not None and group is not self.group:
                raise tls_error(
                    TlsFailure.FORBIDDEN_GROUP,
                    f"negotiated ECDHE group {group.value}, not the pinned {self.group.value}",
                    alert="handshake_failure",
                )
        peer_der = self._peer_certificate_der()
        if peer_der is None and reused and self.resumed_by_ticket:
            # A ticket does not carry the peer certificate. It is encrypted under the key set of this context
            # only (a new pairing or crypto-reset makes a new context), which issues tickets only in full
            # handshakes whose client certificate passed the pin in the verify callback: it stands for the
            # pinned gateway.
            peer_der = self._context.peer_cert_der
        if peer_der is None:
            raise tls_error(TlsFailure.NO_CERTIFICATE, "no client certificate", alert="certificate_required")
        if peer_der != self._context.peer_cert_der:
            raise tls_error(
                TlsFailure.BAD_CERTIFICATE, "client certificate is not the pinned one", alert="bad_certificate"
            )
        check_validity(self._context.validity, self._context.peer_not_before, self._context.peer_not_after, self._now)
        return TlsSessionInfo(
            version=version,
            cipher_suite=suite,
            group=group,
            session_reused=reused,
            max_fragment_length=int(lib.wolfSSL_GetMaxOutputSize(ssl)),
            peer_certificate_der=peer_der,
        )

    def _peer_certificate_der(self) -> bytes | None:
        ffi, lib = self._ffi, self._lib
        x509 = lib.wolfSSL_get_peer_certificate(self._ssl)
        if x509 == ffi.NULL:
            return None
        try:
            size = ffi.new("int *")
            p = lib.wolfSSL_X509_get_der(x509, size)
            return bytes(ffi.buffer(p, size[0])) if p != ffi.NULL else None
        finally:
            lib.wolfSSL_X509_free(x509)

    def _abort_after_handshake(self, exc: TlsError) -> None:
        """The handshake completed in wolfSSL but breaks the policy: do not let it complete for the peer."""
        lib = self._lib
        if lib.wolfSSL_session_reused(self._ssl):
            # our Finished is already out: end with an (encrypted) close_notify, and drop the session from the
            # (process-wide) cache so that the client's next attempt is a full handshake
            lib.wolfSSL_shutdown(self._ssl)
            sess = lib.wolfSSL_get1_session(self._ssl)
            if sess != self._ffi.NULL:
                lib.wolfSSL_SSL_CTX_remove_session(self._wctx, sess)
                lib.wolfSSL_SESSION_free(sess)
            exc = tls_error(exc.reason, f"{exc.detail} (resumed session: ended with close_notify)", code=exc.code)
        else:
            # withhold our ChangeCipherSpec + Finished; send a plaintext fatal alert instead
            self._io.outgoing.clear()
            exc = self._answer_with_alert(exc)
        self._error = exc
        raise exc

    def _read_application_data(self) -> None:
        ffi, lib, ssl, buf = self._ffi, self._lib, self._ssl, self._buf
        while True:
            n = lib.wolfSSL_read(ssl, buf, _READ_CHUNK)
            if n > 0:
                self._app_in += ffi.buffer(buf, n)
                continue
            err = lib.wolfSSL_get_error(ssl, n)
            if err == lib.WOLFSSL_ERROR_WANT_READ:
                return
            if err == lib.WOLFSSL_ERROR_ZERO_RETURN:
                self.peer_closed = True
                if not self.closed:
                    lib.wolfSSL_shutdown(ssl)  # answer with our close_notify
                    self.closed = True
                return
            self._raise_from(n, "read")

    def _verify(self, preverify: int, error: int, depth: int, der: bytes) -> bool:
        """wolfSSL's verify callback: pin the client certificate, apply the validity policy."""
        lib = self._lib
        if depth > 0:
            return True  # extra chain certificates are irrelevant: the leaf must be the pinned one
        ctx = self._context
        if not der:
            self._verify_failure = tls_error(
                TlsFailure.NO_CERTIFICATE,
                "the client sent no certificate (mutual authentication is mandatory)",
                alert="handshake_failure",
            )
            return False
        if der != ctx.peer_cert_der:
            fp = keys.fingerprint_sha256(der) if der else "none"
            self._verify_failure = tls_error(
                TlsFailure.BAD_CERTIFICATE,
                f"client certificate {fp} is not the pinned gateway certificate {ctx.peer_fingerprint}",
                alert="bad_certificate",
            )
            return False
        date_errors = {lib.ASN_BEFORE_DATE_E, lib.ASN_AFTER_DATE_E}
        if ctx.validity is ValidityPolicy.SYSTEM_CLOCK and error in date_errors:
            reason = (
                TlsFailure.CERTIFICATE_EXPIRED
                if error == lib.ASN_AFTER_DATE_E
                else TlsFailure.CERTIFICATE_NOT_YET_VALID
            )
            self._verify_failure = tls_error(
                reason, "checked against the system clock", alert="certificate_expired", code=error
            )
            return False
        try:
            check_validity(ctx.validity, ctx.peer_not_before, ctx.peer_not_after, self._now)
        except TlsError as exc:
            self._verify_failure = exc
            return False
        if preverify or error in date_errors or error in (0, lib.ASN_NO_SIGNER_E):
            return True
        self._verify_failure = tls_error(
            TlsFailure.BAD_CERTIFICATE,
            f"pinned certificate rejected by wolfSSL: {wolfssl_binding.error_string(error)}",
            alert="bad_certificate",
            code=error,
        )
        return False

    def _raise_from(self, ret: int, what: str) -> NoReturn:
        err = self._lib.wolfSSL_get_error(self._ssl, ret)
        exc = self._answer_with_alert(self._classify(err, what))
        self._error = exc
        raise exc

    def _answer_with_alert(self, exc: TlsError) -> TlsError:
        """Make the output end with the fatal alert that names ``exc`` (the error is returned with the alert
        actually sent). wolfSSL 5.5.4 answers some failures with a different alert (bad_certificate for a
        missing certificate) and some with none; while our records are still plaintext, its alert is replaced
        or ours appended. Once our ChangeCipherSpec is out, alerts are encrypted: wolfSSL's own stands."""
        if exc.reason is TlsFailure.PEER_ALERT:
            return exc  # the client's fatal alert ended it: no answer (RFC 5246 7.2.2)
        wanted = exc.alert or ALERT_FOR.get(exc.reason)
        sent = self._queue_fatal_alert(wanted) if wanted else None
        if sent is None and self._ssl is not None:
            hist = self._ffi.new("WOLFSSL_ALERT_HISTORY *")
            self._lib.wolfSSL_get_alert_history(self._ssl, hist)
            sent = ALERT_DESCRIPTIONS.get(hist.last_tx.code) if hist.last_tx.level == 2 else None
        if sent == exc.alert:
            return exc
        return tls_error(exc.reason, exc.detail, alert=sent, code=exc.code)

    def _queue_fatal_alert(self, alert: str) -> str | None:
        """Put the plaintext fatal ``alert`` at the end of the pending output (replacing a plaintext alert of
        wolfSSL's); None, doing nothing, once our records are encrypted."""
        records, rest = split_records(bytes(self._io.outgoing))
        if self._cipher_active or any(r[0] == CONTENT_CHANGE_CIPHER_SPEC for r in records):
            return None
        if records and is_plaintext_alert(records[-1]):
            records[-1] = alert_record(alert, version=records[-1][1:3])
        else:
            version = records[-1][1:3] if records else alert_version(self._hello)
            records.append(alert_record(alert, version=version))
        self._io.outgoing[:] = b"".join(records) + rest
        return alert

    def _classify(self, err: int, what: str) -> TlsError:
        lib = self._lib
        if self._verify_failure is not None:
            return self._verify_failure
        text = wolfssl_binding.error_string(err)
        hist = self._ffi.new("WOLFSSL_ALERT_HISTORY *")
        lib.wolfSSL_get_alert_history(self._ssl, hist)
        rx_alert = ALERT_DESCRIPTIONS.get(hist.last_rx.code) if hist.last_rx.level == 2 else None
        tx_alert = ALERT_DESCRIPTIONS.get(hist.last_tx.code) if hist.last_tx.level == 2 else None
        hello = self.client_hello if not self.handshake_complete else None
        detail = f"{what}: {text}"

        if err == lib.FATAL_ERROR and rx_alert:
            return tls_error(TlsFailure.PEER_ALERT, f"{what}: the client aborted", alert=rx_alert, code=err)
        if err == lib.NO_PEER_CERT:
            return tls_error(
                TlsFailure.NO_CERTIFICATE,
                "the client sent no certificate (mutual authentication is mandatory)",
                code=err,
            )
        if err in (lib.VERSION_ERROR,) or (hello is not None and not hello.offers_tls12()):
            offered = _describe_versions(hello)
            return tls_error(
                TlsFailure.PROTOCOL_VERSION,
                f"only TLS 1.2 is accepted; client offered {offered}",
                alert="protocol_version",
                code=err,
            )
        if err == lib.MATCH_SUITE_ERROR:
            if hello is not None and not set(hello.cipher_suites) & set(CIPHER_SUITE_IDS.values()):
                suites = ", ".join(f"0x{s:04X}" for s in hello.cipher_suites[:12])
                return tls_error(
                    TlsFailure.NO_SHARED_CIPHER,
                    f"client offered none of the TR-03116-3 suites ({suites})",
                        code=err,
                )
            if hello is not None and hello.groups is not None and not set(hello.groups) & _ALLOWED_GROUP_IDS:
                groups = ", ".join(_group_name(g) for g in hello.groups)
                return tls_error(
                    TlsFailure.FORBIDDEN_GROUP,
                    f"client offered no TR-03116-3 ECDHE group ({groups})",
                        code=err,
                )
            return tls_error(TlsFailure.NO_SHARED_CIPHER, detail, code=err)
        if err in (lib.VERIFY_MAC_ERROR, lib.DECRYPT_ERROR):
            return tls_error(TlsFailure.BAD_RECORD_MAC, detail, alert="bad_record_mac", code=err)
        if err == lib.SECURE_RENEGOTIATION_E:
            return tls_error(TlsFailure.RENEGOTIATION_REFUSED, detail, code=err)
        if err in (lib.LENGTH_ERROR, lib.HANDSHAKE_SIZE_ERROR) or tx_alert == "record_overflow":
            return tls_error(TlsFailure.RECORD_OVERFLOW, detail, code=err)
        if err in (
            lib.SANITY_MSG_E,
            lib.DUPLICATE_MSG_E,
            lib.OUT_OF_ORDER_E,
            lib.NO_CHANGE_CIPHER_E,
            lib.UNKNOWN_HANDSHAKE_TYPE,
        ):
            if self.handshake_complete:
                return tls_error(
                    TlsFailure.RENEGOTIATION_REFUSED,
                    f"{detail} (handshake message after the handshake: renegotiation is not allowed)",
                        code=err,
                )
            return tls_error(TlsFailure.UNEXPECTED_MESSAGE, detail, code=err)
        if err in (
            lib.BUFFER_ERROR,
            lib.PARSE_ERROR,
            lib.UNKNOWN_RECORD_TYPE,
            lib.INCOMPLETE_DATA,
            lib.BUFFER_E,
            lib.ASN_PARSE_E,
        ):
            return tls_error(TlsFailure.DECODE_ERROR, detail, code=err)
        if err == lib.VERIFY_FINISHED_ERROR:
            return tls_error(
                TlsFailure.HANDSHAKE_FAILURE, f"{what}: the client's Finished does not verify",
                alert="decrypt_error", code=err,
            )
        if err in (lib.VERIFY_SIGN_ERROR, lib.SIG_VERIFY_E):
            return tls_error(
                TlsFailure.BAD_CERTIFICATE,
                f"{what}: the client's CertificateVerify signature does not match its certificate",
                alert="decrypt_error",
                code=err,
            )
        if err in (lib.VERIFY_CERT_ERROR, lib.ASN_NO_SIGNER_E, lib.ASN_SIG_CONFIRM_E):
            return tls_error(TlsFailure.BAD_CERTIFICATE, detail, code=err)
        if err in (lib.ECC_CURVE_ERROR, lib.ECC_PEERKEY_ERROR):
            return tls_error(TlsFailure.FORBIDDEN_GROUP, detail, code=err)
        if err == lib.FATAL_ERROR:
            return tls_error(TlsFailure.PEER_ALERT, f"{what}: the client aborted", alert=rx_alert, code=err)
        return tls_error(
            TlsFailure.HANDSHAKE_FAILURE if not self.handshake_complete else TlsFailure.INTERNAL_ERROR,
            detail,
            code=err,
        )


def _free_ssl(lib: Any, holder: list[Any], ctx_refs: list[Any], handle: Any, ticket_keys: Any = None) -> None:
    # ``handle`` and ``ticket_keys`` are only referenced to outlive the WOLFSSL object that points to them
    for ssl in holder:
        lib.wolfSSL_free(ssl)
    holder.clear()
    _release(lib, ctx_refs)


def _release(lib: Any, ctx_refs: list[Any]) -> None:
    for ctx in ctx_refs:
        lib.wolfSSL_CTX_free(ctx)  # drops one reference
    ctx_refs.clear()


_GROUP_NAMES = {
    23: "secp256r1",
    24: "secp384r1",
    25: "secp521r1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    29: "x25519",
    30: "x448",
}
_VERSION_NAMES = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


def _group_name(group: int) -> str:
    return _GROUP_NAMES.get(group, f"0x{group:04X}")


def _describe_groups(groups: Sequence[int]) -> str:
    return ", ".join(_group_name(g) for g in groups) or "none"


def _first_flight_error(stream: bytes, problem: str) -> TlsError:
    """The error for a first flight that is not a well-formed ClientHello (``problem``: the parser's words)."""
    if stream[:1] == bytes([CONTENT_ALERT]) and len(stream) >= 7 and stream[5] == 2:
        name = ALERT_DESCRIPTIONS.get(stream[6], f"alert {stream[6]}")
        return tls_error(TlsFailure.PEER_ALERT, "the client aborted before its ClientHello", alert=name)
    if len(stream) >= 3 and stream[0] & 0x80 and stream[2] == 1:
        return tls_error(
            TlsFailure.PROTOCOL_VERSION, "an SSL 2.0-format ClientHello (only TLS 1.2 is accepted)",
            alert="protocol_version",
        )
    if len(stream) >= 2 and stream[1] == 3 and stream[0] in (CONTENT_CHANGE_CIPHER_SPEC, CONTENT_APPLICATION_DATA):
        return tls_error(
            TlsFailure.UNEXPECTED_MESSAGE, f"record type {stream[0]} before the ClientHello",
            alert="unexpected_message",
        )
    if len(stream) >= 6 and stream[0] == CONTENT_HANDSHAKE and stream[5] != 1:
        return tls_error(
            TlsFailure.UNEXPECTED_MESSAGE, f"handshake message {stream[5]} instead of a ClientHello",
            alert="unexpected_message",
        )
    return tls_error(TlsFailure.DECODE_ERROR, f"not a TLS ClientHello ({problem})", alert="decode_error")


def _describe_versions(hello: ClientHelloSummary | None) -> str:
    if hello is None:
        return "an unknown version"
    versions = hello.supported_versions or [hello.legacy_version]
    return "/".join(_VERSION_NAMES.get(v, f"0x{v:04X}") for v in versions if v & 0x0F0F != 0x0A0A)


def certificate_pem(der: bytes) -> bytes:
    """PEM for a DER certificate (helper for callers that log or store the peer certificate)."""
    return keys.load_certificate(der).public_bytes(serialization.Encoding.PEM)
