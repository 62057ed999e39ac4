"""TLS key material for the LMN: ECDSA keys and self-signed certificates on the five TR-03116-3 curves.

LMN certificates are not SM-PKI certificates: each side has a self-signed certificate that the peer pins
(exact DER match) after the pairing exchange (LMN-STACK.md section 4, "Certificates"). BAB supports both an
injected key + certificate and generating its own key pair with a self-signed certificate whose subject CN
is the meter ID. The helpers here generate, load, save and describe that material (for ``bab keys show``).

Private keys are written through :func:`bab.persist.atomic_write` with mode 0600, and
:func:`load_private_key_file` refuses a key file that others can read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bab.persist import atomic_write


class Curve(StrEnum):
    """The ECC curves allowed on the LMN (TR-03116-3) for certificates and ECDHE; values are the
    names OpenSSL uses (``SSL_CTX_set1_groups_list``) and :class:`cryptography` reports."""

    BRAINPOOL_P256R1 = "brainpoolP256r1"
    BRAINPOOL_P384R1 = "brainpoolP384r1"
    BRAINPOOL_P512R1 = "brainpoolP512r1"
    SECP256R1 = "secp256r1"
    SECP384R1 = "secp384r1"

    @classmethod
    def parse(cls, name: str) -> Curve:
        """A curve from a name such as ``brainpoolP256r1``, ``P-256``, ``prime256v1`` (case-insensitive)."""
        key = name.strip().lower().replace("_", "").replace("-", "")
        for curve in cls:
            if key in {curve.value.lower(), *_ALIASES.get(curve, ())}:
                return curve
        allowed = ", ".join(c.value for c in cls)
        raise KeyMaterialError(f"curve {name!r} is not allowed on the LMN (allowed: {allowed})")

    @property
    def bits(self) -> int:
        """Field size in bits: 256, 384 or 512."""
        return int(self.value.removeprefix("brainpoolP").removeprefix("secp")[:3])

    @property
    def tls_group_id(self) -> int:
        """The IANA TLS supported-groups code point (RFC 8422 / RFC 7027)."""
        return _GROUP_IDS[self]

    def ec_curve(self) -> ec.EllipticCurve:
        return _EC_CURVES[self]()

    def signature_hash(self) -> hashes.HashAlgorithm:
        """The hash matched to the curve size, used to self-sign certificates."""
        return {256: hashes.SHA256, 384: hashes.SHA384, 512: hashes.SHA512}[self.bits]()


_ALIASES: dict[Curve, tuple[str, ...]] = {
    Curve.SECP256R1: ("p256", "prime256v1", "nistp256"),
    Curve.SECP384R1: ("p384", "nistp384"),
    Curve.BRAINPOOL_P256R1: ("bp256", "bp256r1"),
    Curve.BRAINPOOL_P384R1: ("bp384", "bp384r1"),
    Curve.BRAINPOOL_P512R1: ("bp512", "bp512r1"),
}
_GROUP_IDS = {
    Curve.SECP256R1: 23,
    Curve.SECP384R1: 24,
    Curve.BRAINPOOL_P256R1: 26,
    Curve.BRAINPOOL_P384R1: 27,
    Curve.BRAINPOOL_P512R1: 28,
}
_EC_CURVES: dict[Curve, type[ec.EllipticCurve]] = {
    Curve.SECP256R1: ec.SECP256R1,
    Curve.SECP384R1: ec.SECP384R1,
    Curve.BRAINPOOL_P256R1: ec.BrainpoolP256R1,
    Curve.BRAINPOOL_P384R1: ec.BrainpoolP384R1,
    Curve.BRAINPOOL_P512R1: ec.BrainpoolP512R1,
}

DEFAULT_VALIDITY = dt.timedelta(days=20 * 365)


class KeyMaterialError(ValueError):
    """Key or certificate material that BAB cannot use (bad PEM, wrong curve, unsafe file mode...)."""


@dataclass(frozen=True)
class CertificateInfo:
    """What ``bab keys show`` prints about a certificate."""

    subject_cn: str | None
    issuer_cn: str | None
    self_signed: bool
    curve: Curve | None
    curve_name: str
    fingerprint_sha256: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime

    def valid_at(self, now: dt.datetime) -> bool:
        return self.not_before <= now <= self.not_after


def generate_private_key(curve: Curve | str = Curve.BRAINPOOL_P256R1) -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA private key on one of the five LMN curves."""
    curve = Curve.parse(curve) if isinstance(curve, str) else curve
    return ec.generate_private_key(curve.ec_curve())


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    not_before: dt.datetime | None = None,
    validity: dt.timedelta = DEFAULT_VALIDITY,
    serial: int | None = None,
) -> x509.Certificate:
    """A self-signed certificate for ``key`` with subject = issuer = CN ``common_name`` (the meter ID).

    ``not_before`` defaults to now minus one hour (the clock of a meter may be a little behind); the
    certificate is an end-entity certificate (CA:FALSE), signed with the hash matched to the curve.
    """
    curve = curve_of(key.public_key())
    if curve is None:
        raise KeyMaterialError(f"key curve {key.curve.name} is not allowed on the LMN")
    if not_before is None:
        not_before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, curve.signature_hash())


def generate_identity(
    common_name: str, curve: Curve | str = Curve.BRAINPOOL_P256R1, **cert_args: object
) -> tuple[bytes, bytes]:
    """Generate a key and a self-signed certificate; returns ``(key_pem, cert_pem)``."""
    key = generate_private_key(curve)
    cert = self_signed_certificate(key, common_name, **cert_args)  # type: ignore[arg-type]
    return private_key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the file mode protects it)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def curve_of(public_key: object) -> Curve | None:
    """The LMN curve of an EC public key, or None for any other key or curve."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return None
    try:
        return Curve.parse(public_key.curve.name)
    except KeyMaterialError:
        return None


def load_private_key(pem_or_der: bytes) -> ec.EllipticCurvePrivateKey:
    """Parse an EC private key (PEM or DER, PKCS#8 or SEC1) on one of the LMN curves."""
    try:
        if b"-----BEGIN" in pem_or_der:
            key = serialization.load_pem_private_key(pem_or_der, password=None)
        else:
            key = serialization.load_der_private_key(pem_or_der, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(f"not a usable unencrypted private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyMaterialError(f"private key is {type(key).__name__}, the LMN needs an ECDSA key")
    if curve_of(key.public_key()) is None:
        raise KeyMaterialError(f"private key curve {key.curve.name} is not allowed on the LMN")
    return key


def load_certificate(pem_or_der: bytes) -> x509.Certificate:
    """Parse one X.509 certificate (PEM or DER) whose key is ECDSA on an LMN curve."""
    try:
        if b"-----BEGIN" in pem_or_der:
            cert = x509.load_pem_x509_certificate(pem_or_der)
        else:
            cert = x509.load_der_x509_certificate(pem_or_der)
    except ValueError as exc:
        raise KeyMaterialError(f"not a certificate: {exc}") from None
    if curve_of(cert.public_key()) is None:
        pk = cert.public_key()
        what = pk.curve.name if isinstance(pk, ec.EllipticCurvePublicKey) else type(pk).__name__
        raise KeyMaterialError(f"certificate key ({what}) is not ECDSA on an LMN curve")
    return cert


def certificate_der(pem_or_der: bytes) -> bytes:
    """The DER encoding of a certificate given as PEM or DER (checked as by :func:`load_certificate`)."""
    return load_certificate(pem_or_der).public_bytes(serialization.Encoding.DER)


def private_key_der(pem_or_der: bytes, *, sec1: bool = False) -> bytes:
    """The DER encoding of a private key given as PEM or DER: PKCS#8, or SEC1 (RFC 5915) with ``sec1``."""
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if sec1 else serialization.PrivateFormat.PKCS8
    return load_private_key(pem_or_der).private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())


def check_key_matches_certificate(key_pem: bytes, cert_pem: bytes) -> None:
    """Raise KeyMaterialError unless the private key belongs to the certificate."""
    key = load_private_key(key_pem)
    cert = load_certificate(cert_pem)
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise KeyMaterialError("the private key does not belong to the certificate")


def fingerprint_sha256(cert_pem_or_der: bytes) -> str:
    """SHA-256 over the certificate's DER, as colon-separated upper-case hex (``AB:CD:...``)."""
    digest = hashlib.sha256(certificate_der(cert_pem_or_der)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def describe_certificate(cert_pem_or_der: bytes) -> CertificateInfo:
    """Subject, curve, fingerprint and validity of a certificate (for ``bab keys show``)."""
    cert = load_certificate(cert_pem_or_der)
    pk = cert.public_key()
    assert isinstance(pk, ec.EllipticCurvePublicKey)  # load_certificate checked it
    return CertificateInfo(
        subject_cn=_cn(cert.subject),
        issuer_cn=_cn(cert.issuer),
        self_signed=cert.subject == cert.issuer,
        curve=curve_of(pk),
        curve_name=pk.curve.name,
        fingerprint_sha256=fingerprint_sha256(cert_pem_or_der),
        serial=cert.serial_number,
        not_before=validity(cert)[0],
        not_after=validity(cert)[1],
    )


def validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    """``(not before, not after)`` of ``cert`` as timezone-aware UTC datetimes.

    cryptography >= 42 has ``not_valid_before_utc``; Debian bookworm's python3-cryptography (38) has only the
    naive-UTC ``not_valid_before``, which later versions deprecate: both are read here.
    """
    try:
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    except AttributeError:
        return (cert.not_valid_before.replace(tzinfo=dt.UTC), cert.not_valid_after.replace(tzinfo=dt.UTC))


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def save_private_key(path: str | os.PathLike[str], key_pem: bytes) -> None:
    """Write a private key (PEM) atomically with mode 0600."""
    load_private_key(key_pem)
    atomic_write(path, key_pem, mode=0o600)


def save_certificate(path: str | os.PathLike[str], cert_pem: bytes) -> None:
    """Write a certificate (PEM) atomically with mode 0644."""
    load_certificate(cert_pem)
    atomic_write(path, cert_pem, mode=0o644)


def load_private_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a private key PEM file, refusing one that others may read or anyone but the owner may write.

    Returns the PEM bytes after checking that they hold a usable key.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise KeyMaterialError(f"private key file {path} does not exist") from None
    if mode & 0o077:
        raise KeyMaterialError(
            f"private key file {path} is accessible by group/others (mode {mode:04o}); "
            f"it must be readable by its owner only: chmod 600 {path}"
        )
    pem = path.read_bytes()
    load_private_key(pem)
    return pem


def load_certificate_file(path: str | os.PathLike[str]) -> bytes:
    """Read a certificate PEM/DER file and check it (ECDSA on an LMN curve)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyMaterialError(f"certificate file {path} does not exist") from None
    load_certificate(data)
    return data
