"""bab.sml.transport and bab.sml.stream: transport v1 framing and the sans-I/O streaming decoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bab.crc import crc16_kermit, crc16_x25
from bab.sml import (
    BytesDiscarded,
    FileDecoded,
    FileRejected,
    PublicCloseRes,
    Quirk,
    SmlCrcError,
    SmlFileTooLarge,
    SmlMessage,
    SmlStreamDecoder,
    SmlTransportError,
    SmlTruncated,
    SmlTypeError,
    TransportDecoder,
    decode_transport,
    encode_message,
    encode_transport,
)
from bab.sml.transport import FrameReceived, FrameRejected

ESC = b"\x1b\x1b\x1b\x1b"
payloads = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from([0x1B, 0x1B, 0x1B, 0x00, 0x1A, 0x01]), max_size=40).map(bytes),
)


def test_fill_bytes_and_trailer_layout() -> None:
    frame = encode_transport(bytes(range(1, 13)))
    assert frame[-8:-2] == ESC + b"\x1a\x00"
    frame = encode_transport(bytes(range(1, 12)))
    assert len(frame) % 4 == 0 and frame[-3] == 1 and frame[-10:-8] == b"\x0b\x00"
    assert frame[-2:] == crc16_x25(frame[:-2]).to_bytes(2, "little")


def test_real_mme40_frame_is_reproduced_byte_for_byte(shared_vectors: Path) -> None:
    """LMN-STACK.md 6.1/6.4: the EMH mME40 frames end 1B1B1B1B 1A 01 + X-25 low byte first; our encoder
    re-frames each decoded payload to exactly the captured bytes."""
    data = (shared_vectors / "sml-push" / "EMH_mME40-AE6AKF0K0.bin").read_bytes()
    frames = [e for e in TransportDecoder().feed(data) if isinstance(e, FrameReceived)]
    assert len(frames) == 12
    pos = data.index(ESC + b"\x01\x01\x01\x01")
    for f in frames:
        assert encode_transport(f.payload) == data[pos:pos + f.size]
        pos += f.size


@settings(max_examples=300, deadline=None)
@given(payloads)
def test_transport_roundtrip(payload: bytes) -> None:
    frame = encode_transport(payload)
    assert frame.startswith(ESC + b"\x01\x01\x01\x01")
    assert len(frame) % 4 == 0
    k = frame[-3]
    assert 0 <= k <= 3
    assert decode_transport(frame) == payload
    assert frame[-2:] == crc16_x25(frame[:-2]).to_bytes(2, "little")


def test_escape_sequences_in_the_payload_are_doubled() -> None:
    payload = b"\x76" + ESC + b"\x1b\x00"
    frame = encode_transport(payload)
    assert frame[8:8 + 11] == b"\x76" + ESC + ESC + b"\x1b\x00"
    assert decode_transport(frame) == payload


@pytest.mark.parametrize("tail", [1, 2, 3, 5, 7])
def test_payload_ending_in_1b_bytes_without_fill(tail: int) -> None:
    """A file ending in 1B bytes right before the end escape (sml-rs special case)."""
    payload = b"\x42" * (-tail % 4 + 4) + b"\x1b" * tail
    assert len(payload) % 4 == 0
    frame = encode_transport(payload)
    assert frame[-3] == 0
    assert decode_transport(frame) == payload
    events = TransportDecoder().feed(frame)
    assert events == [FrameReceived(payload, len(frame))]


def test_transport_crc_and_framing_errors() -> None:
    frame = bytearray(encode_transport(b"\x01\x02\x03"))
    bad = bytearray(frame)
    bad[9] ^= 0xFF
    with pytest.raises(SmlCrcError) as e:
        decode_transport(bytes(bad))
    assert e.value.where == "transport"
    k_bad = bytearray(frame)
    k_bad[-3] = 0  # k is covered by the CRC
    with pytest.raises(SmlCrcError):
        decode_transport(bytes(k_bad))
    with pytest.raises(SmlTransportError):
        decode_transport(b"\x00" + bytes(frame))
    with pytest.raises(SmlTruncated):
        decode_transport(bytes(frame[:-8]))
    with pytest.raises(SmlTransportError):
        decode_transport(bytes(frame) + b"\x00")


def _frame_with(payload_raw: bytes, k: int) -> bytes:
    """A frame with arbitrary (unchecked) content and a correct CRC."""
    f = bytearray(ESC + b"\x01\x01\x01\x01" + payload_raw + ESC + bytes((0x1A, k)))
    f += crc16_x25(f).to_bytes(2, "little")
    return bytes(f)


def test_fill_byte_rules() -> None:
    with pytest.raises(SmlTransportError, match="fill"):
        decode_transport(_frame_with(b"\x01\x02\x03\x04", 5))
    with pytest.raises(SmlTransportError, match="zero"):
        decode_transport(_frame_with(b"\x01\x02\x03\x04", 2))
    with pytest.raises(SmlTransportError, match="aligned"):
        decode_transport(_frame_with(b"\x01\x02\x03", 0))
    with pytest.raises(SmlTransportError, match="escape"):
        decode_transport(_frame_with(b"\x01\x02\x03\x04" + ESC + b"\x02\x02\x02\x02", 0))


def test_holley_kermit_transport_crc_only_with_the_quirk() -> None:
    f = bytearray(encode_transport(b"\x01\x02\x03\x04"))
    f[-2:] = crc16_kermit(f[:-2]).to_bytes(2, "big")
    with pytest.raises(SmlCrcError):
        decode_transport(bytes(f))
    assert decode_transport(bytes(f), Quirk.HOLLEY_KERMIT_CRC) == b"\x01\x02\x03\x04"


# --------------------------------------------------------------------------------------------- streaming

GOOD = encode_transport(encode_message(SmlMessage(b"\x01", PublicCloseRes())))


def test_stream_resynchronises_after_garbage_and_counts() -> None:
    garbage = b"\x1b\x1b\x00garbage\x1b\x1b\x1b\x01\x01" * 3
    dec = SmlStreamDecoder()
    events = dec.feed(garbage + GOOD + b"xx" + GOOD) + dec.finish()
    kinds = [type(e) for e in events]
    assert kinds == [BytesDiscarded, FileDecoded, BytesDiscarded, FileDecoded]
    assert events[0].count == len(garbage) and events[2].count == 2  # type: ignore[union-attr]
    assert dec.stats.files_ok == 2 and dec.stats.bytes_discarded == len(garbage) + 2
    assert dec.stats.transport.bytes_received == len(garbage) + 2 + 2 * len(GOOD)


def test_stream_counts_bad_crc_files_and_keeps_going() -> None:
    bad = bytearray(GOOD)
    bad[10] ^= 0x40
    dec = SmlStreamDecoder()
    events = dec.feed(bytes(bad) + GOOD)
    assert isinstance(events[0], FileRejected) and isinstance(events[0].error, SmlCrcError)
    assert isinstance(events[1], FileDecoded)
    assert dec.stats.files_bad_crc == 1 and dec.stats.files_ok == 1


def test_stream_rejects_undecodable_content_with_a_named_error() -> None:
    frame = encode_transport(b"\x76\x01\x02")  # transport fine, SML truncated
    events = SmlStreamDecoder().feed(frame + GOOD)
    assert isinstance(events[0], FileRejected) and isinstance(events[0].error, (SmlTruncated, SmlTypeError))
    assert isinstance(events[1], FileDecoded)


def test_message_crc_errors_count_as_bad_crc() -> None:
    raw = bytearray(encode_message(SmlMessage(b"\x01", PublicCloseRes())))
    raw[-2] ^= 1
    dec = SmlStreamDecoder()
    events = dec.feed(encode_transport(bytes(raw)))
    assert isinstance(events[0], FileRejected) and isinstance(events[0].error, SmlCrcError)
    assert dec.stats.files_bad_crc == 1 and dec.stats.files_bad_content == 1


def test_a_new_start_sequence_abandons_an_unfinished_frame() -> None:
    dec = SmlStreamDecoder()
    events = dec.feed(GOOD[:20] + GOOD)
    assert [type(e) for e in events] == [BytesDiscarded, FileDecoded]
    assert events[0].count == 20  # type: ignore[union-attr]
    assert dec.stats.transport.frames_interrupted == 1


def test_partial_frame_at_end_of_stream_is_reported() -> None:
    dec = SmlStreamDecoder()
    assert dec.feed(GOOD[:-3]) == []
    assert dec.finish() == [BytesDiscarded(len(GOOD) - 3)]
    assert dec.feed(GOOD)[0].file.messages[0].body == PublicCloseRes()  # type: ignore[union-attr]


def test_endless_garbage_keeps_memory_bounded() -> None:
    dec = TransportDecoder(max_frame=1024)
    for i in range(200):
        assert dec.feed(bytes([i % 251]) * 997) == []
        assert dec.buffered <= 7
    assert dec.stats.bytes_discarded >= 200 * 997 - 7


def test_oversized_frame_is_dropped_and_counted() -> None:
    dec = TransportDecoder(max_frame=256)
    events = []
    events += dec.feed(ESC + b"\x01\x01\x01\x01")
    for _ in range(100):
        events += dec.feed(b"\x42" * 50)
        assert dec.buffered <= 256 + 50
    events += dec.feed(GOOD)
    assert isinstance(events[0], FrameRejected) and isinstance(events[0].error, SmlFileTooLarge)
    assert dec.stats.frames_too_large == 1
    assert any(isinstance(e, FrameReceived) for e in events)


def test_one_huge_chunk_is_processed_in_bounded_steps() -> None:
    dec = TransportDecoder(max_frame=4096)
    events = dec.feed(b"\x00" * 1_000_000 + GOOD)
    assert dec.buffered == 0
    assert [type(e) for e in events] == [BytesDiscarded, FrameReceived]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.just(GOOD), st.binary(max_size=30), payloads.map(encode_transport)), max_size=8),
       st.integers(1, 40))
def test_chunking_never_changes_the_events(parts: list[bytes], chunk: int) -> None:
    stream = b"".join(parts)
    whole = TransportDecoder()
    expected = whole.feed(stream) + whole.finish()
    pieces = TransportDecoder()
    got = []
    for i in range(0, len(stream), chunk):
        got += pieces.feed(stream[i:i + chunk])
    got += pieces.finish()
    assert [(type(e), getattr(e, "payload", None), getattr(e, "count", None)) for e in got] == [
        (type(e), getattr(e, "payload", None), getattr(e, "count", None)) for e in expected]
    accounted = sum(e.size for e in got if isinstance(e, (FrameReceived, FrameRejected))) + sum(
        e.count for e in got if isinstance(e, BytesDiscarded))
    assert accounted == len(stream)  # every byte is either in a frame or reported as discarded


def test_resume_point_never_splits_an_escaped_pair() -> None:
    """Regression (found by hypothesis): fed byte by byte, a frame with an escaped 1B1B1B1B followed by a lone
    1B must not be rescanned from inside the escape pair."""
    stream = ESC + b"\x01\x01\x01\x01" + ESC + ESC + b"\x1b\x00\x00\x00\x00"
    whole = TransportDecoder()
    expected = whole.feed(stream) + whole.finish()
    bytewise = TransportDecoder()
    got = [e for i in range(len(stream)) for e in bytewise.feed(stream[i:i + 1])] + bytewise.finish()
    assert got == expected == [BytesDiscarded(len(stream))]
    payload = b"\x42" * 4 + ESC + b"\x1b\x42\x42\x42"
    frame = encode_transport(payload)
    dec = TransportDecoder()
    assert [e for i in range(len(frame)) for e in dec.feed(frame[i:i + 1])] == [FrameReceived(payload, len(frame))]
