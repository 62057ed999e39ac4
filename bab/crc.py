"""CRC-16 variants used on the LMN and by legacy meters.

* CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF): HDLC HCS/FCS (LMN-STACK.md 3.1) and the SML
  message and transport CRCs (6.1, 6.2). Transmitted low byte first.
* CRC-16/KERMIT (same polynomial, init 0, no xorout): what Holley DTZ541 meters put into SML files (a quirk).
"""

from __future__ import annotations


def _table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE_8408 = _table(0x8408)


def crc16_x25(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/X-25 of ``data`` (check value for b"123456789" is 0x906E)."""
    table = _TABLE_8408
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def crc16_kermit(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/KERMIT of ``data`` (check value for b"123456789" is 0x2189)."""
    table = _TABLE_8408
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc
