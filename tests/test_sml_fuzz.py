"""Fuzzing the SML decoders: random and mutated inputs.

* The low-level decoders (decode_file, decode_transport, decode_sml) raise nothing but SmlError subclasses.
* The streaming decoder never raises, terminates, accounts for every byte and keeps its buffer bounded.

The default run is short; ``pytest -m slow tests/test_sml_fuzz.py`` runs the long version.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sml_strategies import files

from bab.sml import (
    BytesDiscarded,
    FileDecoded,
    FileRejected,
    Quirk,
    SmlError,
    SmlFile,
    SmlStreamDecoder,
    decode_file,
    decode_sml,
    decode_transport,
    encode_file,
    encode_sml,
)
from bab.sml.transport import FrameReceived, FrameRejected, TransportDecoder

QUIRKS = st.sampled_from([Quirk.STRICT, Quirk.DEFAULT, Quirk.EDL])


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """``base`` with a few random byte flips, insertions, deletions and truncation."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(0, len(data))))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2 and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == 3:
            del data[pos:]
    return bytes(data)


sml_payloads = files.map(encode_file)
sml_frames = files.map(encode_sml)
inputs = st.one_of(st.binary(max_size=200), mutated(sml_payloads), mutated(sml_frames))


def _low_level(data: bytes, quirks: Quirk) -> None:
    for fn in (decode_file, decode_transport, decode_sml):
        with contextlib.suppress(SmlError):
            fn(data, quirks)  # type: ignore[operator]


def _stream(chunks: list[bytes], quirks: Quirk, max_frame: int = 512) -> None:
    dec = SmlStreamDecoder(quirks, max_frame=max_frame)
    events = []
    total = 0
    for c in chunks:
        total += len(c)
        events += dec.feed(c)
        assert dec.buffered <= max_frame + 8
    events += dec.finish()
    assert dec.buffered == 0
    assert dec.stats.internal_errors == 0
    sizes = 0
    for e in events:
        assert isinstance(e, (FileDecoded, FileRejected, BytesDiscarded))
        if isinstance(e, FileRejected):
            assert isinstance(e.error, SmlError)
            sizes += e.size
        elif isinstance(e, BytesDiscarded):
            sizes += e.count
    # every byte is in a decoded frame, a rejected frame or a discarded stretch
    t = TransportDecoder(quirks, max_frame=max_frame)
    tev = [x for c in chunks for x in t.feed(c)] + t.finish()
    assert sum(x.size for x in tev if isinstance(x, (FrameReceived, FrameRejected))) + sum(
        x.count for x in tev if isinstance(x, BytesDiscarded)) == total


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs, QUIRKS)
def test_low_level_decoders_raise_only_sml_errors(data: bytes, quirks: Quirk) -> None:
    _low_level(data, quirks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=60), mutated(sml_frames), sml_frames), max_size=6), QUIRKS)
def test_stream_decoder_never_raises(chunks: list[bytes], quirks: Quirk) -> None:
    _stream(chunks, quirks)


@settings(max_examples=60, deadline=None)
@given(files)
def test_valid_files_survive_a_noisy_line(f: SmlFile) -> None:
    wire = encode_sml(f)
    dec = SmlStreamDecoder(max_frame=1 << 20)
    events = dec.feed(b"\x1b\x1b\x1b\x00\x01noise" + wire + b"\x1b\x1b" + wire) + dec.finish()
    decoded = [e.file for e in events if isinstance(e, FileDecoded)]
    assert decoded == [f, f]


def test_every_capture_survives_single_byte_corruption(shared_vectors: Path) -> None:
    """Flip each byte of a real capture in turn (step 7): the stream decoder never raises or loses count."""
    data = (shared_vectors / "sml-push" / "EMH_eHZ-HW8E2A5L0EK2P_2.bin").read_bytes()
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        _stream([bytes(bad)], Quirk.EDL, max_frame=4096)
        _low_level(bytes(bad), Quirk.EDL)


def _random_mutation(rnd: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(0, 8)):
        op = rnd.randint(0, 4)
        pos = rnd.randint(0, len(out))
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rnd.randint(0, 255)
        elif op == 1:
            out[pos:pos] = rnd.randbytes(rnd.randint(1, 6))
        elif op == 2:
            del out[pos:pos + rnd.randint(1, 16)]
        elif op == 3:
            out[pos:pos] = rnd.choice([b"\x1b" * 4, b"\x1b" * 4 + b"\x01" * 4, b"\x1b" * 4 + b"\x1a"])
        else:
            del out[pos:]
    return bytes(out)


def _corpus(shared: Path) -> list[bytes]:
    """Real frames from the captures plus encoder-made frames (seeded: the run is reproducible)."""
    frames: list[bytes] = []
    for path in sorted((shared / "sml-push").glob("*.bin")):
        data = path.read_bytes()
        frames.append(data[:1500])
        frames.extend(encode_sml(e.file) for e in SmlStreamDecoder().feed(data)[:3] if isinstance(e, FileDecoded))
    return frames


@pytest.mark.slow
def test_low_level_decoders_long_fuzz(shared_vectors: Path) -> None:
    """200 000 seeded random mutations of real and encoder-made frames (plain loop: constant memory)."""
    rnd = random.Random(20261121)
    corpus = _corpus(shared_vectors)
    for _ in range(200_000):
        data = _random_mutation(rnd, rnd.choice(corpus)) if rnd.random() < 0.9 else rnd.randbytes(rnd.randint(0, 300))
        _low_level(data, rnd.choice([Quirk.STRICT, Quirk.DEFAULT, Quirk.EDL]))
        payload = data[8:-8]
        with contextlib.suppress(SmlError):
            decode_file(payload, Quirk.EDL)


@pytest.mark.slow
def test_stream_decoder_long_fuzz(shared_vectors: Path) -> None:
    """20 000 seeded random streams of mutated frames, garbage and good frames, in random chunk sizes."""
    rnd = random.Random(4711)
    corpus = _corpus(shared_vectors)
    for _ in range(20_000):
        parts = []
        for _ in range(rnd.randint(1, 12)):
            r = rnd.random()
            base = rnd.choice(corpus)
            if r < 0.3:
                parts.append(base)
            elif r < 0.8:
                parts.append(_random_mutation(rnd, base))
            else:
                parts.append(rnd.randbytes(rnd.randint(0, 700)))
        stream = b"".join(parts)
        size = rnd.choice([1, 3, 64, 1000, len(stream) or 1])
        _stream([stream[i:i + size] for i in range(0, len(stream), size)], rnd.choice([Quirk.DEFAULT, Quirk.EDL]),
                rnd.choice([16, 64, 512, 4096]))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(inputs, QUIRKS)
def test_low_level_decoders_hypothesis_long(data: bytes, quirks: Quirk) -> None:
    _low_level(data, quirks)


@pytest.mark.slow
def test_all_captures_every_byte_flipped(shared_vectors: Path) -> None:
    for path in sorted((shared_vectors / "sml-push").glob("*.bin")):
        data = path.read_bytes()
        for i in range(len(data)):
            bad = bytearray(data)
            bad[i] ^= 0xFF
            _stream([bytes(bad)], Quirk.EDL, max_frame=4096)
