"""The LMN TLS policy (BSI TR-03116-3, LMN profile; LMN-STACK.md section 4) shared by both endpoints.

TLS 1.2 only; exactly four ECDHE-ECDSA cipher suites; ECDHE groups and certificate curves only
brainpoolP256r1/384r1/512r1, P-256 and P-384; mutual authentication with a pinned peer certificate;
no compression; no renegotiation; max_fragment_length 2^9 (512) requested by the gateway and honoured by
the meter; session lifetime 744 h.

Certificate validity dates (:class:`ValidityPolicy`). A meter may have no trustworthy clock, and LMN
certificates are self-signed and pinned by exact DER match (the pin, not the dates, is what authenticates
the peer), so the policy is a choice made by the caller:

* ``IGNORE`` (default): the validity dates of the pinned peer certificate are not checked at all.
* ``SYSTEM_CLOCK``: the dates are checked against the system clock, read once when the connection object is
  created (only for a device whose clock is set and trusted, e.g. NTP-synchronised). wolfSSL 5.5.4 does not
  check the dates of a trusted-peer (pinned) certificate itself, so BAB does it.
* ``GIVEN_TIME``: the caller passes ``now`` (an aware datetime from a source it trusts, e.g. the time the
  gateway last set over SML) when creating the connection object; the pinned certificate must be valid at
  that instant. Any system-clock date check of the TLS library is overridden. Sans-I/O: no clock is read.

Whatever the policy, our own certificate's dates are not checked by us (the peer decides).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from bab.tls.errors import TlsFailure, tls_error
from bab.tls.keys import Curve

TLS_VERSION = "TLSv1.2"

#: The four TR-03116-3 suites (OpenSSL/wolfSSL names), in the server's order of preference.
CIPHER_SUITES: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",  # 0xC02B
    "ECDHE-ECDSA-AES256-GCM-SHA384",  # 0xC02C
    "ECDHE-ECDSA-AES128-SHA256",  # 0xC023
    "ECDHE-ECDSA-AES256-SHA384",  # 0xC024
)
#: The AEAD ones among them (no MAC to truncate: the suites a truncated_hmac client is served on).
GCM_SUITES: tuple[str, ...] = CIPHER_SUITES[:2]
CIPHER_SUITE_IDS: dict[str, int] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-AES128-SHA256": 0xC023,
    "ECDHE-ECDSA-AES256-SHA384": 0xC024,
}

#: The five TR-03116-3 curves, in order of preference.
GROUPS: tuple[Curve, ...] = (
    Curve.BRAINPOOL_P256R1,
    Curve.BRAINPOOL_P384R1,
    Curve.BRAINPOOL_P512R1,
    Curve.SECP256R1,
    Curve.SECP384R1,
)

#: Signature algorithms (TLS 1.2 SignatureAndHashAlgorithm): ECDSA with SHA-256/384/512.
SIGALGS = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512"

MAX_FRAGMENT_LENGTH = 512  # RFC 6066 value 1 (2^9)
SESSION_LIFETIME_S = 744 * 3600  # TlsSessionLifetime 744 h


class ValidityPolicy(StrEnum):
    """How the peer certificate's validity dates are checked (see the module docstring)."""

    IGNORE = "ignore"
    SYSTEM_CLOCK = "system-clock"
    GIVEN_TIME = "given-time"


def check_validity(
    policy: ValidityPolicy, not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime | None
) -> None:
    """Raise a :class:`~bab.tls.errors.TlsCertificateError` if the certificate is outside its validity period
    at ``now`` under ``GIVEN_TIME`` or ``SYSTEM_CLOCK`` (for the latter the caller passes the system time it
    read when it created the connection). ``IGNORE`` never raises."""
    if policy is ValidityPolicy.IGNORE:
        return
    if now is None:
        raise ValueError(f"validity policy {policy.value!r} needs the current time (now=...)")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime (UTC)")
    if now < not_before:
        raise tls_error(
            TlsFailure.CERTIFICATE_NOT_YET_VALID,
            f"peer certificate valid from {not_before.isoformat()}, now is {now.isoformat()}",
            alert="certificate_expired",
        )
    if now > not_after:
        raise tls_error(
            TlsFailure.CERTIFICATE_EXPIRED,
            f"peer certificate expired {not_after.isoformat()}, now is {now.isoformat()}",
            alert="certificate_expired",
        )


def resolve_now(policy: ValidityPolicy, now: dt.datetime | None) -> dt.datetime | None:
    """The instant certificates are checked against: ``now`` as given; for ``SYSTEM_CLOCK`` without ``now``
    the system clock, read once here, when a connection object is created (the only clock read of the TLS
    layer, and only under that policy). ``GIVEN_TIME`` without ``now`` is a ValueError."""
    if policy is ValidityPolicy.GIVEN_TIME and now is None:
        raise ValueError("validity policy 'given-time' needs now=<aware datetime>")
    if policy is ValidityPolicy.SYSTEM_CLOCK and now is None:
        return dt.datetime.now(dt.UTC)
    return now
