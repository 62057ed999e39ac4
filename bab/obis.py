"""OBIS codes (IEC 62056-61): the six-byte names A-B:C.D.E*F of meter quantities.

Accepts the usual spellings: ``1-0:1.8.0``, ``1-0:1.8.0*255``, ``1-0:1.8.0.255``, ``1.8.0`` (A-B default to 1-0,
F to 255) and hex ``0100010800FF``. Formats as ``1-0:1.8.0*255``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TEXT = re.compile(
    r"^\s*(?:(?P<a>\d{1,3})-(?P<b>\d{1,3}):)?(?P<c>\d{1,3})\.(?P<d>\d{1,3})\.(?P<e>\d{1,3})"
    r"(?:[*.&](?P<f>\d{1,3}))?\s*$"
)
_HEX = re.compile(r"^\s*(?:0x)?([0-9A-Fa-f]{12})\s*$")


@dataclass(frozen=True, order=True, slots=True)
class Obis:
    """An OBIS code as six byte values."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    def __post_init__(self) -> None:
        for v in (self.a, self.b, self.c, self.d, self.e, self.f):
            if not 0 <= v <= 255:
                raise ValueError(f"OBIS group value {v} out of range 0..255")

    @classmethod
    def parse(cls, text: str) -> Obis:
        """Parse an OBIS code from text; raises ValueError with the accepted forms."""
        m = _TEXT.match(text)
        if m:
            g = m.groupdict()
            return cls(
                int(g["a"] or 1), int(g["b"] or 0), int(g["c"]), int(g["d"]), int(g["e"]),
                int(g["f"]) if g["f"] is not None else 255,
            )
        m = _HEX.match(text)
        if m:
            return cls.from_bytes(bytes.fromhex(m.group(1)))
        raise ValueError(f"not an OBIS code: {text!r} (expected e.g. '1-0:1.8.0*255' or '0100010800FF')")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Obis:
        if len(raw) != 6:
            raise ValueError(f"an OBIS code has 6 bytes, got {len(raw)}")
        return cls(*raw)

    def to_bytes(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"
