"""Benchmark of the SYM pairing engine (bab.sym): prints figures, asserts nothing.

Run: .venv/bin/python bench/sym_bench.py
"""

from __future__ import annotations

import datetime
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bab.sym import (
    Direction,
    PairingState,
    PersistentSymMeter,
    Profile2015,
    SaveState,
    SymGateway,
    SymMeter,
    SymStore,
)

MK = bytes(range(1, 17))
METER_ID = bytes.fromhex("0a01454d4800004af1fd")


def cert(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    c = (
        x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return c.public_bytes(serialization.Encoding.DER)


def pair_in_memory(gw_cert: bytes, own: bytes) -> None:
    meter = SymMeter(PairingState(MK), METER_ID, own_certificate=own)
    gw = SymGateway(MK, METER_ID, gw_cert)
    gw.start()
    while (req := gw.data_to_send()):
        meter.receive(req)
        while (ev := meter.next_event()) is not None:
            if isinstance(ev, SaveState):
                meter.state_saved()
        gw.receive(meter.data_to_send())
    assert gw.done


def main() -> None:
    gw_cert, own = cert("gw"), cert("meter")
    p = Profile2015()
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        raw = p.seal(MK, METER_ID, Direction.GATEWAY_TO_METER, 0x04, i, gw_cert)
    t_seal = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for _ in range(n):
        p.open(MK, METER_ID, Direction.GATEWAY_TO_METER, raw)
    t_open = (time.perf_counter() - t) / n
    print(f"seal {len(gw_cert)}-byte payload: {t_seal * 1e6:8.1f} us/message")
    print(f"open {len(raw)}-byte message:  {t_open * 1e6:8.1f} us/message")

    n = 200
    t = time.perf_counter()
    for _ in range(n):
        pair_in_memory(gw_cert, own)
    print(f"full pairing in memory (route b, both sides): {(time.perf_counter() - t) / n * 1e3:6.2f} ms")

    with tempfile.TemporaryDirectory() as d:
        n = 20
        t = time.perf_counter()
        for i in range(n):
            store = SymStore(Path(d) / f"{i}.json")
            store.set_master_key(MK)
            link = PersistentSymMeter(store, METER_ID, own_certificate=own)
            gw = SymGateway(MK, METER_ID, gw_cert)
            gw.start()
            while (req := gw.data_to_send()):
                gw.receive(link.handle(req))
            assert gw.done
        print(f"full pairing with fsync'ed state writes ({d}): {(time.perf_counter() - t) / n * 1e3:6.2f} ms")


if __name__ == "__main__":
    main()
