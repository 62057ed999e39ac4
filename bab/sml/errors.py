"""Named errors of the SML 1.04 codec (LMN-STACK.md section 6).

Every problem the decoder finds in its input is an :class:`SmlError` subclass, so callers can catch exactly
``SmlError`` around a decode and nothing else (the fuzz tests hold the decoder to that).
"""

from __future__ import annotations


class SmlError(ValueError):
    """Base class of everything the SML codec raises for bad input or unencodable values."""


class SmlTruncated(SmlError):
    """The input ended in the middle of an element, message or transport frame."""


class SmlTypeError(SmlError):
    """An element has the wrong TL type or length, a list the wrong element count, a choice an unknown tag,
    a value is out of range for its field, or the nesting is deeper than the decoder allows."""


class SmlCrcError(SmlError):
    """A message CRC (6.2) or transport CRC (6.1) does not match."""

    def __init__(self, where: str, received: int, computed: int) -> None:
        super().__init__(f"{where} CRC mismatch: received 0x{received:04X}, computed 0x{computed:04X}")
        self.where = where
        self.received = received
        self.computed = computed


class SmlTransportError(SmlError):
    """Transport v1 framing is broken: missing start, invalid escape, misaligned end, bad fill bytes."""


class SmlFileTooLarge(SmlTransportError):
    """A transport frame grew beyond the configured maximum size without an end sequence."""


class SmlUnsupportedMessage(SmlError):
    """A message body tag this codec does not know (not in SML 1.04 table 6.3)."""

    def __init__(self, tag: int) -> None:
        super().__init__(f"unsupported SML message tag 0x{tag:04X}")
        self.tag = tag


class SmlEncodeError(SmlError):
    """A value cannot be encoded (wrong Python type, out of range for its SML type or width)."""
