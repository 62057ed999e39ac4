"""Shared helpers for the SYM tests (certificates, an in-memory pairing driver). Contains no tests itself."""

from __future__ import annotations

import datetime
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bab.meter_id import MeterId
from bab.sym import (
    Credentials,
    MeterPaired,
    PairingFailed,
    PairingState,
    SaveState,
    SymGateway,
    SymMeter,
)

MK = bytes.fromhex("00112233445566778899aabbccddeeff")


def notice(counter: int) -> bytes:
    """Profile 2015's rejection notice for a request with ``counter`` (what a dropped request gets back)."""
    from bab.sym import Profile2015

    return Profile2015().rejection_notice(counter)

OTHER_MK = bytes.fromhex("ffeeddccbbaa99887766554433221100")
METER_ID = MeterId.parse("1EMH0004911613").server_id


@cache
def make_cert(name: str, curve_name: str = "secp256r1") -> tuple[bytes, bytes]:
    """A self-signed ECDSA certificate and its PKCS#8 private key, both DER (cached per name)."""
    curve = {"secp256r1": ec.SECP256R1(), "brainpoolP256r1": ec.BrainpoolP256R1()}[curve_name]
    key = ec.generate_private_key(curve)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.DER), key_der


def gw_cert() -> bytes:
    return make_cert("gateway")[0]


def meter_creds() -> Credentials:
    cert, key = make_cert("meter-injected")
    return Credentials(cert, key)


def own_cert() -> bytes:
    return make_cert("meter-own", "brainpoolP256r1")[0]


def ack_saves(meter: SymMeter, saved: list[PairingState] | None = None) -> list:
    """Acknowledge every SaveState (recording it), return the other events."""
    others = []
    while (ev := meter.next_event()) is not None:
        if isinstance(ev, SaveState):
            if saved is not None:
                saved.append(ev.state)
            meter.state_saved()
        else:
            others.append(ev)
    return others


def run_pairing(meter: SymMeter, gateway: SymGateway, max_rounds: int = 20) -> tuple[list, list]:
    """Shuttle bytes until the gateway is done; returns (meter events, gateway events)."""
    meter_events: list = []
    gateway_events: list = []
    gateway.start()
    for _ in range(max_rounds):
        req = gateway.data_to_send()
        if not req:
            break
        meter.receive(req)
        meter_events += ack_saves(meter)
        gateway.receive(meter.data_to_send())
        gateway_events += gateway.events()
        if gateway.done:
            break
    return meter_events, gateway_events


def paired_ok(gateway_events: list) -> MeterPaired:
    assert not any(isinstance(e, PairingFailed) for e in gateway_events), gateway_events
    done = [e for e in gateway_events if isinstance(e, MeterPaired)]
    assert len(done) == 1
    return done[0]
