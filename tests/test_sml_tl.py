"""bab.sml.tl: TL encoding of octet strings, booleans, integers of every width, lists, 01 and 00."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bab.sml import Integer, Quirk, SmlEncodeError, SmlTruncated, SmlTypeError, Unsigned
from bab.sml.tl import (
    T_LIST,
    T_OCTET,
    Reader,
    write_bool,
    write_int,
    write_octets,
    write_simple_value,
    write_tl,
)


def _enc(fn, *args) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    fn(out, *args)
    return bytes(out)


@pytest.mark.parametrize(("n", "tl"), [
    (0, "01"), (1, "02"), (14, "0F"), (15, "8101"), (16, "8102"), (48, "8302"), (253, "8F0F"), (254, "818001"),
    (4000, "8F8A03"),
])
def test_octet_string_tl_counts_its_own_bytes(n: int, tl: str) -> None:
    raw = _enc(write_octets, bytes(n))
    assert raw[:len(tl) // 2] == bytes.fromhex(tl)
    assert len(raw) == n + len(tl) // 2
    r = Reader(raw)
    assert r.octets() == bytes(n) and r.pos == len(raw)


def test_spec_example_83_02_is_a_50_byte_octet_string() -> None:
    raw = bytes.fromhex("8302") + bytes(range(48))
    assert Reader(raw).octets() == bytes(range(48))


@pytest.mark.parametrize(("n", "tl"), [(0, "70"), (7, "77"), (15, "7F"), (21, "F105"), (255, "FF0F"), (256, "F18000")])
def test_list_tl_counts_elements(n: int, tl: str) -> None:
    raw = _enc(write_tl, T_LIST, n)
    assert raw == bytes.fromhex(tl)
    assert Reader(raw).list_header() == n


@given(st.integers(0, 70000))
def test_tl_roundtrip_any_length(n: int) -> None:
    for t in (T_OCTET, T_LIST):
        r = Reader(_enc(write_tl, t, n) + bytes(n))
        assert r.tl() == (t, n)


@pytest.mark.parametrize(("value", "signed", "raw"), [
    (0, False, "6200"), (255, False, "62FF"), (256, False, "630100"), (0x10000, False, "6500010000"),
    (1 << 32, False, "690000000100000000"), (-1, True, "52FF"), (127, True, "527F"), (128, True, "530080"),
    (-32769, True, "55FFFF7FFF"), (-(1 << 63), True, "598000000000000000"),
])
def test_integers_use_the_smallest_standard_width(value: int, signed: bool, raw: str) -> None:
    assert _enc(write_int, value, signed) == bytes.fromhex(raw)


@given(st.integers(1, 8), st.data())
def test_integers_of_every_width_decode(width: int, data: st.DataObject) -> None:
    u = data.draw(st.integers(0, (1 << (8 * width)) - 1))
    s = data.draw(st.integers(-(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1))
    for v, signed in ((u, False), (s, True)):
        raw = _enc(write_int, v, signed, width)
        assert len(raw) == width + 1
        r = Reader(raw)
        got = r.simple_value()
        assert isinstance(got, Integer if signed else Unsigned)
        assert got.value == v and got.width == width
        r = Reader(raw)
        assert (r.sint() if signed else r.uint()) == v


def test_odd_widths_need_the_quirk() -> None:
    raw = bytes.fromhex("641C0104")
    assert Reader(raw).status() == Unsigned(0x1C0104)
    with pytest.raises(SmlTypeError):
        Reader(raw, Quirk.STRICT).status()
    assert Reader(bytes.fromhex("630102"), Quirk.STRICT).uint() == 0x102


def test_fixed_width_fields_check_their_range() -> None:
    assert Reader(bytes.fromhex("6500000005")).uint(8) == 5  # a u8 sent as u32 is fine
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("630100")).uint(8)
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("530100")).sint(8)
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("50")).sint()  # zero-width integer
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("6A" + "00" * 9)).uint()  # 9-byte integer


def test_booleans() -> None:
    assert _enc(write_bool, True) == b"\x42\x01" and _enc(write_bool, False) == b"\x42\x00"
    assert Reader(b"\x42\x01").boolean() is True and Reader(b"\x42\x00").boolean() is False
    assert Reader(b"\x42\xff").simple_value() is True
    with pytest.raises(SmlTypeError):
        Reader(b"\x43\x00\x01").boolean()


def test_optional_marker_and_end_of_message() -> None:
    r = Reader(b"\x01\x01\x00")
    assert r.opt_octets() is None
    assert r.octets() == b""  # 01 is also the empty octet string where a value is mandatory
    r.end_of_message()
    assert r.pos == 3
    with pytest.raises(SmlTypeError, match="end of message"):
        Reader(b"\x00").octets()
    with pytest.raises(SmlTypeError):
        Reader(b"\x01").end_of_message()


def test_malformed_tl_fields() -> None:
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("81 11 00")).tl()  # continuation byte with type bits
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("81" + "80" * 9 + "01")).tl()  # longer than 8 TL bytes
    with pytest.raises(SmlTruncated):
        Reader(bytes.fromhex("81")).tl()
    with pytest.raises(SmlTruncated):
        Reader(bytes.fromhex("05 0102")).octets()
    with pytest.raises(SmlTruncated):
        Reader(b"").peek()
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("62 05")).octets()
    with pytest.raises(SmlTypeError):
        Reader(bytes.fromhex("02 05")).uint()


def test_simple_value_encoding_rules() -> None:
    assert _enc(write_simple_value, Unsigned(5, 4)) == bytes.fromhex("6500000005")
    assert _enc(write_simple_value, Integer(-2)) == bytes.fromhex("52FE")
    assert _enc(write_simple_value, b"EMH") == bytes.fromhex("04454D48")
    assert _enc(write_simple_value, True) == bytes.fromhex("4201")
    for bad in (5, 1.5, None, Unsigned(-1), Unsigned(1 << 64), Integer(1, 9)):
        with pytest.raises(SmlEncodeError):
            _enc(write_simple_value, bad)


def test_typed_integers_compare_by_value_and_sign() -> None:
    assert Unsigned(5, 1) == Unsigned(5, 4) and hash(Unsigned(5, 1)) == hash(Unsigned(5))
    assert Unsigned(5) != Integer(5)
    assert int(Integer(-3)) == -3 and repr(Integer(-3, 2)) == "Integer(-3, width=2)"
