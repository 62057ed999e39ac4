"""Known-answer tests: AES-CMAC (RFC 4493), profile-2015 key derivation and message layout (LMN-STACK.md §5)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from test_sym_support import METER_ID, MK

from bab.sym import Direction, Profile2015, SymAuthError, SymFormatError
from bab.sym.crypto import aes_cmac, cbc_decrypt, cbc_encrypt

RFC4493_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_MSG = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)


@pytest.mark.parametrize(
    ("length", "tag"),
    [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ],
)
def test_aes_cmac_rfc4493(length: int, tag: str) -> None:
    assert aes_cmac(RFC4493_KEY, RFC4493_MSG[:length]).hex() == tag


def test_cmac_rejects_wrong_key_length_without_echoing_key() -> None:
    with pytest.raises(ValueError) as ei:
        aes_cmac(b"\x41" * 15, b"")
    assert "AAAA" not in str(ei.value) and "41" * 4 not in str(ei.value)


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


@pytest.mark.parametrize("counter", [0, 1, 0x12345678, 0xFFFFFFFF])
def test_kdf_2015_matches_formula(counter: int) -> None:
    p = Profile2015()
    cnt = counter.to_bytes(4, "big")
    exp = {
        Direction.METER_TO_GATEWAY: (b"\x00", b"\x01"),
        Direction.GATEWAY_TO_METER: (b"\x10", b"\x11"),
    }
    for direction, (d_enc, d_mac) in exp.items():
        enc, mac = p.derive_keys(MK, counter, METER_ID, direction)
        assert enc == _cmac(MK, d_enc + cnt + METER_ID + b"\x01")
        assert mac == _cmac(MK, d_mac + cnt + METER_ID + b"\x01")
        assert len({enc, mac}) == 2


def test_kdf_fixed_vector() -> None:
    # Constants computed once from the §5 formula with cryptography's CMAC directly (not through bab.sym):
    # MK 00112233..eeff, meter 1EMH0004911613 (server ID 0a01454d4800004af1fd), CNT 1.
    assert METER_ID.hex() == "0a01454d4800004af1fd"
    p = Profile2015()
    k_enc, k_mac = p.derive_keys(MK, 1, METER_ID, Direction.METER_TO_GATEWAY)
    l_enc, l_mac = p.derive_keys(MK, 1, METER_ID, Direction.GATEWAY_TO_METER)
    assert k_enc.hex() == "b60b96e532c99665f94051ea424c4442"
    assert k_mac.hex() == "8a7866421b81071d414607abfebac56a"
    assert l_enc.hex() == "71c94fa00a2a548e1f7e12727f7a8e65"
    assert l_mac.hex() == "e5de9f0ea5783fa20ee6d98dbe34373f"


def test_kdf_emh_bug_swaps_codes_and_pad_byte() -> None:
    p = Profile2015(emh_bug=True)
    cnt = (7).to_bytes(4, "big")
    enc, mac = p.derive_keys(MK, 7, METER_ID, Direction.METER_TO_GATEWAY)
    assert enc == _cmac(MK, b"\x10" + cnt + METER_ID + b"\x00")
    assert mac == _cmac(MK, b"\x11" + cnt + METER_ID + b"\x00")
    enc, mac = p.derive_keys(MK, 7, METER_ID, Direction.GATEWAY_TO_METER)
    assert enc == _cmac(MK, b"\x00" + cnt + METER_ID + b"\x00")
    assert mac == _cmac(MK, b"\x01" + cnt + METER_ID + b"\x00")


def _cbc_dec(key: bytes, data: bytes) -> bytes:
    d = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    return d.update(data) + d.finalize()


@pytest.mark.parametrize("mac_length", [16, 8])
@pytest.mark.parametrize("data_len", [0, 1, 15, 16, 17, 32, 40])
def test_message_layout_2015(mac_length: int, data_len: int) -> None:
    """LMN-STACK.md 13: no encrypted block for empty data, padding only up to the block boundary."""
    p = Profile2015(mac_length=mac_length)
    data = bytes(range(data_len))
    counter = 0x01020304
    raw = p.seal(MK, METER_ID, Direction.GATEWAY_TO_METER, 0x03, counter, data)
    assert raw[0] == 0x03
    assert int.from_bytes(raw[1:5], "big") == len(raw)
    assert raw[5:9] == bytes.fromhex("01020304")
    cnt = raw[5:9]
    k_enc = _cmac(MK, b"\x10" + cnt + METER_ID + b"\x01")
    k_mac = _cmac(MK, b"\x11" + cnt + METER_ID + b"\x01")
    body = raw[9:-mac_length]
    pad = -data_len % 16
    assert len(body) == data_len + pad
    if data_len:
        assert _cbc_dec(k_enc, body) == data + bytes([pad]) * pad
    assert raw[-mac_length:] == _cmac(k_mac, raw[:-mac_length])[:mac_length]
    msg = p.open(MK, METER_ID, Direction.GATEWAY_TO_METER, raw)
    assert (msg.command, msg.counter) == (0x03, counter)
    assert msg.data == data + bytes([pad]) * pad  # the payload codecs strip the padding
    p.check_tail(msg.data, data_len)


def test_empty_message_is_25_bytes() -> None:
    p = Profile2015()
    raw = p.seal(MK, METER_ID, Direction.GATEWAY_TO_METER, 0x01, 0xFFFFFFFF, b"")
    assert len(raw) == 25 and raw[:9] == bytes.fromhex("0100000019ffffffff")
    assert p.open(MK, METER_ID, Direction.GATEWAY_TO_METER, raw).data == b""


@pytest.mark.parametrize(("data", "end", "ok"), [
    (b"", 0, True),
    (bytes(16), 16, True),
    (bytes(16), 0, False),  # a whole padding block where none belongs
    (b"\x01" * 3 + b"\x0d" * 13, 3, True),
    (b"\x01" * 3 + b"\x0d" * 12 + b"\x0c", 3, False),
    (b"\x01" * 3 + b"\x0d" * 13 + b"\x10" * 16, 3, False),
])
def test_check_tail_2015(data: bytes, end: int, ok: bool) -> None:
    p = Profile2015()
    if ok:
        p.check_tail(data, end)
    else:
        with pytest.raises(SymFormatError) as ei:
            p.check_tail(data, end)
        assert ei.value.reason == "bad_padding"


def test_message_layout_emh_zero_padding() -> None:
    p = Profile2015(emh_bug=True)
    raw = p.seal(MK, METER_ID, Direction.METER_TO_GATEWAY, 0x82, 9, b"\x01\x02\x03")
    cnt = raw[5:9]
    k_enc = _cmac(MK, b"\x10" + cnt + METER_ID + b"\x00")
    assert _cbc_dec(k_enc, raw[9:-16]) == b"\x01\x02\x03" + bytes(13)
    assert len(p.seal(MK, METER_ID, Direction.METER_TO_GATEWAY, 0x81, 9, b"")) == 25
    p.check_tail(b"\x01\x02\x03" + bytes(13), 3)
    with pytest.raises(SymFormatError):
        p.check_tail(b"\x01\x02\x03" + b"\x0d" * 13, 3)


def test_open_rejects_wrong_direction_key_mk_and_meter_id() -> None:
    p = Profile2015()
    raw = p.seal(MK, METER_ID, Direction.GATEWAY_TO_METER, 0x01, 5, b"")
    for key, mid, direction in [
        (MK, METER_ID, Direction.METER_TO_GATEWAY),
        (bytes(16), METER_ID, Direction.GATEWAY_TO_METER),
        (MK, METER_ID[:-1] + b"\x00", Direction.GATEWAY_TO_METER),
    ]:
        with pytest.raises(SymAuthError) as ei:
            p.open(key, mid, direction, raw)
        assert ei.value.reason == "bad_mac"
        assert MK.hex() not in str(ei.value)
    assert Profile2015(emh_bug=True).name == "2015-emh"
    with pytest.raises(SymAuthError):
        Profile2015(emh_bug=True).open(MK, METER_ID, Direction.GATEWAY_TO_METER, raw)


def test_frame_length_validation() -> None:
    p = Profile2015()
    assert p.frame_length(b"\x01\x00\x00") is None
    for total in (0, 24, 26, 40, 41 + 1, 8193 + 16, 0xFFFFFFFF):
        with pytest.raises(SymFormatError) as ei:
            p.frame_length(b"\x01" + total.to_bytes(4, "big"))
        assert ei.value.reason == "bad_length"
    assert p.frame_length(b"\x01" + (25).to_bytes(4, "big")) == 25
    assert p.frame_length(b"\x01" + (41).to_bytes(4, "big")) == 41
    assert p.frame_length(b"\x01" + (57).to_bytes(4, "big")) == 57
    assert Profile2015(mac_length=8).frame_length(b"\x01" + (17).to_bytes(4, "big")) == 17


def test_cbc_roundtrip_and_block_check() -> None:
    key = bytes(range(16))
    assert cbc_decrypt(key, cbc_encrypt(key, bytes(32))) == bytes(32)
    with pytest.raises(ValueError):
        cbc_encrypt(key, b"abc")


def test_profile_options_validated() -> None:
    with pytest.raises(ValueError):
        Profile2015(mac_length=12)
