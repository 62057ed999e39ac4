"""SML attention numbers (SML_Attention.Res ``attentionNo``), LMN-STACK.md section 6.3.

An attention number is a 6-byte octet string ``81 81 C7 C7 xx yy``. :class:`AttentionCode` names the values of
the SML 1.04 table; ``E0 00``..``FC FF`` are application specific and have no name.
"""

from __future__ import annotations

from enum import IntEnum

_PREFIX = b"\x81\x81\xc7\xc7"


class AttentionCode(IntEnum):
    """The standard attention numbers; the int value is the 6-byte number read big-endian."""

    OK = 0x8181C7C7FD00  # positive acknowledgement
    JOB_EXECUTED_LATER = 0x8181C7C7FD01  # order accepted, will be executed later / job running
    UNKNOWN_ERROR = 0x8181C7C7FE00
    UNKNOWN_SML_ID = 0x8181C7C7FE01
    NOT_AUTHORIZED = 0x8181C7C7FE02  # username / password wrong
    SERVER_ID_UNAVAILABLE = 0x8181C7C7FE03
    REQ_FILE_ID_UNAVAILABLE = 0x8181C7C7FE04
    ATTRIBUTE_NOT_WRITABLE = 0x8181C7C7FE05  # one or more destination attributes cannot be written
    ATTRIBUTE_NOT_READABLE = 0x8181C7C7FE06  # one or more destination attributes cannot be read
    MEASURING_POINT_UNREACHABLE = 0x8181C7C7FE07  # communication with the measuring point disrupted
    RAWDATA_NOT_INTERPRETABLE = 0x8181C7C7FE08
    VALUE_OUT_OF_RANGE = 0x8181C7C7FE09
    ORDER_NOT_EXECUTED = 0x8181C7C7FE0A  # e.g. the tree path points to a non-existent element
    CHECKSUM_WRONG = 0x8181C7C7FE0B
    BROADCAST_NOT_SUPPORTED = 0x8181C7C7FE0C
    UNEXPECTED_MESSAGE = 0x8181C7C7FE0D
    UNKNOWN_OBJECT_IN_PROFILE = 0x8181C7C7FE0E
    UNSUPPORTED_DATA_TYPE = 0x8181C7C7FE0F
    OPTIONAL_ELEMENT_NOT_SUPPORTED = 0x8181C7C7FE10
    PROFILE_HAS_NO_ENTRY = 0x8181C7C7FE11
    END_BEFORE_START = 0x8181C7C7FE12  # requested profile range ends before it starts
    NO_ENTRIES_IN_RANGE = 0x8181C7C7FE13
    FILE_ENDED_WITHOUT_CLOSE = 0x8181C7C7FE14
    PROFILE_TEMPORARILY_UNAVAILABLE = 0x8181C7C7FE15

    def to_bytes(self) -> bytes:  # type: ignore[override]
        """The 6-byte attentionNo octet string."""
        return int(self).to_bytes(6, "big")

    @property
    def is_error(self) -> bool:
        """True for the ``FE xx`` error numbers."""
        return (self >> 8) & 0xFF == 0xFE


def attention_name(number: bytes) -> str:
    """A readable name for an attentionNo: the enum name, ``APPLICATION_SPECIFIC_xxxx`` or ``UNKNOWN_<hex>``."""
    if len(number) == 6:
        value = int.from_bytes(number, "big")
        try:
            return AttentionCode(value).name
        except ValueError:
            pass
        if number[:4] == _PREFIX and 0xE000 <= value & 0xFFFF <= 0xFCFF:
            return f"APPLICATION_SPECIFIC_{value & 0xFFFF:04X}"
    return f"UNKNOWN_{number.hex().upper()}"


def is_application_specific(number: bytes) -> bool:
    """True for ``81 81 C7 C7 E0 00``..``81 81 C7 C7 FC FF``."""
    return len(number) == 6 and number[:4] == _PREFIX and 0xE000 <= int.from_bytes(number[4:], "big") <= 0xFCFF
