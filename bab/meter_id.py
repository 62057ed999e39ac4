"""Meter identification per E DIN 43863-5 (LMN-STACK.md section 8).

The human-readable meter ID is 14 characters ``S MMM BB NNNNNNNN``: Sparte (one digit or letter, 1 = electricity),
three-letter manufacturer FLAG, two-digit fabrication block, eight-digit fabrication number. Its binary SML
server ID has 10 bytes: ``0A | S | MMM | BB | NNNNNNNN as uint32 BE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^([0-9A-Z])([A-Z]{3})(\d{2})(\d{8})$")


@dataclass(frozen=True, slots=True)
class MeterId:
    """A DIN 43863-5 meter ID such as ``1EMH0004911613``."""

    sparte: str
    manufacturer: str
    block: int
    number: int

    @classmethod
    def parse(cls, text: str) -> MeterId:
        m = _PATTERN.match(text.strip().replace(" ", "").upper())
        if not m:
            raise ValueError(
                f"not a DIN 43863-5 meter ID: {text!r} (expected 14 characters 'S MMM BB NNNNNNNN', "
                "e.g. '1EMH0004911613')"
            )
        return cls(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))

    @classmethod
    def from_server_id(cls, server_id: bytes) -> MeterId:
        if len(server_id) != 10 or server_id[0] != 0x0A:
            raise ValueError(f"not a type-0x0A server ID: {server_id.hex()}")
        s = server_id[1]
        sparte = str(s) if s < 10 else chr(s)
        return cls(sparte, server_id[2:5].decode("ascii"), server_id[5], int.from_bytes(server_id[6:10], "big"))

    @property
    def server_id(self) -> bytes:
        """The 10-byte SML server ID."""
        s = int(self.sparte) if self.sparte.isdigit() else ord(self.sparte)
        return (
            bytes((0x0A, s)) + self.manufacturer.encode("ascii") + bytes((self.block,))
            + self.number.to_bytes(4, "big")
        )

    def __str__(self) -> str:
        return f"{self.sparte}{self.manufacturer}{self.block:02d}{self.number:08d}"
