"""A scriptable TLS 1.2 client for the TLS server cases: the tester's counterpart of the TLS test tool behind
BSI's TaSK. A stock client (OpenSSL, wolfSSL) will not offer DEFLATE or truncated_hmac, restrict its
signature_algorithms to one entry, send a renegotiating ClientHello on demand, or show which extensions the
server selected; the TaSK cases need all of that, and every message on the wire as evidence.

Implements (RFC 5246, RFC 8422, RFC 5289) the four TR-03116-3 LMN suites, ECDHE-ECDSA with AES-128/256 in
GCM or CBC-HMAC-SHA256/384, on the five TR curves: a full handshake with client authentication (or the empty
Certificate message of a client without one), the abbreviated handshake of a resumed session (session ID,
RFC 5246 7.3; or session ticket, RFC 5077), encrypt_then_mac (RFC 7366), extended_master_secret (RFC 7627),
a renegotiating ClientHello after the handshake, and application data for an inner client layer.

Sans-I/O like every layer here: :class:`TlsProbe` is an HDLC client layer (``data_to_send``/``data_received``/
``is_done``/``connection_lost``) that the tester's station drives; no clock and no I/O inside. What the server
did is kept on the object (``server_extensions``, ``alerts``, ``established``, ``resumed``, ``ticket``...), and
the first problem found on the server's side ends the probe with ``error`` set (it then sends a fatal alert).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bab.tls import keys
from bab.tls.records import ALERT_CODES, ALERT_DESCRIPTIONS, RecordSplitter

from .tls_hello import (
    TR_GROUPS,
    TR_SIGALGS,
    TR_SUITES,
    build_client_hello,
    certificate_list,
    server_hello_extensions,
)

_CURVES: dict[int, keys.Curve] = {c.tls_group_id: c for c in keys.Curve}  # TLS group code -> curve
_HASHES: dict[int, type[hashes.HashAlgorithm]] = {4: hashes.SHA256, 5: hashes.SHA384, 6: hashes.SHA512}


@dataclass(frozen=True)
class SuiteParams:
    """What one TR suite needs: AES key length, AEAD or CBC, the MAC/PRF hash."""

    key_len: int
    aead: bool
    prf: str  # "sha256" or "sha384"; for CBC also the HMAC hash

    @property
    def mac_len(self) -> int:
        return 0 if self.aead else hashlib.new(self.prf).digest_size


SUITES = {0xC02B: SuiteParams(16, True, "sha256"), 0xC02C: SuiteParams(32, True, "sha384"),
          0xC023: SuiteParams(16, False, "sha256"), 0xC024: SuiteParams(32, False, "sha384")}
CBC_SUITES = tuple(c for c, p in SUITES.items() if not p.aead)
assert set(SUITES) == set(TR_SUITES)


def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF, P_hash (RFC 5246 section 5)."""
    out, a = b"", label + seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + label + seed, hash_name).digest()
    return out[:length]


@dataclass
class ProbeSession:
    """What a resumption needs: the session (ID or ticket) and its master secret."""

    session_id: bytes
    master_secret: bytes
    suite: int
    ems: bool
    ticket: bytes | None = None


@dataclass
class ProbeOptions:
    """What the probe offers and does. Defaults: the TR parameters, nothing else (TaSK: "no further
    extensions which are not required to conduct the handshake")."""

    suites: tuple[int, ...] = tuple(TR_SUITES)
    groups: tuple[int, ...] = tuple(TR_GROUPS)
    sigalgs: tuple[int, ...] = TR_SIGALGS
    compression: tuple[int, ...] = (0,)
    encrypt_then_mac: bool = False
    extended_master_secret: bool = False
    truncated_hmac: bool = False
    accept_truncated_hmac: bool = False  # go on when the server echoes truncated_hmac on an AEAD suite
    session_ticket: bool = False  # offer (empty) session_ticket; with ``resume`` holding a ticket, send it
    resume: ProbeSession | None = None
    key_pem: bytes | None = None  # client key; None: answer a CertificateRequest with an empty Certificate
    cert_der: bytes | None = None  # what the Certificate message carries (may be a deliberately broken one)
    renegotiate: bool = False  # after the handshake (and the inner layer's exchange): send a new ClientHello
    hold: bool = False  # keep the connection open until the server ends it (the duration case)
    patience: int = 300  # idle polls to wait for an answer before giving up (and after a renegotiation)


class ProbeError(Exception):
    """The server broke the protocol (the message says how)."""


@dataclass
class _Keys:
    key: bytes
    iv: bytes
    mac_key: bytes


class TlsProbe:
    """The probe as an HDLC client layer (see the module docstring). ``inner``: an optional client layer whose
    bytes go as application data once the handshake is complete (e.g. an SML request file)."""

    def __init__(self, options: ProbeOptions, inner: Any = None) -> None:
        self.o = options
        self.inner = inner
        self._splitter = RecordSplitter()
        self._out = bytearray()
        self._transcript = bytearray()
        self._hs_buf = bytearray()
        self._client_random = os.urandom(32)
        self._session_id = b""
        if options.resume is not None:
            self._session_id = options.resume.session_id or (os.urandom(32) if options.resume.ticket else b"")
        self._idle = 0
        self._read_keys: _Keys | None = None
        self._write_keys: _Keys | None = None
        self._read_seq = 0
        self._write_seq = 0
        self._suite: SuiteParams | None = None
        self._server_random = b""
        self._master = b""
        self._ecdh: ec.EllipticCurvePrivateKey | None = None
        self._premaster = b""
        self._client_verify = b""
        self._reneg_sent = False
        self._reneg_idle = 0
        # What the server did:
        self.server_hello: bytes | None = None
        self.server_version: int | None = None
        self.suite: int | None = None
        self.compression: int | None = None
        self.server_session_id = b""
        self.server_extensions: dict[int, bytes] = {}
        self.certificates: list[bytes] = []
        self.ske_group: int | None = None
        self.ske_sigalg: int | None = None
        self.certificate_request: dict[str, Any] | None = None
        self.ticket: bytes | None = None
        self.ticket_lifetime_hint: int | None = None
        self.alerts: list[tuple[str, str]] = []  # (level, description), in order
        self.established = False
        self.resumed = False
        self.app_data = bytearray()
        self.renegotiation_answer: str | None = None  # what followed our renegotiating ClientHello
        self.closed_by_peer = False  # close_notify received, or the connection lost after the handshake
        self.lost: str | None = None
        self.error: str | None = None
        self.sent_messages: list[str] = []  # the handshake messages, by name, for diagnostics
        self.received_messages: list[str] = []
        self.wire: list[tuple[str, bytes]] = []  # ("tx" | "rx", record), as sent and received (bounded)
        self.bytes_sent = 0  # handed to the HDLC station (0: the connection never opened)
        self._start()

    # --- the client layer ----------------------------------------------------------------------------------

    def data_to_send(self, max_size: int) -> bytes:
        if not self._out and self.established and self.error is None:
            self._after_handshake(max_size)
        if not self._out:
            self._idle += 1
            if self._reneg_sent:
                self._reneg_idle += 1
            return b""
        chunk = bytes(self._out[:max_size])
        del self._out[:max_size]
        self.bytes_sent += len(chunk)
        return chunk

    def data_received(self, data: bytes) -> None:
        self._idle = 0
        self._splitter.feed(data)
        for record in self._splitter.records():
            self._log("rx", record)
            if self.error is not None or self.closed_by_peer:
                return
            try:
                self._record(record)
            except ProbeError as exc:
                self._fail(str(exc))
            except Exception as exc:  # whatever the meter sends (a malformed certificate, a bad point...)
                self._fail(f"cannot process the server's record: {type(exc).__name__} {exc}")

    def is_done(self) -> bool:
        if self._out:
            return False
        if self.error is not None or self.closed_by_peer or self._fatal_alert():
            return True
        if not self.established:
            return self._idle > self.o.patience
        if self.o.hold:
            return False
        if self.inner is not None and not self.inner.is_done():
            return self._idle > self.o.patience
        if self.o.renegotiate:
            return self.renegotiation_answer is not None
        return True

    def connection_lost(self, reason: str | None) -> None:
        self.lost = reason
        if self.established:
            self.closed_by_peer = True
        if self.inner is not None:
            self.inner.connection_lost(reason)

    def _log(self, direction: str, record: bytes) -> None:
        if len(self.wire) < 48:
            self.wire.append((direction, record[:512]))

    # --- summaries ------------------------------------------------------------------------------------------

    @property
    def alert(self) -> str | None:
        """The first alert the server sent (its description)."""
        return self.alerts[0][1] if self.alerts else None

    def session(self) -> ProbeSession | None:
        """The session to resume with (after a complete handshake)."""
        if not self.established or self.suite is None:
            return None
        return ProbeSession(self.server_session_id, self._master, self.suite, 23 in self.server_extensions,
                            self.ticket)

    def summary(self) -> str:
        parts = []
        if self.server_hello is not None:
            parts.append(f"ServerHello suite {self.suite:04x}" + (f" group {self.ske_group}" if self.ske_group else ""))
        if self.established:
            parts.append("resumed" if self.resumed else "handshake complete")
        if self.alerts:
            parts.append("alert " + ", ".join(f"{lvl} {d}" for lvl, d in self.alerts))
        if self.error:
            parts.append(f"probe error: {self.error}")
        if self.lost:
            parts.append(f"connection ended: {self.lost}")
        return "; ".join(parts) or "no answer"

    # --- sending --------------------------------------------------------------------------------------------

    def _start(self) -> None:
        o = self.o
        exts: list[tuple[int, bytes]] = []
        if o.encrypt_then_mac:
            exts.append((22, b""))
        if o.extended_master_secret:
            exts.append((23, b""))
        if o.truncated_hmac:
            exts.append((4, b""))
        if o.session_ticket:
            ticket = o.resume.ticket if o.resume is not None and o.resume.ticket else b""
            exts.append((35, ticket))
        body = build_client_hello(client_random=self._client_random, session_id=self._session_id,
                                  suites=o.suites, groups=o.groups, sigalgs=o.sigalgs, compression=o.compression,
                                  extensions=exts)
        self._send_handshake(1, body, "ClientHello")

    def _send_handshake(self, kind: int, body: bytes, name: str) -> None:
        msg = bytes([kind]) + len(body).to_bytes(3, "big") + body
        self._transcript += msg
        self._send_record(22, msg)
        self.sent_messages.append(name)

    def _send_record(self, content: int, payload: bytes) -> None:
        for i in range(0, max(len(payload), 1), 16384):
            frag = payload[i:i + 16384]
            if self._write_keys is not None:
                frag = self._protect(content, frag)
            record = struct.pack(">BHH", content, 0x0303, len(frag)) + frag
            self._out += record
            self._log("tx", record)

    def _send_alert(self, description: str) -> None:
        self._send_record(21, bytes([2, ALERT_CODES.get(description, 80)]))

    def _fail(self, reason: str) -> None:
        self.error = reason
        self._send_alert("handshake_failure" if not self.established else "unexpected_message")

    def _fatal_alert(self) -> bool:
        return any(level == "fatal" for level, _ in self.alerts)

    def _after_handshake(self, max_size: int) -> None:
        if self.inner is not None and not self.inner.is_done():
            data = self.inner.data_to_send(max(max_size - 64, 64))
            if data:
                self._send_record(23, data)
            return
        if self.o.renegotiate and not self._reneg_sent:
            self._reneg_sent = True
            exts = []
            if 0xFF01 in self.server_extensions:  # secure renegotiation (RFC 5746 3.5) was agreed
                exts.append((0xFF01, bytes([len(self._client_verify)]) + self._client_verify))
            body = build_client_hello(client_random=os.urandom(32), session_id=b"", suites=self.o.suites,
                                      groups=self.o.groups, sigalgs=self.o.sigalgs, compression=(0,),
                                      extensions=exts)
            msg = b"\x01" + len(body).to_bytes(3, "big") + body
            self._send_record(22, msg)
            self.sent_messages.append("ClientHello (renegotiation)")
            return
        if self._reneg_sent and self.renegotiation_answer is None and self._reneg_idle > self.o.patience:
            self.renegotiation_answer = "ignored"

    # --- receiving ------------------------------------------------------------------------------------------

    def _record(self, record: bytes) -> None:
        content, payload = record[0], record[5:]
        if self._read_keys is not None:
            payload = self._unprotect(content, record[1:3], payload)
        if content == 21:
            if len(payload) != 2:
                raise ProbeError(f"an alert of {len(payload)} bytes")
            level = {1: "warning", 2: "fatal"}.get(payload[0], str(payload[0]))
            desc = ALERT_DESCRIPTIONS.get(payload[1], f"alert {payload[1]}")
            self.alerts.append((level, desc))
            self.received_messages.append(f"Alert {level} {desc}")
            if self._reneg_sent and self.renegotiation_answer is None:
                self.renegotiation_answer = f"alert {level} {desc}"
            if desc == "close_notify":
                self.closed_by_peer = True
            return
        if content == 20:
            if payload != b"\x01":
                raise ProbeError("a malformed ChangeCipherSpec")
            if self._hs_buf:
                raise ProbeError("ChangeCipherSpec inside a handshake message")
            self.received_messages.append("ChangeCipherSpec")
            self._read_keys = self._keys(server=True)
            self._read_seq = 0
            return
        if content == 22:
            self._hs_buf += payload
            while len(self._hs_buf) >= 4:
                n = int.from_bytes(self._hs_buf[1:4], "big")
                if len(self._hs_buf) < 4 + n:
                    break
                msg = bytes(self._hs_buf[:4 + n])
                del self._hs_buf[:4 + n]
                self._handshake(msg)
            return
        if content == 23:
            if not self.established:
                raise ProbeError("application data before the handshake completed")
            self.app_data += payload
            self.received_messages.append(f"ApplicationData {len(payload)} bytes")
            if self.inner is not None:
                self.inner.data_received(payload)
            return
        raise ProbeError(f"a record of unknown content type {content}")

    def _handshake(self, msg: bytes) -> None:
        kind, body = msg[0], msg[4:]
        names = {0: "HelloRequest", 2: "ServerHello", 4: "NewSessionTicket", 11: "Certificate",
                 12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone", 20: "Finished"}
        self.received_messages.append(names.get(kind, f"handshake {kind}"))
        if self.established:
            if self._reneg_sent and self.renegotiation_answer is None:
                self.renegotiation_answer = f"renegotiated ({names.get(kind, kind)})"
                return
            raise ProbeError(f"a {names.get(kind, kind)} after the handshake")
        if kind == 20:
            self._server_finished(msg)
            return
        self._transcript += msg
        if kind == 2:
            self._server_hello(body)
        elif kind == 11:
            self.certificates = certificate_list(body)
        elif kind == 12:
            self._server_key_exchange(body)
        elif kind == 13:
            n = body[0]
            types = list(body[1:1 + n])
            q = 1 + n
            m = struct.unpack(">H", body[q:q + 2])[0]
            algs = [struct.unpack(">H", body[q + 2 + i:q + 4 + i])[0] for i in range(0, m, 2)]
            self.certificate_request = {"types": types, "sigalgs": algs}
        elif kind == 14:
            self._client_flight()
        elif kind == 4:
            self.ticket_lifetime_hint = struct.unpack(">I", body[:4])[0]
            ln = struct.unpack(">H", body[4:6])[0]
            self.ticket = body[6:6 + ln]
        else:
            raise ProbeError(f"unexpected handshake message {kind}")

    def _server_hello(self, body: bytes) -> None:
        self.server_hello = body
        self.server_version = struct.unpack(">H", body[:2])[0]
        self._server_random = body[2:34]
        sid_len = body[34]
        self.server_session_id = body[35:35 + sid_len]
        q = 35 + sid_len
        self.suite = struct.unpack(">H", body[q:q + 2])[0]
        self.compression = body[q + 2]
        self.server_extensions = server_hello_extensions(body)
        if self.server_version != 0x0303:
            raise ProbeError(f"ServerHello version {self.server_version:04x}, not TLS 1.2")
        if self.suite not in SUITES or self.suite not in self.o.suites:
            raise ProbeError(f"the server chose suite {self.suite:04x}, which was not offered")
        if self.compression not in self.o.compression:
            raise ProbeError(f"the server chose compression {self.compression}, which was not offered")
        if self.compression != 0:
            raise ProbeError(f"the server chose compression method {self.compression}")
        offered = {22: self.o.encrypt_then_mac, 23: self.o.extended_master_secret, 4: self.o.truncated_hmac,
                   35: self.o.session_ticket}
        for code in self.server_extensions:
            if code in offered and not offered[code]:
                raise ProbeError(f"the server sent extension {code}, which was not offered")
        self._suite = SUITES[self.suite]
        if 4 in self.server_extensions and not (self.o.accept_truncated_hmac and self._suite.aead):
            raise ProbeError("the server selected truncated_hmac (RFC 6066 7), which TR-03116-3 forbids")
        r = self.o.resume
        if r is not None and self.server_session_id and self.server_session_id == self._session_id:
            if self.suite != r.suite:
                raise ProbeError("the server resumed the session with another suite")
            self.resumed = True
            self._master = r.master_secret

    def _server_key_exchange(self, body: bytes) -> None:
        if body[0] != 3:
            raise ProbeError(f"ServerKeyExchange curve type {body[0]} (named_curve expected)")
        group = struct.unpack(">H", body[1:3])[0]
        plen = body[3]
        point = body[4:4 + plen]
        params = body[:4 + plen]
        sigalg = struct.unpack(">H", body[4 + plen:6 + plen])[0]
        slen = struct.unpack(">H", body[6 + plen:8 + plen])[0]
        signature = body[8 + plen:8 + plen + slen]
        self.ske_group, self.ske_sigalg = group, sigalg
        if group not in self.o.groups or group not in _CURVES:
            raise ProbeError(f"the server chose group {group}, which was not offered")
        if sigalg not in self.o.sigalgs:
            raise ProbeError(f"ServerKeyExchange signed with {sigalg:04x}, which was not offered")
        if not self.certificates:
            raise ProbeError("ServerKeyExchange without a server certificate")
        public = keys.load_certificate(self.certificates[0]).public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or sigalg & 0xFF != 3 or sigalg >> 8 not in _HASHES:
            raise ProbeError(f"ServerKeyExchange signature {sigalg:04x} does not fit an ECDSA certificate")
        try:
            public.verify(signature, self._client_random + self._server_random + params,
                          ec.ECDSA(_HASHES[sigalg >> 8]()))
        except InvalidSignature:
            raise ProbeError("the ServerKeyExchange signature does not verify with the server certificate") from None
        curve = _CURVES[group].ec_curve()
        peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        self._ecdh = ec.generate_private_key(curve)
        self._premaster = self._ecdh.exchange(ec.ECDH(), peer)

    def _client_flight(self) -> None:
        if self._ecdh is None:
            raise ProbeError("ServerHelloDone without a ServerKeyExchange")
        send_cert = self.certificate_request is not None
        if send_cert:
            chain = b""
            if self.o.cert_der is not None and self.o.key_pem is not None:
                chain = len(self.o.cert_der).to_bytes(3, "big") + self.o.cert_der
            self._send_handshake(11, len(chain).to_bytes(3, "big") + chain,
                                 "Certificate" if chain else "Certificate (empty)")
        point = self._ecdh.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
        self._send_handshake(16, bytes([len(point)]) + point, "ClientKeyExchange")
        assert self._suite is not None
        if 23 in self.server_extensions:
            session_hash = hashlib.new(self._suite.prf, bytes(self._transcript)).digest()
            self._master = prf(self._premaster, b"extended master secret", session_hash, 48, self._suite.prf)
        else:
            self._master = prf(self._premaster, b"master secret", self._client_random + self._server_random, 48,
                               self._suite.prf)
        if send_cert and self.o.cert_der is not None and self.o.key_pem is not None:
            key = serialization.load_pem_private_key(self.o.key_pem, None) if self.o.key_pem.startswith(b"-----") \
                else serialization.load_der_private_key(self.o.key_pem, None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            offered = self.certificate_request["sigalgs"] if self.certificate_request else []
            alg = next((a for a in (0x0403, 0x0503, 0x0603) if a in offered), 0x0403)
            sig = key.sign(bytes(self._transcript), ec.ECDSA(_HASHES[alg >> 8]()))
            self._send_handshake(15, struct.pack(">HH", alg, len(sig)) + sig, "CertificateVerify")
        self._change_cipher_and_finish()

    def _change_cipher_and_finish(self) -> None:
        assert self._suite is not None
        self._send_record(20, b"\x01")
        self.sent_messages.append("ChangeCipherSpec")
        self._write_keys = self._keys(server=False)
        self._write_seq = 0
        digest = hashlib.new(self._suite.prf, bytes(self._transcript)).digest()
        self._client_verify = prf(self._master, b"client finished", digest, 12, self._suite.prf)
        self._send_handshake(20, self._client_verify, "Finished")

    def _server_finished(self, msg: bytes) -> None:
        body = msg[4:]
        if self._read_keys is None:
            raise ProbeError("Finished before ChangeCipherSpec")
        assert self._suite is not None
        digest = hashlib.new(self._suite.prf, bytes(self._transcript)).digest()
        expected = prf(self._master, b"server finished", digest, 12, self._suite.prf)
        if not hmac.compare_digest(body, expected):
            raise ProbeError("the server's Finished does not verify")
        self._transcript += msg
        if self.resumed:  # abbreviated handshake: the server finished first, now we
            self._change_cipher_and_finish()
        elif self.o.resume is not None and self.certificate_request is None and not self.certificates:
            raise ProbeError("an abbreviated handshake for a session we did not offer")
        self.established = True

    # --- record protection ----------------------------------------------------------------------------------

    def _keys(self, *, server: bool) -> _Keys:
        s = self._suite
        assert s is not None
        if self.resumed and not self._master:
            raise ProbeError("no master secret for the resumed session")
        mac, key, iv = s.mac_len, s.key_len, 4 if s.aead else 16
        block = prf(self._master, b"key expansion", self._server_random + self._client_random,
                    2 * (mac + key + iv), s.prf)
        cm, sm = block[:mac], block[mac:2 * mac]
        ck, sk = block[2 * mac:2 * mac + key], block[2 * mac + key:2 * (mac + key)]
        civ, siv = block[2 * (mac + key):2 * (mac + key) + iv], block[2 * (mac + key) + iv:]
        return _Keys(sk, siv, sm) if server else _Keys(ck, civ, cm)

    @property
    def _etm(self) -> bool:
        return 22 in self.server_extensions and self._suite is not None and not self._suite.aead

    def _protect(self, content: int, plain: bytes) -> bytes:
        k, s = self._write_keys, self._suite
        assert k is not None and s is not None
        seq = struct.pack(">Q", self._write_seq)
        self._write_seq += 1
        if s.aead:
            aad = seq + struct.pack(">BHH", content, 0x0303, len(plain))
            return seq + AESGCM(k.key).encrypt(k.iv + seq, plain, aad)
        iv = os.urandom(16)
        if self._etm:
            padded = _pad(plain)
            enc = _cbc(k.key, iv).encryptor()
            body = iv + enc.update(padded) + enc.finalize()
            mac = hmac.new(k.mac_key, seq + struct.pack(">BHH", content, 0x0303, len(body)) + body,
                           s.prf).digest()
            return body + mac
        mac = hmac.new(k.mac_key, seq + struct.pack(">BHH", content, 0x0303, len(plain)) + plain, s.prf).digest()
        enc = _cbc(k.key, iv).encryptor()
        return iv + enc.update(_pad(plain + mac)) + enc.finalize()

    def _unprotect(self, content: int, version: bytes, data: bytes) -> bytes:
        k, s = self._read_keys, self._suite
        assert k is not None and s is not None
        seq = struct.pack(">Q", self._read_seq)
        self._read_seq += 1
        if s.aead:
            if len(data) < 24:
                raise ProbeError("a protected record too short for GCM")
            explicit, body = data[:8], data[8:]
            aad = seq + bytes([content]) + version + struct.pack(">H", len(body) - 16)
            try:
                return AESGCM(k.key).decrypt(k.iv + explicit, body, aad)
            except InvalidTag:
                raise ProbeError("a record from the server does not authenticate (GCM tag)") from None
        if self._etm:
            body, mac = data[:-s.mac_len], data[-s.mac_len:]
            want = hmac.new(k.mac_key, seq + bytes([content]) + version + struct.pack(">H", len(body)) + body,
                            s.prf).digest()
            if not hmac.compare_digest(mac, want):
                raise ProbeError("a record from the server does not authenticate (encrypt-then-MAC)")
            dec = _cbc(k.key, body[:16]).decryptor()
            return _unpad(dec.update(body[16:]) + dec.finalize())
        if len(data) < 32 or len(data) % 16:
            raise ProbeError("a CBC record of a bad length")
        dec = _cbc(k.key, data[:16]).decryptor()
        plain = _unpad(dec.update(data[16:]) + dec.finalize())
        body, mac = plain[:-s.mac_len], plain[-s.mac_len:]
        want = hmac.new(k.mac_key, seq + bytes([content]) + version + struct.pack(">H", len(body)) + body,
                        s.prf).digest()
        if not hmac.compare_digest(mac, want):
            raise ProbeError("a record from the server does not authenticate (HMAC)")
        return body


def _cbc(key: bytes, iv: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def _pad(data: bytes) -> bytes:
    n = 15 - len(data) % 16
    return data + bytes([n]) * (n + 1)


def _unpad(data: bytes) -> bytes:
    if not data:
        raise ProbeError("an empty CBC record")
    n = data[-1]
    if n + 1 > len(data) or data[-n - 1:] != bytes([n]) * (n + 1):
        raise ProbeError("bad CBC padding in a record from the server")
    return data[:-n - 1]

