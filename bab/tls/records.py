"""TLS record framing helpers: cutting a TLS byte stream at record boundaries, and a tolerant summary of a
ClientHello for diagnostics (which versions, suites and groups the peer offered).

BAB sends one TLS record per HDLC I-frame (LMN-STACK.md section 3.3 and 4), so the endpoints hand out their
output record by record. Pure functions and a small buffer class, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HEADER_LEN = 5
CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23

ALERT_DESCRIPTIONS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    116: "certificate_required",
}
ALERT_CODES = {name: code for code, name in ALERT_DESCRIPTIONS.items()}


def alert_record(description: str, *, fatal: bool = True, version: bytes = b"\x03\x03") -> bytes:
    """A plaintext alert record (used before the cipher spec changed)."""
    return bytes([CONTENT_ALERT]) + version + b"\x00\x02" + bytes([2 if fatal else 1, ALERT_CODES[description]])


def alert_version(hello: ClientHelloSummary | None, stream: bytes = b"") -> bytes:
    """The record version for a plaintext alert answering a client's first flight.

    Before a ServerHello no version is agreed; the answer uses the highest version both sides speak as far as
    the client announced it: the ClientHello's ``legacy_version`` capped at TLS 1.2 (a TLS 1.0 client reads
    03 01, a TLS 1.2 or 1.3 client 03 03). Without a parsed ClientHello, the version of the client's first
    record header if it is an SSL 3.0 to TLS 1.2 one, else 03 03.
    """
    if hello is not None:
        version = min(max(hello.legacy_version, 0x0300), 0x0303)
        return version.to_bytes(2, "big")
    if len(stream) >= 3 and stream[1] == 3 and stream[2] <= 3:
        return bytes(stream[1:3])
    return b"\x03\x03"


def is_plaintext_alert(record: bytes) -> bool:
    """True for an unencrypted alert record (2-byte body); an encrypted one is longer (IV/nonce and tag)."""
    return len(record) == HEADER_LEN + 2 and record[0] == CONTENT_ALERT


class RecordSplitter:
    """Accumulates a TLS byte stream and hands out whole records; a partial record stays buffered."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def records(self) -> list[bytes]:
        """All complete records buffered so far, each with its 5-byte header."""
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER_LEN:
            length = int.from_bytes(buf[pos + 3 : pos + 5], "big")
            end = pos + HEADER_LEN + length
            if end > len(buf):
                break
            out.append(bytes(buf[pos:end]))
            pos = end
        del buf[:pos]
        return out

    def take_all(self) -> bytes:
        """Everything buffered, whole records or not."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def __len__(self) -> int:
        return len(self._buf)


def split_records(data: bytes) -> tuple[list[bytes], bytes]:
    """``(whole records, leftover partial record bytes)``."""
    splitter = RecordSplitter()
    splitter.feed(data)
    return splitter.records(), splitter.take_all()


@dataclass
class ClientHelloSummary:
    """What a ClientHello offered (only what BAB needs to explain a rejection)."""

    legacy_version: int
    cipher_suites: list[int] = field(default_factory=list)
    groups: list[int] | None = None  # None: no supported_groups extension
    supported_versions: list[int] | None = None  # None: no supported_versions extension
    max_fragment_length: int | None = None  # RFC 6066 code (1 = 512)
    compression_methods: bytes = b""
    session_id: bytes = b""  # the session the client asks to resume (empty: a full handshake)
    truncated_hmac: bool = False  # the RFC 6066 truncated_hmac extension (type 4) is offered
    session_ticket: bytes | None = None  # the RFC 5077 SessionTicket extension's data (b"": asks for one)

    def offers_tls12(self) -> bool:
        if self.supported_versions is not None:
            return 0x0303 in self.supported_versions
        return self.legacy_version >= 0x0303


def parse_client_hello(stream: bytes) -> ClientHelloSummary | None:
    """Summarise the ClientHello at the start of a client's byte stream.

    Returns None while the message is incomplete (it may span several plaintext records); raises
    ValueError when the stream does not start with a well-formed ClientHello.
    """
    records, rest = split_records(stream)
    body = bytearray()
    for rec in records:
        if rec[0] != CONTENT_HANDSHAKE or rec[1] != 3 or len(rec) - HEADER_LEN > 16384:
            raise ValueError("not a TLS handshake record")
        body += rec[HEADER_LEN:]
        if len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big"):
            break
    else:
        if rest and (rest[0] != CONTENT_HANDSHAKE or (len(rest) > 1 and rest[1] != 3)):
            raise ValueError("not a TLS handshake record")
        if len(rest) >= HEADER_LEN and int.from_bytes(rest[3:5], "big") > 16384:
            raise ValueError("record too long")
    if body and body[0] != 1:
        raise ValueError("first handshake message is not a ClientHello")
    if len(body) < 4:
        return None
    msg_len = int.from_bytes(body[1:4], "big")
    if msg_len > 65536:
        raise ValueError("ClientHello too long")
    if len(body) < 4 + msg_len:
        return None
    try:
        return _parse_hello_body(bytes(body[4 : 4 + msg_len]))
    except IndexError:
        raise ValueError("malformed ClientHello") from None


def _parse_hello_body(b: bytes) -> ClientHelloSummary:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(b):
            raise ValueError("short ClientHello")
        chunk = b[pos : pos + n]
        pos += n
        return chunk

    def u8() -> int:
        return take(1)[0]

    def u16() -> int:
        return int.from_bytes(take(2), "big")

    hello = ClientHelloSummary(legacy_version=u16())
    take(32)  # random
    hello.session_id = take(u8())
    suites = take(u16())
    hello.cipher_suites = [int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites) - 1, 2)]
    hello.compression_methods = take(u8())
    if pos == len(b):
        return hello
    ext_len = u16()  # read before taking pos: the block starts after its length field
    ext_end = pos + ext_len
    while pos + 4 <= ext_end:
        ext_type = u16()
        data = take(u16())
        if ext_type == 10 and len(data) >= 2:  # supported_groups
            n = int.from_bytes(data[:2], "big")
            hello.groups = [int.from_bytes(data[2 + i : 4 + i], "big") for i in range(0, n - 1, 2)]
        elif ext_type == 43 and data:  # supported_versions
            hello.supported_versions = [int.from_bytes(data[1 + i : 3 + i], "big") for i in range(0, data[0] - 1, 2)]
        elif ext_type == 1 and len(data) == 1:  # max_fragment_length
            hello.max_fragment_length = data[0]
        elif ext_type == 4:  # truncated_hmac
            hello.truncated_hmac = True
        elif ext_type == 35:  # session_ticket
            hello.session_ticket = data
    return hello
