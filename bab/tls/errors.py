"""Named TLS errors for the LMN TLS endpoints (LMN-STACK.md section 4).

Every failure of a TLS connection object raises a :class:`TlsError` subclass carrying a :class:`TlsFailure`
reason (machine readable, stable), a human readable ``detail`` and, where known, the TLS alert involved and
the TLS library's own error code. The failed object still holds the alert record for the peer in its
output (``records_to_send()``); after that it is dead: create a new object for the next connection.
"""

from __future__ import annotations

from enum import StrEnum


class TlsUnavailable(RuntimeError):
    """The wolfSSL binding (or the library under it) is not there; the message says how to install it."""


class TlsFailure(StrEnum):
    """Why a TLS connection failed."""

    BAD_CERTIFICATE = "bad certificate"  # peer certificate is not the pinned one, or unusable
    NO_CERTIFICATE = "no certificate"  # peer sent no certificate (mutual authentication is mandatory)
    CERTIFICATE_EXPIRED = "certificate expired"
    CERTIFICATE_NOT_YET_VALID = "certificate not yet valid"
    PROTOCOL_VERSION = "protocol version"  # anything but TLS 1.2
    NO_SHARED_CIPHER = "no shared cipher"  # none of the 4 TR-03116-3 suites offered
    FORBIDDEN_GROUP = "forbidden group"  # no TR-03116-3 ECDHE group offered, or another one negotiated
    BAD_RECORD_MAC = "bad record MAC"  # a record failed authentication/decryption
    DECODE_ERROR = "decode error"  # malformed or truncated record or handshake message
    RECORD_OVERFLOW = "record overflow"
    UNEXPECTED_MESSAGE = "unexpected message"
    RENEGOTIATION_REFUSED = "renegotiation refused"
    POLICY_VIOLATION = "policy violation"  # negotiated parameters outside the policy (checked after handshake)
    PEER_ALERT = "peer sent fatal alert"
    HANDSHAKE_FAILURE = "handshake failure"
    INTERNAL_ERROR = "internal error"


class TlsError(Exception):
    """A TLS connection failed; ``reason`` says why."""

    def __init__(
        self, reason: TlsFailure, detail: str = "", *, alert: str | None = None, code: int | None = None
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.alert = alert
        self.code = code
        text = reason.value
        if detail:
            text += f": {detail}"
        if alert:
            text += f" [alert: {alert}]"
        if code is not None:
            text += f" (code {code})"
        super().__init__(text)


class TlsCertificateError(TlsError):
    """The peer's certificate was missing, not the pinned one, or outside its validity period."""


class TlsNegotiationError(TlsError):
    """No acceptable protocol version, cipher suite or ECDHE group could be agreed."""


class TlsRecordError(TlsError):
    """A record or message on the wire was corrupt, truncated, oversized or out of place."""


class TlsPeerAlert(TlsError):
    """The peer aborted the connection with a fatal alert."""


class TlsHandshakeError(TlsError):
    """Any other handshake failure."""


class TlsStateError(RuntimeError):
    """The connection object was used in a state that does not allow the call (caller's bug)."""


_CLASS_OF: dict[TlsFailure, type[TlsError]] = {
    TlsFailure.BAD_CERTIFICATE: TlsCertificateError,
    TlsFailure.NO_CERTIFICATE: TlsCertificateError,
    TlsFailure.CERTIFICATE_EXPIRED: TlsCertificateError,
    TlsFailure.CERTIFICATE_NOT_YET_VALID: TlsCertificateError,
    TlsFailure.PROTOCOL_VERSION: TlsNegotiationError,
    TlsFailure.NO_SHARED_CIPHER: TlsNegotiationError,
    TlsFailure.FORBIDDEN_GROUP: TlsNegotiationError,
    TlsFailure.POLICY_VIOLATION: TlsNegotiationError,
    TlsFailure.BAD_RECORD_MAC: TlsRecordError,
    TlsFailure.DECODE_ERROR: TlsRecordError,
    TlsFailure.RECORD_OVERFLOW: TlsRecordError,
    TlsFailure.UNEXPECTED_MESSAGE: TlsRecordError,
    TlsFailure.RENEGOTIATION_REFUSED: TlsRecordError,
    TlsFailure.PEER_ALERT: TlsPeerAlert,
}


#: The fatal alert (RFC 5246 section 7.2) the meter answers each failure with while the handshake is still in
#: plaintext. None: no alert (the peer's own fatal alert ended the connection; RFC 5246 7.2.2 closes without
#: an answer).
ALERT_FOR: dict[TlsFailure, str | None] = {
    TlsFailure.BAD_CERTIFICATE: "bad_certificate",
    TlsFailure.NO_CERTIFICATE: "handshake_failure",  # RFC 5246 7.4.6: certificate required but none sent
    TlsFailure.CERTIFICATE_EXPIRED: "certificate_expired",
    TlsFailure.CERTIFICATE_NOT_YET_VALID: "certificate_expired",  # "has expired or is not currently valid"
    TlsFailure.PROTOCOL_VERSION: "protocol_version",
    TlsFailure.NO_SHARED_CIPHER: "handshake_failure",
    TlsFailure.FORBIDDEN_GROUP: "handshake_failure",
    TlsFailure.BAD_RECORD_MAC: "bad_record_mac",
    TlsFailure.DECODE_ERROR: "decode_error",
    TlsFailure.RECORD_OVERFLOW: "record_overflow",
    TlsFailure.UNEXPECTED_MESSAGE: "unexpected_message",
    TlsFailure.RENEGOTIATION_REFUSED: "no_renegotiation",
    TlsFailure.POLICY_VIOLATION: "handshake_failure",
    TlsFailure.PEER_ALERT: None,
    TlsFailure.HANDSHAKE_FAILURE: "handshake_failure",
    TlsFailure.INTERNAL_ERROR: "internal_error",
}


def tls_error(reason: TlsFailure, detail: str = "", *, alert: str | None = None, code: int | None = None) -> TlsError:
    """The right :class:`TlsError` subclass for ``reason``."""
    return _CLASS_OF.get(reason, TlsHandshakeError)(reason, detail, alert=alert, code=code)
