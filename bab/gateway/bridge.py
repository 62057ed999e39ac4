"""The selector bridge, sans-I/O: byte-stream channels carried as HDLC connections to one meter.

``bab bridge`` (:mod:`bab.gateway.bridge_server`) exposes one meter's selector-1 channel (TLS_SML_COSEM,
LMN-STACK.md 3.2 and 4) as a TCP listener, so that stock TLS tools (``openssl s_client``, testssl.sh) can be
pointed at a meter: BAB, or a real base meter behind a USB-RS485 adapter. Each TCP connection is one HDLC
connection (SNRM ... DISC) on that selector, carried by the software gateway's primary station
(:mod:`bab.hdlc.primary`), which keeps broadcasting address allocations and presence checks meanwhile.

* :class:`RecordChunker` cuts the client's byte stream for the I-frames: one TLS record per I-frame (the LMN
  framing, section 3.3), a record longer than the frame cut over several; a stream that does not start with
  a TLS record header (an SSL 2.0 ClientHello, line noise) is passed through as it comes.
* :class:`StreamLayer` is the :class:`~bab.hdlc.upper.ClientLayer` of one channel: bytes in from the TCP
  side (:meth:`StreamLayer.feed`, :meth:`StreamLayer.finish` at the client's end of stream), the meter's
  bytes out through ``on_data``, and the end of the HDLC connection through ``on_end(reason)``.
* :class:`SelectorBridge` is a link-node endpoint around :class:`~bab.gateway.app.SoftwareGateway`: it holds
  new channels until the meter is registered (at most ``connect_timeout`` seconds) and then queues them as
  conversations with it; the station runs them one after the other (one connection per meter at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bab.gateway.app import SoftwareGateway, describe
from bab.hdlc.frame import Frame, Selector
from bab.hdlc.secondary import Transmission

#: TLS record content types a record header may carry (change_cipher_spec ... heartbeat).
_TLS_CONTENT_TYPES = range(20, 25)
_MAX_RECORD = 5 + 16384 + 2048  # header + the largest TLSCiphertext fragment (RFC 5246 6.2.3)


class RecordChunker:
    """Cuts a client's byte stream into I-frame payloads at TLS record boundaries (see module docstring)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._left = 0  # bytes of the current record not handed out yet
        self._raw = False  # the stream is not TLS records: pass it through

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def __len__(self) -> int:
        return len(self.buffer)

    def next_chunk(self, max_size: int, *, eof: bool = False) -> bytes:
        """The next I-frame payload (at most ``max_size`` bytes), or b"" while a record is incomplete.

        A record that fits one frame is handed out only whole; a longer one in ``max_size`` pieces. With
        ``eof`` (the client sent all it will) whatever is left goes out as it is.
        """
        buf = self.buffer
        if not buf:
            return b""
        if self._raw:
            return self._take(min(len(buf), max_size))
        if self._left == 0:
            if len(buf) < 5:
                if eof or not _plausible_header(buf):
                    self._raw = not eof
                    return self._take(min(len(buf), max_size))
                return b""
            if not _plausible_header(buf):
                self._raw = True
                return self._take(min(len(buf), max_size))
            self._left = 5 + int.from_bytes(buf[3:5], "big")
        want = min(self._left, max_size)
        if len(buf) < want and not eof:
            return b""
        chunk = self._take(min(want, len(buf)))
        self._left = max(0, self._left - len(chunk))
        return chunk

    def _take(self, n: int) -> bytes:
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        return chunk


def _plausible_header(prefix: bytes | bytearray) -> bool:
    """True when ``prefix`` can be the start of a TLS record header (type, major version 3, length)."""
    if prefix[0] not in _TLS_CONTENT_TYPES:
        return False
    if len(prefix) >= 2 and prefix[1] != 3:
        return False
    return len(prefix) < 5 or 5 + int.from_bytes(prefix[3:5], "big") <= _MAX_RECORD


class StreamLayer:
    """The gateway-side layer of one bridged channel (see the module docstring).

    ``on_data(bytes)``: the meter sent these bytes (write them to the TCP client). ``on_end(reason)``: the
    HDLC connection ended, ``None`` after a clean DISC (the client had finished), else why (``"refused (DM)"``
    when the meter closed it, e.g. after a TLS alert; timeouts; the meter left the bus).
    ``tls_records``: cut the stream at TLS record boundaries (selector 1), else pass it through as it comes.
    """

    def __init__(self, on_data: Callable[[bytes], None] | None = None,
                 on_end: Callable[[str | None], None] | None = None, *, tls_records: bool = True) -> None:
        self.on_data = on_data
        self.on_end = on_end
        self.tls_records = tls_records
        self._chunker = RecordChunker()
        self._eof = False
        self.ended = False
        self.result: str | None = "pending"  # None after a clean end, else the reason
        self.bytes_up = 0  # client -> meter
        self.bytes_down = 0  # meter -> client

    # --- the TCP side -------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the client, for the meter."""
        if not self._eof and not self.ended:
            self._chunker.feed(data)

    def finish(self) -> None:
        """The client has sent everything: once it is out, the gateway ends the connection (DISC)."""
        self._eof = True

    @property
    def pending(self) -> int:
        """Client bytes not yet sent to the meter."""
        return len(self._chunker)

    # --- ClientLayer --------------------------------------------------------------------------------------

    def data_to_send(self, max_size: int) -> bytes:
        if self.tls_records:
            chunk = self._chunker.next_chunk(max_size, eof=self._eof)
        else:
            chunk = self._chunker._take(min(len(self._chunker), max_size))
        self.bytes_up += len(chunk)
        return chunk

    def data_received(self, data: bytes) -> None:
        self.bytes_down += len(data)
        if self.on_data is not None and data:
            self.on_data(data)

    def is_done(self) -> bool:
        return self._eof and not self._chunker.buffer

    def connection_lost(self, reason: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.result = reason
        if self.on_end is not None:
            self.on_end(reason)


@dataclass
class _Waiting:
    layer: StreamLayer
    deadline: float


class SelectorBridge:
    """Link-node endpoint: the software gateway plus the channels bridged to one meter's selector.

    ``meter``: the server ID of the meter to bridge to; None takes the only registered meter (with several
    registered, a new channel is refused with a message naming them). ``connect_timeout``: how long a new
    channel waits for the meter to be registered. ``report``: one line per event worth telling a user.
    """

    def __init__(self, gateway: SoftwareGateway, *, meter: bytes | None = None,
                 selector: int = Selector.TLS_SML_COSEM, connect_timeout: float = 30.0,
                 report: Callable[[str], None] = print) -> None:
        self.gateway = gateway
        self.meter = meter
        self.selector = selector
        self.connect_timeout = connect_timeout
        self.report = report
        self._waiting: list[_Waiting] = []
        self.channels_opened = 0
        self.channels_refused = 0

    @property
    def station(self):  # type: ignore[no-untyped-def]
        return self.gateway.station

    def target(self) -> tuple[int | None, str | None]:
        """``(address, None)`` of the meter to bridge to, or ``(None, why not)``."""
        participants = self.station.participants
        if self.meter is not None:
            for address, p in participants.items():
                if p.server_id == self.meter:
                    return address, None
            return None, f"meter {describe(self.meter)} is not registered (yet)"
        if len(participants) == 1:
            return next(iter(participants)), None
        if not participants:
            return None, "no meter registered (yet)"
        names = ", ".join(describe(p.server_id) for p in participants.values())
        return None, f"several meters on the bus ({names}): choose one with --meter"

    def open_channel(self, layer: StreamLayer, now: float) -> None:
        """A new client connection: its conversation starts once the meter is registered."""
        self._waiting.append(_Waiting(layer, now + self.connect_timeout))
        self._dispatch(now)

    # --- endpoint interface (bab.lmn.node.Endpoint) -------------------------------------------------------

    def frame_received(self, frame: Frame, now: float) -> None:
        self.gateway.frame_received(frame, now)
        self._dispatch(now)

    def next_deadline(self) -> float | None:
        times = [t for t in (self.gateway.next_deadline(), *(w.deadline for w in self._waiting)) if t is not None]
        return min(times) if times else None

    def transmissions_due(self, now: float) -> list[Transmission]:
        self._dispatch(now)
        return self.gateway.transmissions_due(now)

    # --- internals ----------------------------------------------------------------------------------------

    def _dispatch(self, now: float) -> None:
        if not self._waiting:
            return
        address, why = self.target()
        still: list[_Waiting] = []
        for w in self._waiting:
            if w.layer.ended or (w.layer.is_done() and not w.layer.bytes_up):
                w.layer.connection_lost(None)  # the client left before its channel opened
            elif address is not None:
                self.channels_opened += 1
                self.station.converse(address, self.selector, w.layer)
            elif now >= w.deadline or (why is not None and why.startswith("several")):
                self.channels_refused += 1
                w.layer.connection_lost(why)
            else:
                still.append(w)
        self._waiting = still


__all__ = ["RecordChunker", "SelectorBridge", "StreamLayer"]
