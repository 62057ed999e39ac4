"""SYM pairing-state store and MK provisioning (LMN-STACK.md §5): atomic 0600 files, crypto-reset, refusal
rules, MK input formats; no key material in error texts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from test_sym_support import METER_ID, MK, gw_cert, meter_creds

from bab.sym import (
    MasterKeyError,
    PairingState,
    SymStore,
    SymStoreError,
    parse_master_key,
    read_master_key,
    set_master_key,
    sym_state_path,
)


def _paired() -> PairingState:
    c = meter_creds()
    return PairingState(MK, counter=9, paired=True, peer_certificate=gw_cert(), own_certificate=c.certificate,
                        own_private_key=c.private_key)


def test_roundtrip_and_mode(tmp_path: Path) -> None:
    path = sym_state_path(tmp_path, METER_ID)
    assert path == tmp_path / "sym" / "0a01454d4800004af1fd.json"
    store = SymStore(path)
    assert store.load() is None
    with pytest.raises(SymStoreError) as ei:
        store.require()
    assert ei.value.reason == "no_state"
    st = _paired()
    store.save(st)
    assert store.load() == st
    assert path.stat().st_mode & 0o777 == 0o600


def test_crypto_reset_is_one_write_and_keeps_mk_and_counter(tmp_path: Path) -> None:
    store = SymStore(tmp_path / "s.json")
    store.save(_paired())
    reset = store.crypto_reset()
    assert reset == PairingState(MK, counter=9)
    raw = json.loads((tmp_path / "s.json").read_text())
    assert raw["paired"] is False
    assert raw["peer_certificate"] is None and raw["own_private_key"] is None and raw["own_certificate"] is None


def test_set_master_key_refused_while_paired(tmp_path: Path) -> None:
    store = SymStore(tmp_path / "s.json")
    store.save(_paired())
    before = (tmp_path / "s.json").read_bytes()
    with pytest.raises(SymStoreError) as ei:
        store.set_master_key(bytes(range(1, 17)))
    assert ei.value.reason == "paired"
    assert (tmp_path / "s.json").read_bytes() == before
    store.crypto_reset()
    st = store.set_master_key(bytes(range(1, 17)))
    assert st.master_key == bytes(range(1, 17)) and st.counter == 9


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "master_key": "zz", "counter": 0, "paired": false}',
        b'{"format": 1, "master_key": "00", "counter": 0, "paired": false}',
        b'{"format": 1, "master_key": "' + MK.hex().encode() + b'", "counter": -1, "paired": false}',
        b'{"format": 1, "master_key": "' + MK.hex().encode() + b'", "counter": 0, "paired": true}',
        b'{"format": 1, "master_key": "' + MK.hex().encode() + b'", "counter": 0, "paired": false, '
        b'"peer_certificate": "00"}',
    ],
)
def test_corrupt_or_inconsistent_file_is_a_named_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "s.json"
    p.write_bytes(content)
    with pytest.raises(SymStoreError) as ei:
        SymStore(p).load()
    assert MK.hex() not in str(ei.value)
    assert p.read_bytes() == content  # never silently replaced


def test_state_invariants() -> None:
    with pytest.raises(SymStoreError):
        PairingState(MK, paired=True)
    with pytest.raises(SymStoreError):
        PairingState(MK, own_certificate=b"x")
    with pytest.raises(SymStoreError):
        PairingState(MK, counter=1 << 32)
    with pytest.raises(SymStoreError):
        PairingState(MK, counter=5).with_counter(4)


@pytest.mark.parametrize(
    "raw",
    [
        MK,
        MK.hex().encode(),
        MK.hex().upper().encode() + b"\n",
        b"  " + b" ".join(MK.hex().encode()[i : i + 2] for i in range(0, 32, 2)) + b"\r\n",
        b":".join(MK.hex().encode()[i : i + 2] for i in range(0, 32, 2)),
        b"0x" + MK.hex().encode(),
    ],
)
def test_parse_master_key_forms(raw: bytes) -> None:
    assert parse_master_key(raw) == MK


@pytest.mark.parametrize(
    "raw",
    [b"", bytes(16), b"\xff" * 16, b"00" * 16, MK.hex().encode()[:-1], MK.hex().encode() + b"00", b"zz" * 16,
     MK + b"\x00", "ä".encode() * 16],
)
def test_parse_master_key_rejects(raw: bytes) -> None:
    with pytest.raises(MasterKeyError) as ei:
        parse_master_key(raw)
    assert isinstance(ei.value, ValueError)
    assert MK.hex() not in str(ei.value).lower()


def test_read_master_key_from_file_and_stdin(tmp_path: Path) -> None:
    f = tmp_path / "mk.hex"
    f.write_text(MK.hex() + "\n")
    assert read_master_key(f) == MK
    assert read_master_key("-", stdin=io.BytesIO(MK)) == MK
    with pytest.raises(MasterKeyError):
        read_master_key(tmp_path / "missing")
    with pytest.raises(MasterKeyError):
        read_master_key("-", stdin=io.BytesIO(b"0" * 10000))


def test_set_master_key_command(tmp_path: Path) -> None:
    store = SymStore(tmp_path / "sym" / "m.json")
    st = set_master_key(store, "-", stdin=io.BytesIO(MK.hex().encode()))
    assert st == PairingState(MK)
    assert store.load() == st
    assert (tmp_path / "sym" / "m.json").stat().st_mode & 0o777 == 0o600
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(16))
    before = (tmp_path / "sym" / "m.json").read_bytes()
    with pytest.raises(MasterKeyError):
        set_master_key(store, bad)
    assert (tmp_path / "sym" / "m.json").read_bytes() == before
