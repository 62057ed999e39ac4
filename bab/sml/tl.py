"""SML type-length (TL) encoding of the primitive types (LMN-STACK.md 6.2; TR-03109-1 IVb 6.1 tables 4-5).

A TL byte is ``more(1) | type(3) | length(4)``; types are 000 octet string, 100 boolean, 101 integer,
110 unsigned, 111 list. For non-list types the length counts the TL bytes themselves plus the value bytes,
for lists the number of elements. Longer lengths chain more TL bytes (``more`` set on all but the last,
their type bits 0). ``01`` is an absent optional element (and the empty octet string), ``00`` ends a message.

:class:`Reader` decodes from a bytes buffer; ``write_*`` functions append to a bytearray. Integers are
big-endian; the reader takes any width 1..8 (3/5/6/7 only with :attr:`Quirk.ODD_INT_WIDTHS`), the writers
choose the smallest standard width 1/2/4/8 unless a width is given.
"""

from __future__ import annotations

from .errors import SmlEncodeError, SmlTruncated, SmlTypeError
from .quirks import Quirk

T_OCTET = 0x00
T_BOOL = 0x40
T_INT = 0x50
T_UINT = 0x60
T_LIST = 0x70

OPTIONAL_ABSENT = 0x01
END_OF_MESSAGE = 0x00

MAX_DEPTH = 32  # nesting limit of lists (trees, list types): deeper input is rejected, never a RecursionError
_MAX_TL_BYTES = 8
_STANDARD_WIDTHS = (1, 2, 4, 8)
_STANDARD_WIDTH_SET = frozenset(_STANDARD_WIDTHS)
_ALL_WIDTHS = frozenset(range(1, 9))
_TYPE_NAMES = {T_OCTET: "octet string", T_BOOL: "boolean", T_INT: "integer", T_UINT: "unsigned", T_LIST: "list"}


def type_name(t: int) -> str:
    return _TYPE_NAMES.get(t, f"type 0x{t:02X}")


class Unsigned:
    """An SML unsigned integer whose wire width matters (SML_Value, SML_Status).

    ``width`` is the number of value bytes (1..8) or 0 for "smallest standard width". Equality and hashing
    look at the number only; ``width`` is a wire-format detail kept so a decoded value re-encodes identically.
    """

    __slots__ = ("value", "width")
    signed = False

    def __init__(self, value: int, width: int = 0) -> None:
        self.value = value
        self.width = width

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.value == self.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        w = f", width={self.width}" if self.width else ""
        return f"{type(self).__name__}({self.value}{w})"


class Integer(Unsigned):
    """An SML signed integer whose wire width matters (see :class:`Unsigned`)."""

    __slots__ = ()
    signed = True


# ----------------------------------------------------------------------------------------------- decoding


class Reader:
    """Cursor over one SML file (the unescaped transport payload). Methods advance ``pos``.

    Every malformed input raises an :class:`~bab.sml.errors.SmlError` subclass; nothing else escapes.
    """

    __slots__ = ("buf", "pos", "end", "quirks", "widths")

    def __init__(self, buf: bytes, quirks: Quirk = Quirk.DEFAULT, pos: int = 0, end: int | None = None) -> None:
        self.buf = bytes(buf)
        self.pos = pos
        self.end = len(self.buf) if end is None else end
        self.quirks = quirks
        self.widths = _ALL_WIDTHS if quirks & Quirk.ODD_INT_WIDTHS else _STANDARD_WIDTH_SET

    def peek(self) -> int:
        if self.pos >= self.end:
            raise SmlTruncated(f"input ends at offset {self.pos}")
        return self.buf[self.pos]

    def skip_absent(self) -> bool:
        """Consume an ``01`` (absent optional) and return True, or return False leaving ``pos``."""
        pos = self.pos
        if pos >= self.end:
            raise SmlTruncated(f"input ends at offset {pos}")
        if self.buf[pos] == OPTIONAL_ABSENT:
            self.pos = pos + 1
            return True
        return False

    def tl(self) -> tuple[int, int]:
        """Read a TL field: (type, n) with n = value length in bytes (non-list) or element count (list)."""
        buf = self.buf
        pos = self.pos
        if pos >= self.end:
            raise SmlTruncated(f"input ends at offset {pos}")
        b = buf[pos]
        pos += 1
        t = b & 0x70
        n = b & 0x0F
        if b & 0x80:
            count = 1
            while b & 0x80:
                if pos >= self.end:
                    raise SmlTruncated(f"TL field truncated at offset {pos}")
                b = buf[pos]
                pos += 1
                if b & 0x70:
                    raise SmlTypeError(f"TL continuation byte 0x{b:02X} has type bits set at offset {pos - 1}")
                n = (n << 4) | (b & 0x0F)
                count += 1
                if count > _MAX_TL_BYTES:
                    raise SmlTypeError(f"TL field longer than {_MAX_TL_BYTES} bytes at offset {self.pos}")
            if t != T_LIST:
                n -= count
        elif t != T_LIST:
            n -= 1
        if n < 0:
            if b == END_OF_MESSAGE and t == T_OCTET:
                raise SmlTypeError(f"unexpected end of message (00) at offset {self.pos}")
            raise SmlTypeError(f"TL length smaller than the TL field at offset {self.pos}")
        self.pos = pos
        return t, n

    def list_header(self, expected: int | None = None) -> int:
        pos = self.pos
        if pos < self.end:
            b = self.buf[pos]
            if b & 0xF0 == T_LIST:  # fast path: single-byte list TL
                n = b & 0x0F
                if expected is not None and n != expected:
                    raise SmlTypeError(f"expected a list of {expected} at offset {pos}, got {n} elements")
                self.pos = pos + 1
                return n
        t, n = self.tl()
        if t != T_LIST:
            raise SmlTypeError(f"expected a list at offset {self.pos}, got {type_name(t)}")
        if expected is not None and n != expected:
            raise SmlTypeError(f"expected a list of {expected} at offset {self.pos}, got {n} elements")
        return n

    def _payload(self, n: int) -> int:
        end = self.pos + n
        if end > self.end:
            raise SmlTruncated(f"element of {n} bytes at offset {self.pos} exceeds the input")
        return end

    def octets(self) -> bytes:
        buf = self.buf
        pos = self.pos
        if pos < self.end:
            b = buf[pos]
            if 0x01 <= b <= 0x0F:  # fast path: short octet string
                end = pos + b
                if end > self.end:
                    raise SmlTruncated(f"octet string at offset {pos} exceeds the input")
                self.pos = end
                return buf[pos + 1:end]
        t, n = self.tl()
        if t != T_OCTET:
            raise SmlTypeError(f"expected an octet string at offset {self.pos}, got {type_name(t)}")
        start = self.pos
        end = self._payload(n)
        self.pos = end
        return buf[start:end]

    def opt_octets(self) -> bytes | None:
        if self.skip_absent():
            return None
        return self.octets()

    def boolean(self) -> bool:
        t, n = self.tl()
        if t != T_BOOL or n != 1:
            raise SmlTypeError(f"expected a boolean at offset {self.pos}, got {type_name(t)} of {n} bytes")
        end = self._payload(1)
        v = self.buf[self.pos] != 0
        self.pos = end
        return v

    def _int_body(self, n: int, signed: bool) -> int:
        if n not in self.widths:
            if 1 <= n <= 8:
                raise SmlTypeError(f"{n}-byte integer at offset {self.pos} (needs Quirk.ODD_INT_WIDTHS)")
            raise SmlTypeError(f"integer width {n} at offset {self.pos} is not 1..8")
        start = self.pos
        end = start + n
        if end > self.end:
            raise SmlTruncated(f"integer of {n} bytes at offset {start} exceeds the input")
        self.pos = end
        return int.from_bytes(self.buf[start:end], "big", signed=signed)

    def uint(self, bits: int = 64) -> int:
        """An unsigned integer field of at most ``bits`` bits (the value, any wire width)."""
        buf = self.buf
        pos = self.pos
        if pos < self.end:
            b = buf[pos]
            if b == 0x62 and pos + 2 <= self.end:  # fast path: Unsigned8
                self.pos = pos + 2
                return buf[pos + 1]
        t, n = self.tl()
        if t != T_UINT:
            raise SmlTypeError(f"expected an unsigned integer at offset {self.pos}, got {type_name(t)}")
        v = self._int_body(n, False)
        if v >> bits:
            raise SmlTypeError(f"unsigned value {v} does not fit Unsigned{bits} at offset {self.pos}")
        return v

    def uint_w(self, bits: int = 64) -> tuple[int, int]:
        """Like :meth:`uint` but also returns the wire width (for fields re-encoded with their original width)."""
        t, n = self.tl()
        if t != T_UINT:
            raise SmlTypeError(f"expected an unsigned integer at offset {self.pos}, got {type_name(t)}")
        v = self._int_body(n, False)
        if v >> bits:
            raise SmlTypeError(f"unsigned value {v} does not fit Unsigned{bits} at offset {self.pos}")
        return v, n

    def sint(self, bits: int = 64) -> int:
        """A signed integer field of at most ``bits`` bits (the value, any wire width)."""
        t, n = self.tl()
        if t != T_INT:
            raise SmlTypeError(f"expected a signed integer at offset {self.pos}, got {type_name(t)}")
        v = self._int_body(n, True)
        lim = 1 << (bits - 1)
        if not -lim <= v < lim:
            raise SmlTypeError(f"signed value {v} does not fit Integer{bits} at offset {self.pos}")
        return v

    def opt_uint(self, bits: int = 64) -> int | None:
        if self.skip_absent():
            return None
        return self.uint(bits)

    def opt_sint(self, bits: int = 64) -> int | None:
        if self.skip_absent():
            return None
        return self.sint(bits)

    def status(self) -> Unsigned:
        """SML_Status: Unsigned8/16/32/64, width kept."""
        t, n = self.tl()
        if t != T_UINT:
            raise SmlTypeError(f"expected an unsigned status at offset {self.pos}, got {type_name(t)}")
        return Unsigned(self._int_body(n, False), n)

    def simple_value(self) -> bool | bytes | Unsigned:
        """bool | octet string | Integer | Unsigned (SML_Value without the list type)."""
        t, n = self.tl()
        if t == T_UINT:
            return Unsigned(self._int_body(n, False), n)
        if t == T_INT:
            return Integer(self._int_body(n, True), n)
        if t == T_OCTET:
            start = self.pos
            end = self._payload(n)
            self.pos = end
            return self.buf[start:end]
        if t == T_BOOL:
            if n != 1:
                raise SmlTypeError(f"boolean of {n} bytes at offset {self.pos}")
            end = self._payload(1)
            v = self.buf[self.pos] != 0
            self.pos = end
            return v
        raise SmlTypeError(f"expected a simple value at offset {self.pos}, got {type_name(t)}")

    def end_of_message(self) -> None:
        if self.pos >= self.end:
            raise SmlTruncated("message ends without endOfSmlMsg (00)")
        if self.buf[self.pos] != END_OF_MESSAGE:
            raise SmlTypeError(f"expected endOfSmlMsg (00) at offset {self.pos}, got 0x{self.buf[self.pos]:02X}")
        self.pos += 1

    def skip_element(self, depth: int = 0) -> None:
        """Skip one element of any type (used for bodies carried opaquely)."""
        if depth > MAX_DEPTH:
            raise SmlTypeError(f"nesting deeper than {MAX_DEPTH} at offset {self.pos}")
        t, n = self.tl()
        if t == T_LIST:
            for _ in range(n):
                self.skip_element(depth + 1)
        else:
            self.pos = self._payload(n)


# ----------------------------------------------------------------------------------------------- encoding


def write_tl(out: bytearray, t: int, n: int) -> None:
    """Append a TL field for type ``t``: ``n`` = value length in bytes (non-list) or element count (list)."""
    if t == T_LIST:
        if n < 0x10:
            out.append(t | n)
            return
        total = n
    else:
        if n < 0x0F:
            out.append(t | (n + 1))
            return
        k = 2
        while n + k >= 1 << (4 * k):
            k += 1
        total = n + k
    if total >> (4 * _MAX_TL_BYTES):
        raise SmlEncodeError(f"length {n} too large for an SML TL field")
    nibbles = []
    while total:
        nibbles.append(total & 0x0F)
        total >>= 4
    if t != T_LIST and len(nibbles) < k:
        nibbles.extend([0] * (k - len(nibbles)))
    nibbles.reverse()
    out.append(0x80 | t | nibbles[0])
    for i in range(1, len(nibbles) - 1):
        out.append(0x80 | nibbles[i])
    out.append(nibbles[-1])


def write_octets(out: bytearray, value: bytes | bytearray | None) -> None:
    """Append an octet string; ``None`` and ``b""`` both give ``01`` (absent / empty)."""
    if value is None:
        out.append(OPTIONAL_ABSENT)
        return
    if not isinstance(value, (bytes, bytearray)):
        raise SmlEncodeError(f"expected bytes for an octet string, got {type(value).__name__}")
    n = len(value)
    if n < 0x0F:
        out.append(n + 1)
    else:
        write_tl(out, T_OCTET, n)
    out += value


def write_bool(out: bytearray, value: bool) -> None:
    out += b"\x42\x01" if value else b"\x42\x00"


def _smallest_width(value: int, signed: bool) -> int:
    for w in _STANDARD_WIDTHS:
        if signed:
            lim = 1 << (8 * w - 1)
            if -lim <= value < lim:
                return w
        elif value >> (8 * w) == 0:
            return w
    raise SmlEncodeError(f"{value} does not fit a 64-bit {'signed' if signed else 'unsigned'} integer")


def write_int(out: bytearray, value: int, signed: bool, width: int = 0) -> None:
    """Append an Integer/Unsigned of ``width`` bytes (0: smallest standard width 1/2/4/8)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SmlEncodeError(f"expected an int, got {type(value).__name__}")
    if not signed and value < 0:
        raise SmlEncodeError(f"negative value {value} for an unsigned integer")
    if not width:
        width = _smallest_width(value, signed)
    elif not 1 <= width <= 8:
        raise SmlEncodeError(f"integer width {width} is not 1..8")
    try:
        raw = value.to_bytes(width, "big", signed=signed)
    except OverflowError:
        raise SmlEncodeError(f"{value} does not fit {width} bytes") from None
    out.append((T_INT if signed else T_UINT) | (width + 1))
    out += raw


def write_uint_fixed(out: bytearray, value: int, bits: int, width: int = 0) -> None:
    """An UnsignedN field, range-checked against ``bits``: ``width`` bytes (0: smallest standard width)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >> bits:
        raise SmlEncodeError(f"{value!r} is not an Unsigned{bits}")
    write_int(out, value, False, width)


def write_int_fixed(out: bytearray, value: int, bits: int) -> None:
    """An IntegerN field: smallest standard width, range-checked against ``bits``."""
    lim = 1 << (bits - 1)
    if isinstance(value, bool) or not isinstance(value, int) or not -lim <= value < lim:
        raise SmlEncodeError(f"{value!r} is not an Integer{bits}")
    write_int(out, value, True)


def write_typed_int(out: bytearray, value: Unsigned) -> None:
    write_int(out, value.value, value.signed, value.width)


def write_simple_value(out: bytearray, value: object) -> None:
    if isinstance(value, Unsigned):  # includes Integer
        write_int(out, value.value, value.signed, value.width)
    elif isinstance(value, bool):
        write_bool(out, value)
    elif isinstance(value, (bytes, bytearray)):
        write_octets(out, bytes(value))
    else:
        raise SmlEncodeError(
            f"cannot encode {type(value).__name__} as an SML value (use bool, bytes, Integer or Unsigned)"
        )
