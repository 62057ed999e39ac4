"""Every SYM failure case on the meter side (LMN-STACK.md §5, policy in bab/sym/meter.py): counted, dropped
(answered only with the rejection notice, never with a valid message), running pairing aborted or not as
documented, and the state file byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sym_support import METER_ID, MK, OTHER_MK, gw_cert, make_cert, meter_creds, notice, own_cert

from bab.sym import (
    Direction,
    MessageDropped,
    PairingFailed,
    PairingState,
    PersistentSymMeter,
    Profile2015,
    SymStore,
    SymUsageError,
)
from bab.sym.crypto import aes_cmac as cmac
from bab.sym.crypto import cbc_encrypt

P = Profile2015()


def seal(cmd: int, counter: int, data: bytes = b"", mk: bytes = MK, meter_id: bytes = METER_ID) -> bytes:
    return P.seal(mk, meter_id, Direction.GATEWAY_TO_METER, cmd, counter, data)


class Rig:
    """A meter bound to a state file, plus helpers to drive it with hand-made gateway messages."""

    def __init__(self, tmp_path: Path, **kw: object) -> None:
        self.path = tmp_path / "sym.json"
        self.store = SymStore(self.path)
        self.store.set_master_key(MK)
        self.link = PersistentSymMeter(self.store, METER_ID, own_certificate=own_cert(), **kw)
        self.next = 1

    def send(self, raw: bytes) -> bytes:
        return self.link.handle(raw)

    def step(self, cmd: int, data: bytes = b"") -> bytes:
        """Send a valid command with the next counter; it must be answered."""
        counter = self.next
        ans = self.send(seal(cmd, counter, data))
        assert ans and ans[0] == cmd | 0x80, self.link.events()
        self.next = int.from_bytes(ans[5:9], "big") + 1
        return ans

    def sync(self) -> None:
        self.step(0x01)

    def file(self) -> bytes:
        return self.path.read_bytes()

    def expect_drop(self, raw: bytes | list[bytes], reason: str, *, aborted: bool, count: int = 1) -> None:
        before = self.file()
        state_before = self.link.meter.state
        self.link.events()
        for r in raw if isinstance(raw, list) else [raw]:
            counter = int.from_bytes(r[5:9], "big") if len(r) >= 9 else 0
            assert self.send(r) == notice(counter)
        evs = self.link.events()
        assert self.link.meter.stats[reason] == count, (self.link.meter.stats, evs)
        assert any(isinstance(e, MessageDropped) and e.reason == reason for e in evs), evs
        assert (PairingFailed(reason) in evs) == aborted, evs
        assert self.file() == before
        assert self.link.meter.state == state_before


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_wrong_master_key(rig: Rig) -> None:
    rig.expect_drop(seal(0x01, 1, mk=OTHER_MK), "bad_mac", aborted=False)
    rig.sync()
    rig.expect_drop(seal(0x02, rig.next, mk=OTHER_MK), "bad_mac", aborted=False, count=2)
    rig.step(0x02)  # the running pairing was not disturbed


def test_wrong_meter_id(rig: Rig) -> None:
    rig.expect_drop(seal(0x01, 1, meter_id=METER_ID[:-1] + b"\xee"), "bad_mac", aborted=False)


@pytest.mark.parametrize("pos", [0, 5, 8, 9, 20, 24, -16, -1])
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_bit_flip(rig: Rig, pos: int, bit: int) -> None:
    rig.sync()
    raw = bytearray(seal(0x02, rig.next))
    raw[pos] ^= bit
    rig.expect_drop(bytes(raw), "bad_mac", aborted=False)
    rig.step(0x02)


def test_replayed_counter(rig: Rig) -> None:
    rig.sync()
    msg = seal(0x02, rig.next)
    rig.step(0x02)
    rig.expect_drop(msg, "replayed_counter", aborted=False)
    rig.step(0x03)  # pairing continues


def test_replay_of_old_session_after_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.sync()
    old = seal(0x02, rig.next)
    rig.step(0x02)
    rig2 = Rig.__new__(Rig)  # a "reboot": new meter object from the same file
    rig2.path, rig2.store, rig2.next = rig.path, rig.store, rig.next
    rig2.link = PersistentSymMeter(rig.store, METER_ID, own_certificate=own_cert())
    rig2.sync()
    rig2.expect_drop(old, "old_counter", aborted=False)


def test_out_of_order_counter(rig: Rig) -> None:
    rig.sync()
    skipped = seal(0x02, rig.next)
    rig.next += 1
    rig.step(0x02)
    rig.expect_drop(skipped, "old_counter", aborted=False)
    rig.expect_drop(seal(0x03, 0), "old_counter", aborted=False, count=2)


def test_impossible_length_fields(rig: Rig) -> None:
    rig.sync()
    good = seal(0x02, rig.next)
    bad = [
        good[:1] + (len(good) + 1).to_bytes(4, "big") + good[5:],  # not block aligned
        good[:1] + (8).to_bytes(4, "big") + good[5:],  # shorter than any message
        good[:1] + (1 << 20).to_bytes(4, "big") + good[5:],  # above the profile maximum
    ]
    for i, raw in enumerate(bad, 1):
        rig.expect_drop(raw, "bad_length", aborted=False, count=i)
    rig.step(0x02)


def test_length_field_too_short_by_a_block(rig: Rig) -> None:
    rig.sync()
    good = seal(0x02, rig.next, bytes(40))
    raw = good[:1] + (len(good) - 16).to_bytes(4, "big") + good[5:]
    # the cut message fails the MAC; the 16 left-over bytes are no valid message header
    before = rig.file()
    ans = rig.send(raw)  # the cut message and the unreadable rest: a notice each
    assert ans[:25] == notice(rig.next) and P.is_rejection_notice(ans[25:])
    rig.link.connection_reset()
    stats = rig.link.meter.stats
    assert stats["bad_mac"] == 1
    assert stats["bad_length"] + stats["truncated"] == 1
    assert rig.file() == before
    rig.link.events()
    rig.sync()  # a new connection works


def test_length_field_too_long_then_connection_reset(rig: Rig) -> None:
    rig.sync()
    good = seal(0x02, rig.next)
    raw = good[:1] + (len(good) + 16).to_bytes(4, "big") + good[5:]
    before = rig.file()
    assert rig.send(raw) == b""  # waits for the rest
    rig.link.connection_reset()  # HDLC SNRM/DISC on selector 6
    assert rig.link.meter.stats["truncated"] == 1
    assert PairingFailed("connection_reset") in rig.link.events()
    assert rig.file() == before


def test_truncated_message(rig: Rig) -> None:
    rig.sync()
    raw = seal(0x04, rig.next, gw_cert())
    before = rig.file()
    assert rig.send(raw[: len(raw) // 2]) == b""
    rig.link.connection_reset()
    assert rig.link.meter.stats["truncated"] == 1
    assert rig.file() == before
    # a truncated message followed by a complete one: both are lost, the meter resynchronises
    rig.link.events()
    rig.sync()
    first = seal(0x02, rig.next, b"x")  # 41 bytes: a header, one block, the MAC
    assert rig.send(first[:30]) == b""
    assert rig.send(seal(0x02, rig.next + 1)).startswith(notice(rig.next))
    assert rig.link.meter.stats["bad_mac"] == 1
    rig.link.connection_reset()
    rig.link.events()
    rig.sync()
    rig.step(0x02)


def test_unknown_command(rig: Rig) -> None:
    rig.sync()
    rig.expect_drop(seal(0x07, rig.next), "unknown_command", aborted=False)
    rig.expect_drop(seal(0x82, rig.next + 1), "unknown_command", aborted=False, count=2)
    rig.step(0x02)


def test_command_out_of_sequence_aborts_pairing(rig: Rig) -> None:
    rig.expect_drop(seal(0x03, 5), "wrong_sequence", aborted=False)  # no pairing running: nothing to abort
    rig.sync()
    rig.step(0x02)
    rig.expect_drop(seal(0x04, rig.next, gw_cert()), "wrong_sequence", aborted=True, count=2)
    rig.expect_drop(seal(0x03, rig.next + 1), "wrong_sequence", aborted=False, count=3)
    rig.next += 2
    rig.sync()  # the gateway restarts with SYNC
    rig.step(0x02)


def test_commit_without_certificates(rig: Rig) -> None:
    rig.sync()
    rig.expect_drop(seal(0x05, rig.next), "wrong_sequence", aborted=True)
    assert not rig.link.meter.paired


@pytest.mark.parametrize(
    ("cmd", "payload", "reason"),
    [
        (0x02, b"\x00", "bad_padding"),
        (0x03, b"\x30\x03\x02\x01\x01" * 2, "bad_certificate"),
        (0x03, b"\x30\x82\x10\x00", "bad_der"),
        (0x03, b"garbage", "bad_der"),
        (0x03, make_cert("meter-injected")[0] + make_cert("intruder")[1], "key_mismatch"),
        (0x03, make_cert("meter-injected")[0] + b"\x30\x03\x02\x01\x01", "bad_private_key"),
        (0x03, meter_creds().certificate + meter_creds().private_key + b"\x00" * 16, "bad_padding"),
    ],
    ids=["alg-data", "cert-garbage", "der-long", "not-der", "key-mismatch", "key-garbage", "trailing"],
)
def test_bad_payload_with_valid_mac_aborts(rig: Rig, cmd: int, payload: bytes, reason: str) -> None:
    rig.sync()
    if cmd == 0x03:
        rig.step(0x02)
    rig.expect_drop(seal(cmd, rig.next, payload), reason, aborted=True)


def test_bad_peer_certificate_aborts(rig: Rig) -> None:
    rig.sync()
    rig.step(0x02)
    rig.step(0x03)
    rig.expect_drop(seal(0x04, rig.next, b"\x30\x00"), "bad_certificate", aborted=True)


def test_bad_padding_with_valid_mac_aborts(rig: Rig) -> None:
    rig.sync()
    counter = rig.next
    enc, mac = P.derive_keys(MK, counter, METER_ID, Direction.GATEWAY_TO_METER)
    body = cbc_encrypt(enc, bytes(15) + b"\x05")  # pad byte says 5, bytes before it are 0
    head = b"\x02" + (9 + 16 + 16).to_bytes(4, "big") + counter.to_bytes(4, "big")
    raw = head + body + cmac(mac, head + body)
    rig.expect_drop(raw, "bad_padding", aborted=True)


def test_already_paired_refuses_everything(rig: Rig) -> None:
    rig.sync()
    rig.step(0x02)
    rig.step(0x03)
    rig.step(0x04, gw_cert())
    rig.step(0x05)
    assert rig.link.meter.paired
    rig.expect_drop(seal(0x01, 1), "already_paired", aborted=False)
    rig.expect_drop(seal(0x02, rig.next), "already_paired", aborted=False, count=2)


def test_store_write_failure_changes_nothing(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.sync()
    rig.step(0x02)
    rig.step(0x03)
    rig.step(0x04, gw_cert())
    before = rig.file()

    def broken(state: PairingState) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rig.store, "save", broken)
    rig.expect_drop(seal(0x05, rig.next), "store_write_failed", aborted=True)
    assert not rig.link.meter.paired and rig.file() == before


def test_counter_exhausted(tmp_path: Path) -> None:
    store = SymStore(tmp_path / "s.json")
    store.save(PairingState(MK, counter=0xFFFFFFFF))
    link = PersistentSymMeter(store, METER_ID)
    before = (tmp_path / "s.json").read_bytes()
    assert link.handle(seal(0x01, 1)) == notice(1)
    assert link.meter.stats["counter_exhausted"] == 1
    assert (tmp_path / "s.json").read_bytes() == before


def test_overflow_of_garbage_is_bounded(rig: Rig) -> None:
    before = rig.file()
    # a plausible header that announces the maximum length, then far too much data
    assert rig.send(b"\x01" + (8185).to_bytes(4, "big") + bytes(20000)) == notice(0)
    assert rig.link.meter.stats["overflow"] == 1
    assert rig.file() == before


def test_usage_errors(rig: Rig) -> None:
    with pytest.raises(SymUsageError):
        rig.link.meter.state_saved()
    rig.link.meter.crypto_reset()
    with pytest.raises(SymUsageError):
        rig.link.meter.crypto_reset()


class ErrorAnsweringProfile(Profile2015):
    """A profile that answers some rejections (like the FNN "FE 09" error code might): proves the hook."""

    def error_answer(self, reason: str, request):  # type: ignore[override]
        codes = {"wrong_sequence": 0x01, "unknown_command": 0x02, "already_paired": 0x03}
        return (0xFE, bytes([codes[reason]])) if reason in codes else None


def test_profile_defined_error_answers(tmp_path: Path) -> None:
    prof = ErrorAnsweringProfile()
    rig = Rig(tmp_path, profile=prof)
    rig.sync()
    rig.step(0x02)
    before = rig.file()
    ans = rig.send(seal(0x07, rig.next))
    msg = prof.open(MK, METER_ID, Direction.METER_TO_GATEWAY, ans)
    assert (msg.command, msg.counter, msg.data) == (0xFE, rig.next, prof.pad(b"\x02"))
    ans = rig.send(seal(0x04, rig.next + 1, gw_cert()))
    msg = prof.open(MK, METER_ID, Direction.METER_TO_GATEWAY, ans)
    assert (msg.command, msg.data) == (0xFE, prof.pad(b"\x01"))
    assert PairingFailed("wrong_sequence") in rig.link.events()
    assert rig.file() == before
    # unauthenticated or stale input only gets the rejection notice, whatever the profile says
    assert rig.send(seal(0x07, rig.next + 2, mk=OTHER_MK)) == prof.rejection_notice(rig.next + 2)
    assert rig.send(seal(0x07, 1)) == prof.rejection_notice(1)
    assert rig.link.meter.stats["old_counter"] == 1 and rig.link.meter.stats["bad_mac"] == 1
    # rejected requests consume no counter (nothing is persisted): a repeat gets the identical answer
    assert rig.send(seal(0x07, rig.next)) == rig.send(seal(0x07, rig.next))
    assert rig.file() == before
