"""DER helpers for the certificates and private keys carried by SYM (LMN-STACK.md section 5, cmds 0x03/0x04).

SYM payloads concatenate DER elements without extra length fields (DER is self-delimiting), e.g. the 0x03
payload ``certificate DER || private key DER``. Everything received is parsed with ``cryptography`` before it
is accepted, so garbage can never reach the persisted state. Error texts carry no key bytes.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import SymFormatError


def der_element_end(data: bytes, pos: int = 0) -> int:
    """Index just after the DER SEQUENCE starting at ``pos`` (definite lengths only, at most 4 length bytes)."""
    if len(data) < pos + 2 or data[pos] != 0x30:
        raise SymFormatError("payload is not a DER SEQUENCE", "bad_der")
    first = data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(data) < pos + 2 + n:
            raise SymFormatError("bad DER length field", "bad_der")
        start, length = pos + 2 + n, int.from_bytes(data[pos + 2 : pos + 2 + n], "big")
    end = start + length
    if end > len(data):
        raise SymFormatError("DER element is truncated", "bad_der")
    return end


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse an X.509 certificate; :class:`SymFormatError` (``bad_certificate``) if it does not parse."""
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError):
        raise SymFormatError(f"not a DER X.509 certificate ({len(der)} bytes)", "bad_certificate") from None


def check_key_pair(cert_der: bytes, key_der: bytes) -> None:
    """The private key must parse (PKCS#8 or SEC1 DER, unencrypted) and belong to the certificate."""
    cert = load_certificate(cert_der)
    try:
        key = serialization.load_der_private_key(key_der, password=None)
    except Exception as exc:  # cryptography raises several types; never echo the bytes
        raise SymFormatError(
            f"injected private key does not parse ({type(exc).__name__})", "bad_private_key"
        ) from None
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    try:
        cert_pub = cert.public_key().public_bytes(enc, fmt)
    except Exception as exc:
        raise SymFormatError(
            f"certificate public key not usable ({type(exc).__name__})", "bad_certificate"
        ) from None
    if key.public_key().public_bytes(enc, fmt) != cert_pub:
        raise SymFormatError("injected private key does not match the injected certificate", "key_mismatch")
