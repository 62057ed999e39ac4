"""HDLC frame codec and receiver: the LMN vectors byte for byte, resynchronisation, drops."""

from __future__ import annotations

import random

import pytest

from bab.crc import crc16_kermit, crc16_x25, crc16_x25_reference
from bab.hdlc.frame import (
    DISC,
    DM,
    SNRM,
    UA,
    UI,
    Frame,
    FrameError,
    Kind,
    control_i,
    control_rr,
    decode_frame,
    encode_frame,
)
from bab.hdlc.receiver import FrameReceiver

EMH_ID = bytes.fromhex("0A01454D4800004AF1FD")
RECORD_3A = bytes([0x3A, 0x19]) + (EMH_ID + bytes(4)) * 2 + bytes(2)


def load_vectors(path):
    vectors = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        name, hexbytes = line.split(":", 1)
        vectors[name.strip()] = bytes.fromhex(hexbytes.replace(" ", ""))
    return vectors


def test_crc_check_values_and_fast_path_matches_definition():
    assert crc16_x25(b"123456789") == 0x906E
    assert crc16_kermit(b"123456789") == 0x2189
    rng = random.Random(1)
    for n in range(300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert crc16_x25(data) == crc16_x25_reference(data)


def test_real_meter_frame_decodes_and_reencodes():
    raw = bytes.fromhex(
        "7EA02B0203740313251 93A190A01454D4800004AF1FD000000000A01454D4800004AF1FD00000000 0000B3887E".replace(" ", "")
    )
    f = decode_frame(raw)
    assert (f.dst, f.dst_selector, f.src, f.src_selector) == (0x01, 1, 0x3A, 1)
    assert f.kind is Kind.UI and f.control == UI
    assert f.info[0] == 0x3A and f.info[1] == 25 and f.info[2:12] == EMH_ID
    assert f.encode() == raw


def test_all_shared_lmn_vectors_roundtrip(shared_vectors):
    vectors = load_vectors(shared_vectors / "lmn-frames.txt")
    hdlc = {k: v for k, v in vectors.items() if v[:1] == b"\x7e"}
    assert len(hdlc) >= 12
    for name, raw in hdlc.items():
        frame = decode_frame(raw)
        assert frame.encode() == raw, name
    assert decode_frame(vectors["SMGW SNRM sel=1 -> 0x3A"]).kind is Kind.SNRM
    i_frame = decode_frame(vectors["SMGW I(N(S)=0,N(R)=0) 'ABC'"])
    assert (i_frame.kind, i_frame.ns, i_frame.nr, i_frame.info) == (Kind.I, 0, 0, b"ABC")
    reply = decode_frame(vectors["meter I(N(S)=0,N(R)=1) 'XY'"])
    assert (reply.ns, reply.nr, reply.info) == (0, 1, b"XY")


def test_builders_match_spec_examples():
    assert encode_frame(0x3A, 1, 0x01, 1, SNRM).hex().upper() == "7EA0097403020393716 87E".replace(" ", "")
    assert encode_frame(0x01, 1, 0x3A, 1, UA).hex().upper() == "7EA00902037403731 5F77E".replace(" ", "")
    assert encode_frame(0x01, 1, 0x3A, 1, DM).hex().upper() == "7EA009020374031F7F5E7E"
    assert encode_frame(0x3A, 1, 0x01, 1, DISC).hex().upper() == "7EA00974030203537DAE7E"
    assert encode_frame(0x3A, 1, 0x01, 1, control_rr(0)).hex().upper() == "7EA00974030203116BCF7E"
    assert encode_frame(0x3A, 1, 0x01, 1, control_i(0, 0), b"ABC").hex().upper() == "7EA00E740302031033C241424394967E"
    assert encode_frame(0x7F, 1, 0x01, 1, UI).hex().upper() == "7EA009FE030203138 42A7E".replace(" ", "")


@pytest.mark.parametrize("info_len", [0, 1, 100, 2036])
def test_roundtrip_sizes(info_len):
    info = bytes((i * 7) & 0xFF for i in range(info_len))
    f = Frame(0x22, 3, 0x01, 3, control_i(5, 3) if info else control_rr(2), info)
    assert decode_frame(f.encode()) == f


def test_encode_rejects_oversize_and_bad_fields():
    with pytest.raises(FrameError):
        encode_frame(1, 1, 2, 1, UI, bytes(2037))
    with pytest.raises(FrameError):
        encode_frame(0x80, 1, 2, 1, UI)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x7e\x7e", bytes.fromhex("7EA0097403020393716 97E".replace(" ", "")),  # bad CRC
     bytes.fromhex("7EB009740302039371687E"),  # not type 3 / segmented
     bytes.fromhex("7EA00A7403020393716 87E".replace(" ", ""))],  # length disagrees
)
def test_decode_rejects_broken_frames(raw):
    with pytest.raises(FrameError):
        decode_frame(raw)


def _frames(n, rng):
    out = []
    for i in range(n):
        info = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
        if rng.random() < 0.3:
            info = info + b"\x7e\x7e" + info  # flags inside the info field: no stuffing on the LMN
        out.append(Frame(rng.randrange(2, 0x7F), rng.choice([1, 2, 3, 6]), 1, 1,
                         control_i(i % 8, 0) if info else control_rr(i % 8), info))
    return out


def test_receiver_splits_joined_and_split_reads():
    rng = random.Random(7)
    frames = _frames(50, rng)
    stream = b"".join(f.encode() for f in frames)
    rx = FrameReceiver()
    got = []
    pos = 0
    while pos < len(stream):
        n = rng.randrange(1, 40)
        got += rx.feed(stream[pos : pos + n])
        pos += n
    assert got == frames
    assert rx.counters.bad_fcs == rx.counters.bad_hcs == 0


def test_receiver_shared_and_repeated_flags_and_garbage():
    a = Frame(0x3A, 1, 1, 1, SNRM)
    b = Frame(0x3A, 1, 1, 1, control_i(0, 0), b"\x7e\x7eABC")
    shared = a.encode() + b.encode()[1:]  # one flag closes a and opens b
    rx = FrameReceiver()
    assert rx.feed(b"\x00\x13garbage\x7e" + b"\x7e\x7e" + shared + b"\x7e\x7e\x7e") == [a, b]
    assert rx.counters.garbage_bytes >= 9


def test_receiver_drops_corrupted_frames_and_keeps_following_ones():
    good = Frame(0x10, 3, 1, 3, control_i(1, 2), b"hello world")
    bad = bytearray(good.encode())
    bad[15] ^= 0x40  # info corrupted -> FCS error
    bad_header = bytearray(good.encode())
    bad_header[4] ^= 0x02  # address corrupted -> HCS error
    rx = FrameReceiver()
    assert rx.feed(bytes(bad) + bytes(bad_header) + good.encode()) == [good]
    assert rx.counters.bad_fcs == 1 and rx.counters.bad_hcs == 1


def test_receiver_gives_up_truncated_frame_after_idle_gap():
    long_frame = Frame(0x10, 3, 1, 3, control_i(0, 0), bytes(500)).encode()
    good = Frame(0x10, 3, 1, 3, control_rr(1))
    rx = FrameReceiver(idle_timeout=0.05)
    assert rx.feed(long_frame[:40], now=0.0) == []
    # The rest never comes; after a pause a new frame arrives and must not be swallowed.
    assert rx.feed(good.encode(), now=1.0) == [good]
    assert rx.counters.idle_drops >= 1


def test_receiver_memory_bounded_on_endless_garbage():
    rng = random.Random(3)
    rx = FrameReceiver()
    for i in range(2000):
        rx.feed(bytes(rng.randrange(256) for _ in range(64)), now=i * 0.001)
        assert rx.pending <= 2049 + 64
    # A frame that looks like a header with a huge length but bad HCS does not stall the stream.
    rx.feed(b"\x7e\xa7\xff" + bytes(20), now=10.0)
    good = Frame(0x10, 3, 1, 3, control_rr(1))
    assert rx.feed(good.encode(), now=10.001) == [good]
