"""HDLC frame format type 3 as the wired LMN uses it (LMN-STACK.md 3.1-3.3).

    7E | A0|len_hi len_lo | dst_addr dst_sel | src_addr src_sel | C | HCS | info ... | FCS | 7E

* format field ``1010 S LLLLLLLLLLL``: type 3, segmentation bit S always 0, 11-bit length L counting every
  byte between the flags (L = 9 without info, whose last two bytes are then the FCS; L = 11 + len(info));
* two-byte addresses ``[(addr << 1) | 0][(selector << 1) | 1]`` for both destination and source;
* HCS over format..control, FCS over format..info, both CRC-16/X-25 sent low byte first;
* no byte stuffing: frames are delimited by the length field, 0x7E may occur inside.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bab.crc import crc16_x25

FLAG = 0x7E
GATEWAY_ADDRESS = 0x01  # the SMGW (LMN-STACK.md 3.2)
BROADCAST_ADDRESS = 0x7F
MIN_METER_ADDRESS = 0x02
MAX_METER_ADDRESS = 0x7E
MAX_FRAME_LENGTH = 0x7FF  # 11-bit length field
MAX_INFO_LENGTH = MAX_FRAME_LENGTH - 11


class Selector(enum.IntEnum):
    """Protocol selectors, the low address byte (LMN-STACK.md section 1, uncertainty register #2)."""

    TLS_SML_COSEM = 1
    TLS = 2
    SML_COSEM = 3
    SML_EDL = 4
    SML_SYM = 5
    SYM_HDLC = 6
    TLS_SML_EDL = 7
    TLS_SML_SYM = 8


class BroadcastService(enum.IntEnum):
    """Selectors of UI broadcasts to address 0x7F (LMN-STACK.md 3.5)."""

    ADDRESS_ALLOCATION = 1
    ADDRESS_CHECK = 2  # presence check ("recall")


class Kind(enum.Enum):
    I = "I"  # noqa: E741 - the HDLC name
    RR = "RR"
    RNR = "RNR"
    SNRM = "SNRM"
    DISC = "DISC"
    UA = "UA"
    DM = "DM"
    FRMR = "FRMR"
    UI = "UI"
    UNKNOWN = "?"


# Unnumbered control values with P/F set (LMN-STACK.md 3.3).
SNRM, DISC, UA, DM, FRMR, UI = 0x93, 0x53, 0x73, 0x1F, 0x97, 0x13
_UNNUMBERED = {0x83: Kind.SNRM, 0x43: Kind.DISC, 0x63: Kind.UA, 0x0F: Kind.DM, 0x87: Kind.FRMR, 0x03: Kind.UI}


def control_i(ns: int, nr: int) -> int:
    """Control byte of an I frame with P/F set."""
    return ((nr & 7) << 5) | 0x10 | ((ns & 7) << 1)


def control_rr(nr: int) -> int:
    return ((nr & 7) << 5) | 0x11


def control_rnr(nr: int) -> int:
    return ((nr & 7) << 5) | 0x15


def kind_of(control: int) -> Kind:
    """Classify a control byte with the recognition masks of LMN-STACK.md 3.3."""
    if control & 0x01 == 0:
        return Kind.I
    if control & 0x0F == 0x01:
        return Kind.RR
    if control & 0x0F == 0x05:
        return Kind.RNR
    return _UNNUMBERED.get(control & 0xEF, Kind.UNKNOWN)


class FrameError(ValueError):
    """A byte string that is not a valid LMN HDLC frame (with the reason)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One HDLC frame. Addresses are the 7-bit values; selectors the 7-bit protocol selectors."""

    dst: int
    dst_selector: int
    src: int
    src_selector: int
    control: int
    info: bytes = b""

    @property
    def kind(self) -> Kind:
        return kind_of(self.control)

    @property
    def ns(self) -> int:
        """N(S) of an I frame."""
        return (self.control >> 1) & 7

    @property
    def nr(self) -> int:
        """N(R) of an I, RR or RNR frame."""
        return (self.control >> 5) & 7

    @property
    def poll_final(self) -> bool:
        return bool(self.control & 0x10)

    @property
    def is_broadcast(self) -> bool:
        return self.dst == BROADCAST_ADDRESS

    def encode(self) -> bytes:
        """The frame on the wire, flags included."""
        return encode_frame(self.dst, self.dst_selector, self.src, self.src_selector, self.control, self.info)

    def __str__(self) -> str:
        k = self.kind
        seq = ""
        if k is Kind.I:
            seq = f" ns={self.ns} nr={self.nr}"
        elif k in (Kind.RR, Kind.RNR):
            seq = f" nr={self.nr}"
        info = f" info={len(self.info)}B" if self.info else ""
        return f"{k.value} {self.src:#04x}/{self.src_selector}->{self.dst:#04x}/{self.dst_selector}{seq}{info}"


def encode_frame(dst: int, dst_sel: int, src: int, src_sel: int, control: int, info: bytes = b"") -> bytes:
    """Encode one frame (LMN-STACK.md 3.1); raises FrameError for out-of-range fields."""
    if not (0 <= dst <= 0x7F and 0 <= src <= 0x7F and 0 <= dst_sel <= 0x7F and 0 <= src_sel <= 0x7F):
        raise FrameError("address or selector out of range 0..127")
    if len(info) > MAX_INFO_LENGTH:
        raise FrameError(f"info field of {len(info)} bytes exceeds {MAX_INFO_LENGTH}")
    length = 11 + len(info) if info else 9
    header = bytes((0xA0 | (length >> 8), length & 0xFF, dst << 1, (dst_sel << 1) | 1,
                    src << 1, (src_sel << 1) | 1, control))
    hcs = crc16_x25(header).to_bytes(2, "little")
    if not info:
        return b"\x7e" + header + hcs + b"\x7e"
    body = header + hcs + info
    return b"\x7e" + body + crc16_x25(body).to_bytes(2, "little") + b"\x7e"


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one frame, flags included; raises FrameError naming what is wrong."""
    if len(raw) < 11 or raw[0] != FLAG or raw[-1] != FLAG:
        raise FrameError("not delimited by flags or shorter than the 11-byte minimum")
    length = frame_length(raw[1], raw[2])
    if length is None:
        raise FrameError(f"format field {raw[1]:02X}{raw[2]:02X} is not frame type 3 without segmentation")
    if length + 2 != len(raw):
        raise FrameError(f"length field says {length} bytes between flags, got {len(raw) - 2}")
    frame = parse_body(memoryview(raw)[1:-1])
    if frame is None:
        raise FrameError("bad HCS/FCS or address field")
    return frame


def frame_length(f1: int, f2: int) -> int | None:
    """The length L from the format bytes, or None if they are not a type-3 unsegmented header."""
    if f1 & 0xF8 != 0xA0:
        return None
    length = ((f1 & 0x07) << 8) | f2
    if length < 9 or length == 10:
        return None
    return length


def header_ok(body: bytes | memoryview) -> bool:
    """HCS check over the first 9 bytes between the flags (meaningful when L >= 11)."""
    return crc16_x25(body[:7]) == body[7] | (body[8] << 8)


def parse_body(body: memoryview | bytes, *, hcs_checked: bool = False) -> Frame | None:
    """Parse the bytes between the flags (length already checked); None if a CRC or address is bad.

    ``hcs_checked``: the caller (the stream receiver) has already verified the header CRC."""
    n = len(body)
    if crc16_x25(body[: n - 2]) != body[n - 2] | (body[n - 1] << 8):
        return None
    if n > 9 and not hcs_checked and not header_ok(body):
        return None
    d_hi, d_lo, s_hi, s_lo = body[2], body[3], body[4], body[5]
    # Extension bits: 0 in the upper byte, 1 in the lower (selector) byte of each address.
    if d_hi & 1 or not d_lo & 1 or s_hi & 1 or not s_lo & 1:
        return None
    info = bytes(body[9 : n - 2]) if n > 9 else b""
    return Frame(d_hi >> 1, d_lo >> 1, s_hi >> 1, s_lo >> 1, body[6], info)
