"""Named workarounds for real meters that deviate from SML 1.04 (LMN-STACK.md 6.2, 6.3, 9.1).

Each quirk is one flag; codec functions take a ``quirks`` argument and only deviate from the specification
where a flag says so. The table says what each flag does and whether it is safe to enable by default.

=====================  =====================================================================================
flag                   workaround
=====================  =====================================================================================
ODD_INT_WIDTHS         Accept integers of 3, 5, 6 or 7 bytes (SML only defines 1, 2, 4, 8). EMH sends
                       3-byte status words (``64 1C 01 04``), DZG 3-byte power values. The width is
                       unambiguous from the TL byte: **safe, on by default**.
BARE_U32_TIME          Accept a bare ``Unsigned32`` (TL ``65``) where an SML_Time ``list(2)`` is expected and
                       read it as a secIndex (Holley DTZ541 valTime). A u32 can never be a valid SML_Time,
                       so nothing valid is misread: **safe, on by default**. The decoded
                       :class:`~bab.sml.types.SecIndex` has ``bare=True`` so it re-encodes the same way.
HOLLEY_KERMIT_CRC      Also accept CRC-16/KERMIT (sent high byte first) as message and transport CRC, as
                       libsml and smllib do for Holley DTZ541. It doubles the chance that a corrupted file
                       passes (2/65536 instead of 1/65536), so it is **off by default**; the EDL reader
                       enables it (see ``EDL``), the LMN server side never does.
DZG_INT16_POWER        DZG DVS-7412/74xx meters with serial numbers 42 000 000..48 999 999 and
                       55 000 000..58 999 999 send positive 1-0:16.7.0 power values >= 0x8000 as a 1..3-byte
                       *signed* integer (356.24 W arrives as ``53 8B 28`` = -299.12 W). The codec decodes the
                       wire faithfully; :func:`bab.sml.readings.readings_from_get_list` reinterprets such a
                       1..3-byte value as unsigned **only** when this flag is set *and* the file's server ID
                       (or its 1-0:96.1.0 entry) is a DZG ID in one of those ranges (the rule libsml uses).
                       Newer DZG meters (>= 60 000 000, e.g. DVS-7420) send correct negative values, so the
                       flag must never be applied blindly: auto-detection by serial range only.
=====================  =====================================================================================
"""

from __future__ import annotations

from enum import IntFlag


class Quirk(IntFlag):
    """Workaround flags (see the module docstring for what each one does and why)."""

    NONE = 0
    ODD_INT_WIDTHS = 0x01
    BARE_U32_TIME = 0x02
    HOLLEY_KERMIT_CRC = 0x04
    DZG_INT16_POWER = 0x08

    #: What every decoder does unless told otherwise: the unambiguous, safe workarounds.
    DEFAULT = ODD_INT_WIDTHS | BARE_U32_TIME
    #: What a reader of legacy EDL21/eHZ push data (optical INFO port) should use.
    EDL = ODD_INT_WIDTHS | BARE_U32_TIME | HOLLEY_KERMIT_CRC | DZG_INT16_POWER
    #: No workaround at all: exactly SML 1.04.
    STRICT = 0
