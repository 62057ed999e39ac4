"""Every libsml-testing capture in shared/vectors/sml-push decodes to what sml-rs recorded in its snapshot.

The ``.expected.snap`` files are sml-rs ``{:#?}`` dumps of ``transport::decode_streaming`` results, one
``Ok([messages])`` per decoded file and ``Err(...)`` per discarded stretch / rejected frame. We parse them and
compare the complete event sequence of :class:`bab.sml.SmlStreamDecoder`: every message, every field of every
ListEntry (with the integer type sml-rs chose), every ``DiscardedBytes(n)`` count and every checksum error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bab.sml import (
    BytesDiscarded,
    FileDecoded,
    FileRejected,
    GetListRes,
    Integer,
    LocalTimestamp,
    PublicCloseRes,
    PublicOpenRes,
    Quirk,
    SecIndex,
    SmlCrcError,
    SmlStreamDecoder,
    Timestamp,
    Unsigned,
    decode_file,
    encode_file,
    encode_sml,
)

# ------------------------------------------------------------------------------------- snapshot parser

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+)(?P<suffix>[iu](?:8|16|32|64))?|(?P<ident>[A-Za-z_]\w*)|(?P<punct>[{}()\[\],:]))"
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m, f"cannot tokenize snapshot at {text[pos:pos + 40]!r}"
        pos = m.end()
        if m.group("num") is not None:
            out.append(("num", (int(m.group("num")), m.group("suffix"))))
        elif m.group("ident"):
            out.append(("ident", m.group("ident")))
        else:
            out.append(("p", m.group("punct")))
    return out


class _Parser:
    """Rust ``{:#?}`` output to Python: struct -> dict (with '_type'), tuple struct -> (name, [args]),
    list -> list, number with type suffix -> (value, suffix), plain number -> (value, None), unit struct -> name."""

    def __init__(self, text: str) -> None:
        self.t = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, kind: str, val: Any = None) -> Any:
        k, v = self.t[self.i]
        assert k == kind and (val is None or v == val), (k, v, kind, val)
        self.i += 1
        return v

    def value(self) -> Any:
        k, v = self.t[self.i]
        if k == "num":
            self.i += 1
            return v
        if k == "p" and v in "[(":
            close = "]" if v == "[" else ")"
            self.i += 1
            items = []
            while self.peek() != ("p", close):
                items.append(self.value())
                if self.peek() == ("p", ","):
                    self.i += 1
            self.take("p", close)
            return items
        name = self.take("ident")
        nxt = self.peek()
        if nxt == ("p", "{"):
            self.i += 1
            d: dict[str, Any] = {"_type": name}
            while self.peek() != ("p", "}"):
                key = self.take("ident")
                self.take("p", ":")
                d[key] = self.value()
                if self.peek() == ("p", ","):
                    self.i += 1
            self.take("p", "}")
            return d
        if nxt == ("p", "("):
            self.i += 1
            args = []
            while self.peek() != ("p", ")"):
                args.append(self.value())
                if self.peek() == ("p", ","):
                    self.i += 1
            self.take("p", ")")
            return (name, args)
        return name

    def all(self) -> list[Any]:
        out = []
        while self.peek() is not None:
            out.append(self.value())
        return out


def parse_snap(path: Path) -> list[Any]:
    text = path.read_text()
    body = text.split("---", 2)[2]
    return _Parser(body).all()


# ------------------------------------------------------------------------------- our objects, snap-shaped

_WIDTH_BITS = {1: 8, 2: 16, 3: 32, 4: 32, 5: 64, 6: 64, 7: 64, 8: 64}


def _num(v: int) -> tuple[int, None]:
    return (v, None)


def _typed(v: Unsigned) -> tuple[int, str]:
    return (v.value, f"{'i' if isinstance(v, Integer) else 'u'}{_WIDTH_BITS[v.width]}")


def _time(t: Any) -> Any:
    if isinstance(t, SecIndex):
        return ("SecIndex", [_num(t.value)])
    if isinstance(t, Timestamp):  # sml-rs has no variant for these; never in the captures
        return ("Timestamp", [_num(t.value)])
    assert isinstance(t, LocalTimestamp)
    return ("LocalTimestamp", [_num(t.timestamp)])


def _bytes(b: bytes) -> list[Any]:
    return [_num(x) for x in b]


def _put(d: dict[str, Any], key: str, v: Any, conv: Any) -> None:
    if v is not None:
        d[key] = conv(v)


def _value(v: Any) -> Any:
    if isinstance(v, Unsigned):
        return _typed(v)
    if isinstance(v, bytes):
        return _bytes(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return _time(v)


def snap_shape(msg: Any) -> dict[str, Any]:
    b = msg.body
    if isinstance(b, PublicOpenRes):
        body: Any = {"_type": "OpenResponse"}
        _put(body, "codepage", b.codepage, _bytes)
        _put(body, "client_id", b.client_id, _bytes)
        body["req_file_id"] = _bytes(b.req_file_id)
        body["server_id"] = _bytes(b.server_id)
        _put(body, "ref_time", b.ref_time, _time)
        _put(body, "sml_version", b.sml_version, _num)
    elif isinstance(b, GetListRes):
        body = {"_type": "GetListResponse"}
        _put(body, "client_id", b.client_id, _bytes)
        body["server_id"] = _bytes(b.server_id)
        _put(body, "list_name", b.list_name, _bytes)
        _put(body, "act_sensor_time", b.act_sensor_time, _time)
        entries = []
        for e in b.val_list:
            d: dict[str, Any] = {"_type": "ListEntry", "obj_name": _bytes(e.obj_name)}
            _put(d, "status", e.status, _typed)
            _put(d, "val_time", e.val_time, _time)
            _put(d, "unit", e.unit, _num)
            _put(d, "scaler", e.scaler, _num)
            d["value"] = _value(e.value)
            _put(d, "value_signature", e.value_signature, _bytes)
            entries.append(d)
        body["val_list"] = entries
        _put(body, "list_signature", b.list_signature, _bytes)
        _put(body, "act_gateway_time", b.act_gateway_time, _time)
    elif isinstance(b, PublicCloseRes):
        body = "CloseResponse" if b.global_signature is None else {
            "_type": "CloseResponse", "global_signature": _bytes(b.global_signature)}
    else:
        raise AssertionError(f"unexpected body {b!r}")
    return {
        "_type": "Message", "transaction_id": _bytes(msg.transaction_id), "group_no": _num(msg.group_no),
        "abort_on_error": _num(msg.abort_on_error), "message_body": body,
    }


def event_shape(ev: Any) -> Any:
    if isinstance(ev, FileDecoded):
        return ("Ok", [[snap_shape(m) for m in ev.file.messages]])
    if isinstance(ev, BytesDiscarded):
        return ("Err", [("DiscardedBytes", [_num(ev.count)])])
    assert isinstance(ev, FileRejected)
    if isinstance(ev.error, SmlCrcError) and ev.error.where == "transport":
        return ("Err", [("CrcMismatch", [_num(ev.error.received), _num(ev.error.computed)])])
    return ("Err", [(type(ev.error).__name__, [])])


def snap_event(item: Any) -> Any:
    """Normalise sml-rs InvalidMessage (checksum mismatch) to the shape of our FileRejected(SmlCrcError)."""
    kind, args = item
    if kind == "Err" and isinstance(args[0], dict) and args[0]["_type"] == "InvalidMessage":
        received, computed = args[0]["checksum_mismatch"]
        return ("Err", [("CrcMismatch", [received, computed])])
    return item


# ------------------------------------------------------------------------------------------------ tests


def _captures(shared: Path) -> list[Path]:
    return sorted((shared / "sml-push").glob("*.bin"))


def _decode_all(data: bytes, quirks: Quirk = Quirk.DEFAULT, chunk: int = 0) -> list[Any]:
    dec = SmlStreamDecoder(quirks)
    events: list[Any] = []
    if chunk:
        for i in range(0, len(data), chunk):
            events += dec.feed(data[i:i + chunk])
    else:
        events += dec.feed(data)
    events += dec.finish()
    return events


def test_snapshot_parser_reads_rust_debug_output() -> None:
    items = _Parser("Ok([Message { a: [1, 2], b: -3i16, c: SecIndex(5), d: X }]) Err(DiscardedBytes(2))").all()
    assert items == [
        ("Ok", [[{"_type": "Message", "a": [(1, None), (2, None)], "b": (-3, "i16"), "c": ("SecIndex", [(5, None)]),
                  "d": "X"}]]),
        ("Err", [("DiscardedBytes", [(2, None)])]),
    ]


def test_every_capture_matches_its_snapshot(shared_vectors: Path) -> None:
    captures = _captures(shared_vectors)
    assert len(captures) >= 25
    checked_entries = 0
    for path in captures:
        snap = path.with_suffix(".expected.snap")
        expected = [snap_event(x) for x in parse_snap(snap)]
        got = [event_shape(e) for e in _decode_all(path.read_bytes())]
        assert got == expected, f"{path.name}: decoded events differ from {snap.name}"
        checked_entries += sum(len(m["message_body"]["val_list"]) for kind, args in expected if kind == "Ok"
                               for m in args[0] if isinstance(m["message_body"], dict)
                               and m["message_body"]["_type"] == "GetListResponse")
    assert checked_entries > 1000  # every ListEntry of every GetList.Res was compared


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunked_feeding_gives_the_same_events(shared_vectors: Path, chunk: int) -> None:
    for path in _captures(shared_vectors)[::3]:
        data = path.read_bytes()
        whole = [event_shape(e) for e in _decode_all(data)]
        pieces = [event_shape(e) for e in _decode_all(data, chunk=chunk)]
        assert pieces == whole, path.name


def test_decoded_captures_reencode_to_the_same_file(shared_vectors: Path) -> None:
    """Every decoded file re-encodes byte for byte (widths of odd fields are kept), and decodes the same."""
    total = exact = 0
    for path in _captures(shared_vectors):
        for ev in _decode_all(path.read_bytes()):
            if not isinstance(ev, FileDecoded):
                continue
            total += 1
            again = encode_file(ev.file)
            assert decode_file(again) == ev.file, path.name
            exact += again == ev.payload
    assert total == 180
    assert exact == total, f"only {exact}/{total} files re-encode byte for byte"


def test_broken_capture_yields_only_named_errors(shared_vectors: Path) -> None:
    """DZG mtr1_error is a garbled capture: nothing decodes, every stretch is reported as discarded."""
    data = (shared_vectors / "sml-push" / "DZG_DVS-7420.2V.G2_mtr1_error.bin").read_bytes()
    dec = SmlStreamDecoder()
    events = dec.feed(data) + dec.finish()
    assert events and all(isinstance(e, BytesDiscarded) for e in events)
    assert sum(e.count for e in events) == len(data) == dec.stats.bytes_discarded
    assert dec.stats.files_ok == 0


def test_capture_files_reframed_by_our_encoder_decode_identically(shared_vectors: Path) -> None:
    for path in _captures(shared_vectors)[::4]:
        for ev in _decode_all(path.read_bytes()):
            if isinstance(ev, FileDecoded):
                wire = encode_sml(ev.file)
                again = _decode_all(wire)
                assert len(again) == 1 and isinstance(again[0], FileDecoded)
                assert again[0].file == ev.file


def test_stream_statistics_match_the_snapshot_counts(shared_vectors: Path) -> None:
    """Ok files, checksum-rejected frames and discarded bytes per capture agree with sml-rs."""
    totals = {"ok": 0, "crc": 0}
    for path in _captures(shared_vectors):
        expected = [snap_event(x) for x in parse_snap(path.with_suffix(".expected.snap"))]
        dec = SmlStreamDecoder()
        dec.feed(path.read_bytes())
        dec.finish()
        ok = sum(1 for kind, _ in expected if kind == "Ok")
        crc = sum(1 for kind, args in expected if kind == "Err" and args[0][0] == "CrcMismatch")
        discarded = sum(args[0][1][0][0] for kind, args in expected if kind == "Err" and args[0][0] == "DiscardedBytes")
        assert (dec.stats.files_ok, dec.stats.files_bad_crc, dec.stats.bytes_discarded) == (ok, crc, discarded), path
        assert dec.stats.files_bad_content == 0 and dec.stats.internal_errors == 0
        totals["ok"] += ok
        totals["crc"] += crc
    assert totals == {"ok": 180, "crc": 2}
