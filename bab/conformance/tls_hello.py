"""Raw TLS records for the TLS server cases: a ClientHello with exactly the versions, suites, compression
methods, groups and extensions a case needs (RFC 5246 7.4.1.2, RFC 8422, RFC 6066), and a reader of the
meter's first flight (ServerHello, Certificate, ServerKeyExchange, ServerHelloDone) or its alert."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from bab.tls.records import split_records

#: The TR-03116-3 suites of the LMN, and the groups (TLS NamedGroup codes).
TR_SUITES = {0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
             0xC023: "ECDHE-ECDSA-AES128-SHA256", 0xC024: "ECDHE-ECDSA-AES256-SHA384"}
TR_GROUPS = {26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 23: "secp256r1", 24: "secp384r1"}
OTHER_GROUPS = {29: "x25519", 30: "x448", 25: "secp521r1"}
OTHER_SUITES = {0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305", 0xC009: "ECDHE-ECDSA-AES128-SHA",
                0xC00A: "ECDHE-ECDSA-AES256-SHA", 0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
                0x009C: "RSA-AES128-GCM-SHA256", 0x002F: "RSA-AES128-SHA"}
#: The signature algorithms of the LMN (TaSK's LMN common specification: ECDSA with SHA-256/384/512).
TR_SIGALGS = (0x0403, 0x0503, 0x0603)
#: Signature algorithms outside it: ECDSA with SHA-1 and SHA-224, RSA PKCS#1 and PSS with SHA-256.
OTHER_SIGALGS = {0x0203: "ecdsa_sha1", 0x0303: "ecdsa_sha224", 0x0401: "rsa_pkcs1_sha256",
                 0x0804: "rsa_pss_rsae_sha256"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
          40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate", 45: "certificate_expired",
          47: "illegal_parameter", 48: "unknown_ca", 50: "decode_error", 51: "decrypt_error",
          70: "protocol_version", 71: "insufficient_security", 80: "internal_error", 110: "unsupported_extension"}


def _ext(code: int, body: bytes) -> bytes:
    return struct.pack(">HH", code, len(body)) + body


def build_client_hello(*, client_random: bytes, session_id: bytes = b"", version: int = 0x0303,
                       suites: tuple[int, ...] = tuple(TR_SUITES), groups: tuple[int, ...] = tuple(TR_GROUPS),
                       sigalgs: tuple[int, ...] | None = TR_SIGALGS, compression: tuple[int, ...] = (0,),
                       extensions: list[tuple[int, bytes]] | tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """The body of a ClientHello handshake message: supported_groups, ec_point_formats (uncompressed) and
    signature_algorithms (left out with ``sigalgs=None``), then ``extensions`` as (code, body) pairs."""
    exts = b""
    if groups:
        exts += _ext(10, struct.pack(">H", 2 * len(groups)) + b"".join(struct.pack(">H", g) for g in groups))
        exts += _ext(11, b"\x01\x00")
    if sigalgs is not None:
        exts += _ext(13, struct.pack(">H", 2 * len(sigalgs)) + b"".join(struct.pack(">H", a) for a in sigalgs))
    for code, ext_body in extensions:
        exts += _ext(code, ext_body)
    body = struct.pack(">H", version) + client_random + bytes((len(session_id),)) + session_id
    body += struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", c) for c in suites)
    body += bytes((len(compression),)) + bytes(compression)
    body += struct.pack(">H", len(exts)) + exts
    return body


def client_hello(*, version: int = 0x0303, record_version: int = 0x0301, suites: tuple[int, ...] = tuple(TR_SUITES),
                 groups: tuple[int, ...] = tuple(TR_GROUPS), sigalgs: tuple[int, ...] | None = TR_SIGALGS,
                 compression: tuple[int, ...] = (0,), max_fragment_length: int | None = None,
                 supported_versions: tuple[int, ...] | None = None, extra: bytes = b"",
                 random: bytes | None = None) -> bytes:
    """One ClientHello record (``max_fragment_length``: the RFC 6066 code, 1 = 512 bytes; ``random``: the
    32-byte client random, fresh by default; ``extra``: raw extension bytes appended)."""
    exts: list[tuple[int, bytes]] = []
    if max_fragment_length is not None:
        exts.append((1, bytes((max_fragment_length,))))
    if supported_versions is not None:
        exts.append((43, bytes((2 * len(supported_versions),)) + b"".join(struct.pack(">H", v)
                                                                          for v in supported_versions)))
    body = build_client_hello(client_random=random if random is not None else os.urandom(32), version=version,
                              suites=suites, groups=groups, sigalgs=sigalgs, compression=compression,
                              extensions=exts)
    if extra:  # raw extension bytes: patch them into the extensions block
        head, block = _split_extensions(body)
        block += extra
        body = head + struct.pack(">H", len(block)) + block
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return struct.pack(">BHH", 22, record_version, len(hs)) + hs


def _split_extensions(body: bytes) -> tuple[bytes, bytes]:
    """A ClientHello body cut into everything before the extensions length, and the extensions block."""
    q = 34
    q += 1 + body[q]
    q += 2 + struct.unpack(">H", body[q:q + 2])[0]
    q += 1 + body[q]
    return body[:q], body[q + 2:]


@dataclass
class ServerFlight:
    """What the meter answered to a ClientHello."""

    records: list[bytes] = field(default_factory=list)
    alert: str | None = None
    server_hello: bytes | None = None  # the ServerHello body
    certificates: list[bytes] = field(default_factory=list)  # DER, in order
    key_exchange_group: int | None = None
    done: bool = False  # ServerHelloDone seen
    extensions: dict[int, bytes] = field(default_factory=dict)

    @property
    def version(self) -> int | None:
        return struct.unpack(">H", self.server_hello[:2])[0] if self.server_hello else None

    @property
    def suite(self) -> int | None:
        if not self.server_hello:
            return None
        sid_len = self.server_hello[34]
        return struct.unpack(">H", self.server_hello[35 + sid_len:37 + sid_len])[0]

    @property
    def compression(self) -> int | None:
        if not self.server_hello:
            return None
        return self.server_hello[37 + self.server_hello[34]]

    @property
    def largest_record(self) -> int:
        return max((len(r) - 5 for r in self.records), default=0)

    def summary(self) -> str:
        if self.alert:
            return f"alert {self.alert}"
        if self.server_hello:
            return (f"ServerHello version {self.version:04x} suite {self.suite:04x}"
                    f"{' group ' + str(self.key_exchange_group) if self.key_exchange_group else ''}")
        return "no answer"


def server_hello_extensions(body: bytes) -> dict[int, bytes]:
    """The extensions of a ServerHello body (RFC 5246 7.4.1.3), code -> data."""
    out: dict[int, bytes] = {}
    q = 38 + body[34]  # version, random, session ID, suite, compression
    if q + 2 <= len(body):
        end = q + 2 + struct.unpack(">H", body[q:q + 2])[0]
        q += 2
        while q + 4 <= end:
            code, ln = struct.unpack(">HH", body[q:q + 4])
            out[code] = body[q + 4:q + 4 + ln]
            q += 4 + ln
    return out


def certificate_list(body: bytes) -> list[bytes]:
    """The DER certificates of a Certificate message body (RFC 5246 7.4.2), in order."""
    out = []
    q, end = 3, 3 + int.from_bytes(body[:3], "big")
    while q + 3 <= end:
        ln = int.from_bytes(body[q:q + 3], "big")
        out.append(body[q + 3:q + 3 + ln])
        q += 3 + ln
    return out


def read_flight(data: bytes) -> ServerFlight:
    """Parse the meter's answer (never raises: what cannot be parsed is left out)."""
    out = ServerFlight()
    records, _rest = split_records(bytes(data))
    out.records = records
    hs = bytearray()
    for r in records:
        if len(r) < 5:
            continue
        kind, payload = r[0], r[5:]
        if kind == 21 and len(payload) >= 2 and out.alert is None:
            out.alert = ALERTS.get(payload[1], f"alert {payload[1]}")
        elif kind == 22:
            hs += payload
    p = 0
    while p + 4 <= len(hs):
        t, n = hs[p], int.from_bytes(hs[p + 1:p + 4], "big")
        body = bytes(hs[p + 4:p + 4 + n])
        if len(body) < n:
            break
        p += 4 + n
        try:
            if t == 2:
                out.server_hello = body
                out.extensions = server_hello_extensions(body)
            elif t == 11:
                out.certificates = certificate_list(body)
            elif t == 12 and body[0] == 3:
                out.key_exchange_group = struct.unpack(">H", body[1:3])[0]
            elif t == 14:
                out.done = True
        except (IndexError, struct.error):
            break
    return out


class RawTlsClient:
    """Client layer: sends raw bytes (one record per I frame), collects the meter's answer until an alert or
    ServerHelloDone, or until ``patience`` idle polls passed."""

    def __init__(self, records: list[bytes], patience: int = 300) -> None:
        self.records = list(records)
        self.patience = patience
        self.received = bytearray()
        self.lost: str | None = None
        self._idle = 0

    def data_to_send(self, max_size: int) -> bytes:
        if self.records:
            return self.records.pop(0)[:max_size]
        self._idle += 1
        return b""

    def data_received(self, data: bytes) -> None:
        self._idle = 0
        self.received += data

    def flight(self) -> ServerFlight:
        return read_flight(bytes(self.received))

    def is_done(self) -> bool:
        if self.records:
            return False
        f = self.flight()
        return f.alert is not None or f.done or self._idle > self.patience

    def connection_lost(self, reason: str | None) -> None:
        self.lost = reason
