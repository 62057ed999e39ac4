"""bab.sml message layer: round trips of every type and body, the LMN vectors byte for byte, CRCs, quirks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sml_strategies import (
    bodies,
    files,
    list_entries,
    period_entries,
    proc_par_values,
    sml_times,
    sml_values,
    trees,
    tupel_entries,
)

from bab.crc import crc16_kermit, crc16_x25
from bab.crc import crc16_kermit as ref_kermit
from bab.crc import crc16_x25 as ref_x25
from bab.sml import (
    AttentionCode,
    AttentionRes,
    CosemScalerUnit,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    ListEntry,
    OpaqueBody,
    ProcParKind,
    ProcParValue,
    PublicCloseRes,
    PublicOpenReq,
    PublicOpenRes,
    Quirk,
    SecIndex,
    SmlCrcError,
    SmlEncodeError,
    SmlFile,
    SmlMessage,
    SmlTruncated,
    SmlTypeError,
    SmlUnsupportedMessage,
    Tree,
    Unsigned,
    attention_name,
    decode_file,
    decode_sml,
    encode_file,
    encode_message,
    encode_sml,
)
from bab.sml.attention import is_application_specific
from bab.sml.tl import Reader
from bab.sml.types import (
    read_list_entry,
    read_period_entry,
    read_proc_par_value,
    read_time,
    read_tree,
    read_tupel_entry,
    read_value,
    write_list_entry,
    write_period_entry,
    write_proc_par_value,
    write_time,
    write_tree,
    write_tupel_entry,
    write_value,
)

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"


def _sml_vectors(shared: Path) -> dict[str, bytes]:
    out = {}
    for line in (shared / "lmn-frames.txt").read_text().splitlines():
        if line.startswith("SML "):
            name, hexs = line.split(":", 1)
            out[name.strip()] = bytes.fromhex(hexs.replace(" ", ""))
    return out


# ------------------------------------------------------------------------------------------------ checksum


@given(st.binary(max_size=600))
def test_fast_crcs_equal_the_reference_table_crcs(data: bytes) -> None:
    assert crc16_x25(data) == ref_x25(data)
    assert crc16_kermit(data) == ref_kermit(data)


def test_crc_check_values() -> None:
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_kermit(b"123456789") == 0x2189


# ------------------------------------------------------------------------------------ type round trips


def _roundtrip(write, read, value, quirks: Quirk = Quirk.DEFAULT):  # type: ignore[no-untyped-def]
    out = bytearray()
    write(out, value)
    r = Reader(bytes(out), quirks)
    back = read(r)
    assert r.pos == len(out), "decoder did not consume exactly what the encoder wrote"
    again = bytearray()
    write(again, back)
    assert again == out, "re-encoding the decoded value changed the bytes"
    return back


@settings(max_examples=150, deadline=None)
@given(sml_times)
def test_time_roundtrip(t) -> None:  # type: ignore[no-untyped-def]
    assert _roundtrip(write_time, read_time, t) == t


@settings(max_examples=150, deadline=None)
@given(sml_values)
def test_value_roundtrip(v) -> None:  # type: ignore[no-untyped-def]
    assert _roundtrip(write_value, read_value, v) == v


@settings(max_examples=100, deadline=None)
@given(list_entries)
def test_list_entry_roundtrip(e: ListEntry) -> None:
    assert _roundtrip(write_list_entry, read_list_entry, e) == e


@settings(max_examples=50, deadline=None)
@given(period_entries)
def test_period_entry_roundtrip(e) -> None:  # type: ignore[no-untyped-def]
    assert _roundtrip(write_period_entry, read_period_entry, e) == e


@settings(max_examples=30, deadline=None)
@given(tupel_entries)
def test_tupel_entry_roundtrip(e) -> None:  # type: ignore[no-untyped-def]
    assert _roundtrip(write_tupel_entry, read_tupel_entry, e) == e


@settings(max_examples=80, deadline=None)
@given(proc_par_values)
def test_proc_par_value_roundtrip(p: ProcParValue) -> None:
    assert _roundtrip(write_proc_par_value, read_proc_par_value, p) == p


@settings(max_examples=80, deadline=None)
@given(trees)
def test_tree_roundtrip(t: Tree) -> None:
    assert _roundtrip(write_tree, read_tree, t) == t


@settings(max_examples=200, deadline=None)
@given(bodies, st.binary(max_size=8), st.integers(0, 255), st.integers(0, 255))
def test_every_message_body_roundtrips(body, tid: bytes, group: int, abort: int) -> None:  # type: ignore[no-untyped-def]
    msg = SmlMessage(tid, body, group, abort)
    raw = encode_message(msg)
    f = decode_file(raw)
    assert f.messages == [msg]
    assert type(f.messages[0].body) is type(body)
    assert encode_message(f.messages[0]) == raw


@settings(max_examples=60, deadline=None)
@given(files)
def test_file_roundtrip_through_transport(f: SmlFile) -> None:
    wire = encode_sml(f)
    assert decode_sml(wire) == f
    assert encode_sml(decode_sml(wire)) == wire


# ----------------------------------------------------------------------------------- LMN vectors (6.x)


def test_lmn_vectors_decode_and_reencode_byte_for_byte(shared_vectors: Path) -> None:
    vectors = _sml_vectors(shared_vectors)
    assert len(vectors) == 3
    for name, wire in vectors.items():
        f = decode_sml(wire, Quirk.STRICT)
        assert encode_sml(f) == wire, name


def test_lmn_get_proc_parameter_request_content(shared_vectors: Path) -> None:
    f = decode_sml(_sml_vectors(shared_vectors)["SML GetProcParameter.Req"])
    open_req, req, close = (m.body for m in f.messages)
    assert isinstance(open_req, PublicOpenReq) and open_req.client_id == b"SMGWCLID"
    assert open_req.server_id == bytes.fromhex("0A01454D4800004AF1FD") and open_req.sml_version == 1
    assert isinstance(req, GetProcParameterReq)
    assert req.parameter_tree_path == [bytes.fromhex("0100010800FF800200"), b"\x00\x02", b"\x00\x03", b"\x00\x04",
                                       b"\x00\x05"]
    assert req.attribute is None and req.username is None
    assert [m.transaction_id for m in f.messages] == [b"\x01", b"\x02", b"\x03"]


def test_lmn_get_proc_parameter_response_content(shared_vectors: Path) -> None:
    f = decode_sml(_sml_vectors(shared_vectors)["SML GetProcParameter.Res"])
    res = f.messages[1].body
    assert isinstance(res, GetProcParameterRes)
    tree = res.parameter_tree
    assert tree.parameter_name == bytes.fromhex("0100010800FF800200") and tree.parameter_value is None
    assert tree.child_list is not None
    kids = {c.parameter_name: c.parameter_value for c in tree.child_list}
    assert kids[b"\x00\x02"] == ProcParValue(ProcParKind.VALUE, Unsigned(4288964))
    assert kids[b"\x00\x02"].value.width == 8  # type: ignore[union-attr]
    assert kids[b"\x00\x03"] == ProcParValue(ProcParKind.VALUE, CosemScalerUnit(-1, 30))
    assert kids[b"\x00\x04"] == ProcParValue(ProcParKind.VALUE, Unsigned(2005970))
    assert kids[b"\x00\x05"] == ProcParValue(ProcParKind.VALUE, Unsigned(0x104))
    assert f.messages[0].body.ref_time == SecIndex(2005970)  # type: ignore[union-attr]


def test_lmn_attention_content(shared_vectors: Path) -> None:
    f = decode_sml(_sml_vectors(shared_vectors)["SML Attention FD00 (OK)"])
    att = f.messages[1].body
    assert isinstance(att, AttentionRes)
    assert att.attention_no == AttentionCode.OK.to_bytes()
    assert attention_name(att.attention_no) == "OK"
    assert att.attention_details == Tree(bytes.fromhex("01005E310007000100"))


def test_building_the_get_proc_parameter_response_from_objects_gives_the_vector(shared_vectors: Path) -> None:
    """What the meter server will do: build the response from dataclasses, get the reference bytes."""
    sid = bytes.fromhex("0A01454D4800004AF1FD")
    obj = bytes.fromhex("0100010800FF800200")
    path = [obj, b"\x00\x02", b"\x00\x03", b"\x00\x04", b"\x00\x05"]

    def attr(n: int, v: object) -> Tree:
        return Tree(bytes((0, n)), ProcParValue(ProcParKind.VALUE, v))  # type: ignore[arg-type]

    f = SmlFile([
        SmlMessage(b"\x01", PublicOpenRes(None, b"SMGWCLID", b"\x00\x00\x00\x01", sid, SecIndex(2005970))),
        SmlMessage(b"\x02", GetProcParameterRes(sid, path, Tree(obj, None, [
            attr(2, Unsigned(4288964, 8)), attr(3, CosemScalerUnit(-1, 30)), attr(4, Unsigned(2005970, 4)),
            attr(5, Unsigned(0x104, 4))]))),
        SmlMessage(b"\x03", PublicCloseRes()),
    ])
    assert encode_sml(f) == _sml_vectors(shared_vectors)["SML GetProcParameter.Res"]


# ------------------------------------------------------------------------------------------ attention


def test_attention_table_is_complete() -> None:
    assert AttentionCode.OK.to_bytes() == bytes.fromhex("8181C7C7FD00")
    assert AttentionCode.JOB_EXECUTED_LATER.to_bytes() == bytes.fromhex("8181C7C7FD01")
    errors = [c for c in AttentionCode if c.is_error]
    assert [c & 0xFF for c in errors] == list(range(0x16))  # FE 00 .. FE 15, none missing
    assert AttentionCode.ORDER_NOT_EXECUTED.to_bytes()[-2:] == b"\xfe\x0a"
    assert attention_name(bytes.fromhex("8181C7C7E123")) == "APPLICATION_SPECIFIC_E123"
    assert is_application_specific(bytes.fromhex("8181C7C7FCFF"))
    assert not is_application_specific(bytes.fromhex("8181C7C7FD00"))
    assert attention_name(b"\x01\x02") == "UNKNOWN_0102"


# --------------------------------------------------------------------------------------- errors, quirks


def _msg(body: object = None) -> bytes:
    return encode_message(SmlMessage(b"\x01", body or PublicCloseRes()))  # type: ignore[arg-type]


def test_message_crc_is_checked() -> None:
    raw = bytearray(_msg())
    raw[-2] ^= 0x01
    with pytest.raises(SmlCrcError) as e:
        decode_file(bytes(raw))
    assert e.value.where == "message"
    raw = bytearray(_msg())
    raw[2] ^= 0x01  # the transaction id byte: content change caught by the CRC
    with pytest.raises(SmlCrcError):
        decode_file(bytes(raw))


def test_message_crc_is_x25_byte_swapped() -> None:
    raw = _msg()
    body = raw[:-4]
    assert raw[-4] == 0x63 and raw[-3:-1] == crc16_x25(body).to_bytes(2, "little") and raw[-1] == 0


def test_holley_kermit_crc_only_with_the_quirk() -> None:
    msg = SmlMessage(b"\x00\x00\x01", GetListRes(None, b"\x0a\x01HLY\x02\x00\x0d\x6b\xe6", None, None, []),
                     crc_kind="kermit")
    raw = encode_message(msg)
    assert raw[-3:-1] == crc16_kermit(raw[:-4]).to_bytes(2, "big")
    with pytest.raises(SmlCrcError):
        decode_file(raw)
    with pytest.raises(SmlCrcError):
        decode_file(raw, Quirk.STRICT)
    f = decode_file(raw, Quirk.DEFAULT | Quirk.HOLLEY_KERMIT_CRC)
    assert f.messages == [msg] and f.messages[0].crc_kind == "kermit"
    assert encode_file(f) == raw


def test_holley_bare_u32_time() -> None:
    entry = ListEntry(bytes.fromhex("0100010801FF"), Unsigned(0x1C0104, 4), SecIndex(1347075, bare=True), 30, -1,
                      Unsigned(0, 1))
    raw = encode_message(SmlMessage(b"\x01", GetListRes(None, b"x", None, None, [entry])))
    assert bytes.fromhex("65 00148e03") in raw
    f = decode_file(raw)  # on by default: a u32 is never a valid SML_Time
    got = f.messages[0].body.val_list[0]  # type: ignore[union-attr]
    assert got.val_time == SecIndex(1347075) and got.val_time.bare
    assert encode_file(f) == raw
    with pytest.raises(SmlTypeError):
        decode_file(raw, Quirk.STRICT)


def test_odd_integer_widths_only_with_the_quirk() -> None:
    entry = ListEntry(bytes.fromhex("0100010800FF"), Unsigned(0x1C0104, 3), None, 30, -1, Unsigned(7, 5))
    raw = encode_message(SmlMessage(b"\x01", GetListRes(None, b"x", None, None, [entry])))
    assert bytes.fromhex("64 1C0104") in raw and bytes.fromhex("66 0000000007") in raw
    got = decode_file(raw).messages[0].body.val_list[0]  # type: ignore[union-attr]
    assert got.status.width == 3 and got.value.width == 5 and got == entry
    with pytest.raises(SmlTypeError, match="ODD_INT_WIDTHS"):
        decode_file(raw, Quirk.STRICT)


def test_cosem_bodies_are_carried_opaquely_and_unknown_tags_rejected() -> None:
    body = OpaqueBody(0x0800, bytes.fromhex("72 03 0102 62 05"))
    raw = encode_message(SmlMessage(b"\x01", body))
    assert decode_file(raw).messages[0].body == body
    bad = bytearray(raw)
    i = bad.index(bytes.fromhex("63 0800"))
    bad[i + 1:i + 3] = b"\x12\x34"
    with pytest.raises(SmlUnsupportedMessage) as e:
        decode_file(bytes(bad))
    assert e.value.tag == 0x1234


def test_truncation_and_type_errors_are_named() -> None:
    raw = _msg(GetListRes(None, b"abc", None, SecIndex(5), [ListEntry(b"\x01" * 6, value=Unsigned(5))]))
    for n in range(1, len(raw) - 1):
        with pytest.raises((SmlTruncated, SmlTypeError, SmlCrcError)):
            decode_file(raw[:n])
    with pytest.raises(SmlTypeError):
        decode_file(b"\x75" + raw[1:])  # list of 5 where SML_Message has 6
    with pytest.raises(SmlTypeError):
        decode_file(b"\x00\x00")  # only fill: no message


def test_deep_nesting_is_rejected_not_a_recursion_error() -> None:
    deep = b"\x73\x01\x01\x71" * 1000
    with pytest.raises(SmlTypeError):
        read_tree(Reader(deep))


def test_encoder_rejects_unencodable_values() -> None:
    def entry_msg(e: ListEntry) -> SmlMessage:
        return SmlMessage(b"\x01", GetListRes(None, b"x", None, None, [e]))

    for bad in (ListEntry(b"o", value=5), ListEntry(b"o", value=Unsigned(-1)),  # type: ignore[arg-type]
                ListEntry(b"o", value=Unsigned(300, 1)), ListEntry(b"o", scaler=200), ListEntry(b"o", unit=-1)):
        with pytest.raises(SmlEncodeError):
            encode_message(entry_msg(bad))
    with pytest.raises(SmlEncodeError):
        encode_message(SmlMessage(b"\x01", PublicCloseRes(), group_no=256))
    with pytest.raises(SmlEncodeError):
        encode_message(SmlMessage(b"\x01", "not a body"))  # type: ignore[arg-type]
    for body in (GetProcParameterRes(b"x", [], None), GetListRes(None, b"x", None, None, None),  # type: ignore[arg-type]
                 GetProcParameterRes(b"x", [], Tree(b"n", None, ["not a tree"]))):  # type: ignore[list-item]
        with pytest.raises(SmlEncodeError):
            encode_message(SmlMessage(b"\x01", body))


def test_trailing_zero_fill_between_messages_is_skipped() -> None:
    raw = _msg() + b"\x00\x00" + _msg()
    assert len(decode_file(raw).messages) == 2
