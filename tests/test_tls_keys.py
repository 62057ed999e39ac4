"""Key material helpers (bab.tls.keys): generation on the five LMN curves, PEM I/O, file modes, fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bab.tls import keys
from bab.tls.keys import Curve, KeyMaterialError


@pytest.mark.parametrize("curve", list(Curve))
def test_generate_identity_on_every_lmn_curve(curve: Curve) -> None:
    key_pem, cert_pem = keys.generate_identity("1EMH0012345678", curve)
    key = keys.load_private_key(key_pem)
    cert = keys.load_certificate(cert_pem)
    assert keys.curve_of(key.public_key()) is curve
    info = keys.describe_certificate(cert_pem)
    assert info.curve is curve and info.curve_name == curve.value
    assert info.subject_cn == "1EMH0012345678" and info.issuer_cn == "1EMH0012345678" and info.self_signed
    # really self-signed with the curve-matched hash
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(curve.signature_hash()))
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == curve.signature_hash().name
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    keys.check_key_matches_certificate(key_pem, cert_pem)


def test_curve_parse_aliases_and_refusals() -> None:
    assert Curve.parse("P-256") is Curve.SECP256R1
    assert Curve.parse("prime256v1") is Curve.SECP256R1
    assert Curve.parse("bp384") is Curve.BRAINPOOL_P384R1
    assert Curve.parse("BRAINPOOLP512R1") is Curve.BRAINPOOL_P512R1
    assert [c.tls_group_id for c in Curve] == [26, 27, 28, 23, 24]
    for bad in ("P-521", "secp521r1", "x25519", "secp256k1"):
        with pytest.raises(KeyMaterialError, match="not allowed"):
            Curve.parse(bad)


def test_foreign_keys_and_certificates_are_refused() -> None:
    p521 = ec.generate_private_key(ec.SECP521R1())
    pem = p521.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyMaterialError, match="secp521r1"):
        keys.load_private_key(pem)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    now = dt.datetime.now(dt.UTC)
    rsa_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(rsa_key, hashes.SHA256())
    )
    with pytest.raises(KeyMaterialError, match="not ECDSA"):
        keys.load_certificate(rsa_cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(KeyMaterialError, match="not a certificate"):
        keys.load_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(KeyMaterialError, match="private key"):
        keys.load_private_key(b"garbage")


def test_key_certificate_mismatch_detected() -> None:
    key_a, _ = keys.generate_identity("A", Curve.SECP256R1)
    _, cert_b = keys.generate_identity("B", Curve.SECP256R1)
    with pytest.raises(KeyMaterialError, match="does not belong"):
        keys.check_key_matches_certificate(key_a, cert_b)


def test_fingerprint_is_sha256_of_der() -> None:
    _, cert_pem = keys.generate_identity("1EMH0012345678", Curve.BRAINPOOL_P256R1)
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    fp = keys.fingerprint_sha256(cert_pem)
    assert fp.replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert len(fp.split(":")) == 32
    assert keys.fingerprint_sha256(der) == fp  # DER input works too


def test_validity_window_and_given_dates() -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    key = keys.generate_private_key(Curve.SECP384R1)
    cert = keys.self_signed_certificate(key, "M", not_before=start, validity=dt.timedelta(days=10))
    info = keys.describe_certificate(cert.public_bytes(serialization.Encoding.PEM))
    assert info.not_before == start and info.not_after == start + dt.timedelta(days=10)
    assert info.valid_at(start + dt.timedelta(days=5))
    assert not info.valid_at(start + dt.timedelta(days=11))


def test_private_key_saved_0600_and_loaded(tmp_path) -> None:
    key_pem, cert_pem = keys.generate_identity("M", Curve.BRAINPOOL_P256R1)
    path = tmp_path / "state" / "meter.key"
    keys.save_private_key(path, key_pem)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.load_private_key_file(path) == key_pem
    cert_path = tmp_path / "state" / "meter.crt"
    keys.save_certificate(cert_path, cert_pem)
    assert stat.S_IMODE(os.stat(cert_path).st_mode) == 0o644
    assert keys.load_certificate_file(cert_path) == cert_pem
    assert not list((tmp_path / "state").glob("*.tmp"))


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o660])
def test_readable_by_others_private_key_is_refused(tmp_path, mode: int) -> None:
    key_pem, _ = keys.generate_identity("M", Curve.SECP256R1)
    path = tmp_path / "meter.key"
    keys.save_private_key(path, key_pem)
    os.chmod(path, mode)
    with pytest.raises(KeyMaterialError, match=r"chmod 600") as info:
        keys.load_private_key_file(path)
    assert f"{mode:04o}" in str(info.value)


def test_missing_files_give_clear_errors(tmp_path) -> None:
    with pytest.raises(KeyMaterialError, match="does not exist"):
        keys.load_private_key_file(tmp_path / "nope.key")
    with pytest.raises(KeyMaterialError, match="does not exist"):
        keys.load_certificate_file(tmp_path / "nope.crt")


def test_save_refuses_garbage(tmp_path) -> None:
    with pytest.raises(KeyMaterialError):
        keys.save_private_key(tmp_path / "k", b"not a key")
    assert not (tmp_path / "k").exists()


class _Cryptography38Certificate:
    """What Debian bookworm's python3-cryptography (38) offers for validity dates: naive UTC datetimes only."""

    def __init__(self, cert: x509.Certificate) -> None:
        self.not_valid_before = keys.validity(cert)[0].replace(tzinfo=None)
        self.not_valid_after = keys.validity(cert)[1].replace(tzinfo=None)


def test_validity_with_and_without_the_utc_attributes() -> None:
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    key = keys.generate_private_key()
    cert = keys.self_signed_certificate(key, "1BAB0000000001", not_before=start, validity=dt.timedelta(days=2))
    assert keys.validity(cert) == (start, start + dt.timedelta(days=2))
    old = keys.validity(_Cryptography38Certificate(cert))  # type: ignore[arg-type]
    assert old == (start, start + dt.timedelta(days=2)) and old[0].tzinfo is not None
