"""Independent check of the encoder: what bab.sml writes, smllib (a separate Python SML decoder) reads back
to the same values. smllib understands Open.Res, GetList.Res and Close.Res, so those are what we check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from test_sml_strategies import edl_files

from bab.sml import (
    FileDecoded,
    GetListRes,
    Integer,
    ListEntry,
    PublicCloseRes,
    PublicOpenRes,
    Quirk,
    SecIndex,
    SmlFile,
    SmlMessage,
    SmlStreamDecoder,
    Unsigned,
    encode_sml,
)

smllib = pytest.importorskip("smllib")


def _smllib_decode(wire: bytes) -> list[Any]:
    reader = smllib.SmlStreamReader()
    reader.add(wire)
    frame = reader.get_frame()
    assert frame is not None
    return frame.parse_frame()


def _hex(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def _opt_hex(b: bytes | None) -> str | None:
    return b.hex() if b else None


def _time(t: Any) -> Any:
    return None if t is None else t.value


def _value(v: Any) -> Any:
    if isinstance(v, Unsigned):
        return v.value
    if isinstance(v, bytes):  # smllib turns alphanumeric text into str, everything else into hex
        text = v.decode(errors="ignore")
        return text if text.isalnum() else v.hex()
    if isinstance(v, SecIndex):
        return v.value
    return v


def _check_entry(ours: ListEntry, theirs: Any) -> None:
    assert theirs.obis == ours.obj_name.hex()
    assert theirs.status == (None if ours.status is None else ours.status.value)
    assert theirs.val_time == _time(ours.val_time)
    assert theirs.unit == ours.unit
    assert theirs.scaler == ours.scaler
    assert theirs.value == _value(ours.value)
    assert theirs.value_signature == _opt_hex(ours.value_signature)


def check_with_smllib(f: SmlFile) -> None:
    wire = encode_sml(f)
    theirs = _smllib_decode(wire)
    assert len(theirs) == len(f.messages)
    for ours, th in zip(f.messages, theirs, strict=True):
        assert th.transaction_id == _opt_hex(ours.transaction_id)
        assert th.group_no == ours.group_no and th.abort_on_error == ours.abort_on_error
        b, tb = ours.body, th.message_body
        if isinstance(b, PublicOpenRes):
            assert type(tb).__name__ == "SmlOpenResponse"
            assert tb.codepage == _opt_hex(b.codepage) and tb.client_id == _opt_hex(b.client_id)
            assert tb.req_file_id == _hex(b.req_file_id) and tb.server_id == _hex(b.server_id)
            assert tb.ref_time == _time(b.ref_time) and tb.sml_version == b.sml_version
        elif isinstance(b, GetListRes):
            assert type(tb).__name__ == "SmlGetListResponse"
            assert tb.client_id == _opt_hex(b.client_id) and tb.server_id == _hex(b.server_id)
            assert tb.list_name == _opt_hex(b.list_name)
            assert tb.act_sensor_time == _time(b.act_sensor_time)
            assert tb.act_gateway_time == _time(b.act_gateway_time)
            assert tb.list_signature == _opt_hex(b.list_signature)
            assert len(tb.val_list) == len(b.val_list)
            for e, te in zip(b.val_list, tb.val_list, strict=True):
                _check_entry(e, te)
        else:
            assert isinstance(b, PublicCloseRes)
            assert type(tb).__name__ == "SmlCloseResponse"
            assert tb.global_signature == _opt_hex(b.global_signature)


@settings(max_examples=150, deadline=None)
@given(edl_files)
def test_smllib_reads_what_we_write(f: SmlFile) -> None:
    check_with_smllib(f)


def test_smllib_reads_a_typical_edl_push_file() -> None:
    sid = bytes.fromhex("0A01454D480000A1BD34")
    t = SecIndex(2005970)
    f = SmlFile([
        SmlMessage(b"\x00\x17\xd2\xb9", PublicOpenRes(None, b"\xff" * 6, b"\x00\x07\xf0\xe9", sid, t, 1)),
        SmlMessage(b"\x00\x17\xd2\xba", GetListRes(b"\xff" * 6, sid, bytes.fromhex("0100620AFFFF"), t, [
            ListEntry(bytes.fromhex("010060320101"), value=b"EMH"),
            ListEntry(bytes.fromhex("0100010800FF"), Unsigned(0x1C0104, 3), SecIndex(2005970), 30, -1,
                      Unsigned(4288964, 8)),
            ListEntry(bytes.fromhex("0100100700FF"), None, None, 27, 0, Integer(-2623, 4)),
            ListEntry(bytes.fromhex("0100000009FF"), value=b"\x1b\x1b\x1b\x1b" * 20),  # escaping + long TL
        ])),
        SmlMessage(b"\x00\x17\xd2\xbb", PublicCloseRes()),
    ])
    check_with_smllib(f)


def test_smllib_reads_our_reencoding_of_every_capture(shared_vectors: Path) -> None:
    """Real-world content: each decoded capture file, written again by our encoder, reads the same in smllib.

    Skipped: files with an empty octet-string value (``01``), which smllib refuses ("value is required")."""
    checked = 0
    for path in sorted((shared_vectors / "sml-push").glob("*.bin")):
        dec = SmlStreamDecoder(Quirk.EDL)
        for ev in dec.feed(path.read_bytes()):
            if not isinstance(ev, FileDecoded):
                continue
            if any(e.value == b"" for body in ev.file.bodies(GetListRes) for e in body.val_list):
                continue
            check_with_smllib(ev.file)
            checked += 1
    assert checked >= 160  # 169 of the 180 files; the 11 of EMH ..._with_error carry empty values
