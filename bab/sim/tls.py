"""Faults on the TLS records the meter sends (LMN-STACK.md section 4): a handshake the meter aborts, and a
certificate other than the one the gateway pinned.

:class:`TlsFaults` wraps the meter's TLS layer (:class:`~bab.tls.hdlc_layer.TlsServerLayer`, selector 1) as
the HDLC station sees it: records go out one per I frame. It acts on the meter's first handshake flight
(ServerHello .. ServerHelloDone, plaintext in TLS 1.2) and passes everything after it through untouched.

* ``tls_abort``: instead of the flight the station answers DM (optionally after a fatal handshake_failure
  alert), as a meter that gives up mid-handshake.
* ``tls_wrong_cert``: the Certificate message of the flight carries another certificate (a given PEM file, or
  one generated once per process). The gateway's pin check refuses it with a bad_certificate alert. The flight
  is re-fragmented into records no longer than the meter's own.
"""

from __future__ import annotations

import functools

from bab.hdlc.upper import CloseConnection, ServerLayer
from bab.tls import keys

from .catalogue import TLS
from .faults import FaultSet

_DRAIN = 1 << 16
_HANDSHAKE = 22
_SERVER_HELLO = 2
_CERTIFICATE = 11
_SERVER_HELLO_DONE = 14
#: A fatal handshake_failure alert record (TLS 1.2 record version).
ALERT_HANDSHAKE_FAILURE = bytes((21, 3, 3, 0, 2, 2, 40))


@functools.cache
def _generated_certificate() -> bytes:
    """A self-signed certificate that no gateway pinned (made once per process)."""
    _, cert = keys.generate_identity("BAB-SIM-WRONG-CERT", keys.Curve.SECP256R1)
    return keys.certificate_der(cert)


class TlsFaults:
    """One TLS connection of the meter with its TLS faults applied (see the module docstring)."""

    def __init__(self, inner: ServerLayer, faults: FaultSet) -> None:
        self.inner = inner
        self.faults = faults
        self._out: list[bytes] = []
        self._partial = b""
        self._first_flight_seen = False
        self._close_after: str | None = None

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def data_to_send(self, max_size: int) -> bytes:
        if self._partial:
            chunk, self._partial = self._partial[:max_size], self._partial[max_size:]
            return chunk
        if self._out:
            record = self._out.pop(0)
            if len(record) > max_size:
                record, self._partial = record[:max_size], record[max_size:]
            return record
        if self._close_after is not None:
            raise CloseConnection(self._close_after)
        if self._first_flight_seen or TLS not in self.faults.on:
            return self.inner.data_to_send(max_size)
        record = self.inner.data_to_send(max_size)
        if not (len(record) > 5 and record[0] == _HANDSHAKE and record[5] == _SERVER_HELLO):
            return record
        self._first_flight_seen = True
        flight = [record]
        while not _has_message(flight, _SERVER_HELLO_DONE) and (more := self.inner.data_to_send(_DRAIN)):
            flight.append(more)
        abort = self.faults.fire("tls_abort", "handshake aborted before the meter's first flight")
        if abort is not None:
            reason = "simulated fault tls_abort"
            if abort.params["alert"]:
                self._close_after = reason
                return ALERT_HANDSHAKE_FAILURE
            raise CloseConnection(reason)
        wrong = self.faults.get("tls_wrong_cert")
        if wrong is not None and self.faults.fire("tls_wrong_cert", "another certificate presented"):
            cert_file = wrong.params["cert_file"]
            der = keys.certificate_der(keys.load_certificate_file(cert_file)) if cert_file \
                else _generated_certificate()
            flight = _replace_certificate(flight, der)
        self._out = flight[1:]
        return self._first(flight[0], max_size)

    def _first(self, record: bytes, max_size: int) -> bytes:
        if len(record) > max_size:
            record, self._partial = record[:max_size], record[max_size:]
        return record

    def is_busy(self) -> bool:
        return self.inner.is_busy()

    def connection_lost(self) -> None:
        self.inner.connection_lost()


def _records(stream: list[bytes]) -> list[tuple[int, bytes, bytes]]:
    """(content type, version, fragment) of the records in the flight's bytes."""
    data = b"".join(stream)
    out = []
    pos = 0
    while pos + 5 <= len(data):
        n = int.from_bytes(data[pos + 3 : pos + 5], "big")
        out.append((data[pos], data[pos + 1 : pos + 3], data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return out


def _handshake_messages(stream: list[bytes]) -> list[tuple[int, bytes]] | None:
    hs = b"".join(frag for ctype, _, frag in _records(stream) if ctype == _HANDSHAKE)
    out = []
    pos = 0
    while pos + 4 <= len(hs):
        n = int.from_bytes(hs[pos + 1 : pos + 4], "big")
        if pos + 4 + n > len(hs):
            return None
        out.append((hs[pos], hs[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


def _has_message(stream: list[bytes], msg_type: int) -> bool:
    return any(t == msg_type for t, _ in _handshake_messages(stream) or ())


def _replace_certificate(flight: list[bytes], der: bytes) -> list[bytes]:
    """The flight with the Certificate message's chain replaced by ``der``, re-fragmented."""
    records = _records(flight)
    messages = _handshake_messages(flight)
    if not records or messages is None or any(ctype != _HANDSHAKE for ctype, _, _ in records):
        return flight
    version = records[0][1]
    size = max(len(frag) for _, _, frag in records)
    hs = bytearray()
    for msg_type, body in messages:
        if msg_type == _CERTIFICATE:
            entry = len(der).to_bytes(3, "big") + der
            body = len(entry).to_bytes(3, "big") + entry
        hs += bytes((msg_type,)) + len(body).to_bytes(3, "big") + body
    return [bytes((_HANDSHAKE,)) + version + len(hs[i : i + size]).to_bytes(2, "big") + bytes(hs[i : i + size])
            for i in range(0, len(hs), size)]
