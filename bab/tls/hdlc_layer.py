"""TLS as an HDLC upper layer (LMN-STACK.md sections 3.3 and 4): selector 1, TLS_SML_COSEM.

:class:`TlsServerLayer` is the meter side: a :class:`~bab.hdlc.upper.ServerLayer` that terminates TLS
(:class:`~bab.tls.meter_server.MeterTlsServer`) and carries any inner ``ServerLayer`` (the SML/COSEM server, or
a test layer) inside it. :class:`TlsClientLayer` is the gateway side: a :class:`~bab.hdlc.upper.ClientLayer`
around :class:`~bab.tls.gateway_client.GatewayTlsClient` carrying any inner ``ClientLayer``.

Framing: every TLS record goes in its own I-frame (the gateway's max_fragment_length 2^9 keeps a record at
<= 512 bytes of plaintext, <= 597 bytes on the wire, well below the 2036-byte HDLC info field); a record
larger than the offered ``max_size`` is cut, the peer reassembles the TLS byte stream anyway.

Busy handling (LMN-STACK.md 3.3, "a meter that needs time (e.g. for ECDSA) should answer RNR rather than stay
silent"): the expensive handshake steps (``MeterTlsServer.receive_bytes`` while the handshake is not
complete: ECDHE key generation, ECDSA sign/verify) run in a worker thread of a
:class:`concurrent.futures.Executor`; until the step is done :meth:`TlsServerLayer.is_busy` is True, so the
station answers the gateway's polls with RNR instead of blocking the event loop (and the bus) for the
computation. The worker only ever runs the sans-I/O TLS object's ``receive_bytes``; it never touches the
HDLC station, the inner layer, counters or logging. The station-side methods never touch the TLS object
while a step is running (input arriving meanwhile is queued). After the handshake, record decryption and
encryption (microseconds) run inline. Tests and benchmarks may pass an inline executor
(:class:`InlineExecutor`) for determinism in virtual time.

Why a thread although a step is short on a PC (bench/tls_link.py, this project's 2-core x86 machine): the
meter-side CPU of a whole brainpoolP512r1 handshake is about 4 ms, its longest single step about 2 ms
(brainpoolP256r1: 1.2 ms / 0.7 ms). A Raspberry Pi Zero is 10-20x slower: 20-40 ms per step, 40-80 ms per
handshake. Inline, that would freeze the event loop that also times the 10 ms broadcast slots of every other
meter of the process; in the worker the loop stays responsive and the gateway gets RNR within its 750 ms.

Failures: a :class:`~bab.tls.errors.TlsError` from the TLS object ends the connection. The layer logs one line
(meter name, reason, detail), calls ``on_failure(error)`` (the owner counts ``tls_failures``), hands out the
fatal alert the TLS object queued (one I-frame), and then raises :class:`TlsLayerClosed` from
:meth:`TlsServerLayer.data_to_send`, which makes the station answer DM and close the connection. The station
keeps serving: the gateway's next SNRM gets a fresh layer and a fresh TLS connection.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Protocol

from bab.hdlc.upper import ClientLayer, ServerLayer
from bab.tls.errors import TlsError, TlsFailure, tls_error
from bab.tls.meter_server import TlsSessionInfo

log = logging.getLogger("bab.tls")

#: TLS record overhead we reserve when the peer negotiated no max_fragment_length (header + IV + MAC + pad).
_RECORD_OVERHEAD = 128
#: Plaintext per record when no max_fragment_length was negotiated (still fits one HDLC I-frame).
_DEFAULT_PLAINTEXT = 1024
#: Smallest plaintext per record: with tiny I-frames a record is cut over several frames rather than shrunk.
_MIN_PLAINTEXT = 256


class TlsLayerClosed(Exception):
    """Raised to the HDLC station after a TLS failure (and its alert) so that it answers DM and closes."""


class _ServerTls(Protocol):
    handshake_complete: bool
    closed: bool
    peer_closed: bool

    def receive_bytes(self, data: bytes) -> None: ...
    def records_to_send(self) -> list[bytes]: ...
    def send_application_data(self, data: bytes) -> None: ...
    def read_application_data(self) -> bytes: ...

    @property
    def info(self) -> TlsSessionInfo | None: ...

    @property
    def max_fragment_length(self) -> int: ...


class InlineExecutor(Executor):
    """Runs submitted work at once in the caller's thread (deterministic tests and benchmarks)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the future like a real executor does
            f.set_exception(exc)
        return f


_shared_executor: ThreadPoolExecutor | None = None


def shared_executor() -> ThreadPoolExecutor:
    """The process-wide worker pool for TLS handshake steps (one thread: steps of all meters queue up)."""
    global _shared_executor
    if _shared_executor is None:
        _shared_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bab-tls")
    return _shared_executor


class TlsServerLayer:
    """Meter side of selector 1: TLS server + inner ServerLayer (see the module docstring).

    ``tls``: a fresh :class:`~bab.tls.meter_server.MeterTlsServer` for this connection.
    ``inner_factory``: creates the inner layer once the handshake is complete (None refuses: DM).
    ``executor``: where handshake steps run (default: :func:`shared_executor`).
    ``on_failure(error)``: called once per failed connection, from the station's thread.
    ``on_established(info)``: called once the handshake is complete.
    ``session_filter(session_id, reused, by_ticket)``: asked once the handshake is complete; False refuses
    the session (our close_notify goes out, no application data is accepted, then DM). MeterSecurity uses it
    to refuse sessions resumed by ID from before a crypto-reset or pairing (wolfSSL's session cache is
    process-wide and cannot be flushed through the binding; a ticket resumes only under the key set of the
    context that issued it).
    ``name``: the meter's name in log lines.
    ``clock`` and ``max_age_s``: the runtime's monotonic clock and the TLS session lifetime (TR-03116-3 LMN:
    744 h). A connection older than that is ended by the meter at the gateway's next poll: close_notify, then
    DM (TaSK TLS_B2_FR_13); the gateway's next SNRM starts a fresh handshake.
    """

    def __init__(
        self,
        tls: _ServerTls,
        inner_factory: Callable[[], ServerLayer | None],
        *,
        executor: Executor | None = None,
        on_failure: Callable[[TlsError], None] | None = None,
        on_established: Callable[[TlsSessionInfo | None], None] | None = None,
        on_closed: Callable[[], None] | None = None,
        session_filter: Callable[[bytes | None, bool, bool], bool] | None = None,
        name: str = "meter",
        clock: Callable[[], float] | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self.tls = tls
        self.clock = clock
        self.max_age_s = max_age_s
        self.established_at: float | None = None
        self.expired = False  # ended because it outlived the session lifetime
        self.session_filter = session_filter
        self.session_id: bytes | None = None  # from our ServerHello
        self.inner_factory = inner_factory
        self.executor = executor if executor is not None else shared_executor()
        self.on_failure = on_failure
        self.on_established = on_established
        self.on_closed = on_closed
        self.name = name
        self.inner: ServerLayer | None = None
        self.error: TlsError | None = None
        self.established = False
        self.steps_threaded = 0  # handshake steps run through the executor
        self._inbox = bytearray()  # TLS bytes received while a step was running
        self._future: Future[None] | None = None
        self._out: deque[bytes] = deque()  # records, one per I-frame
        self._partial = b""  # the rest of a record larger than max_size
        self._lost = False

    # --- ServerLayer --------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.error is not None or self._lost:
            return
        self._inbox += data
        self._advance()

    def data_to_send(self, max_size: int) -> bytes:
        self._advance()
        self._check_age()
        if self._partial:
            chunk, self._partial = self._partial[:max_size], self._partial[max_size:]
            return chunk
        if not self._out and self.error is None and self.established and self._running() is False:
            self._pull_inner(max_size)
        if self._out:
            record = self._out.popleft()
            if len(record) > max_size:
                record, self._partial = record[:max_size], record[max_size:]
            return record
        if self.error is not None:
            raise TlsLayerClosed(f"TLS failed: {self.error.reason.value}")
        if self.expired:
            raise TlsLayerClosed("TLS connection reached the session lifetime")
        return b""

    def is_busy(self) -> bool:
        self._advance()
        if self._running():
            return True
        return bool(self.established and self.inner is not None and self.inner.is_busy())

    def connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        future = self._future
        if future is not None:
            future.cancel()  # a running step finishes in the worker; its result is dropped
        if not self.established and self.error is None and (self._future is not None or self._inbox
                                                             or self.steps_threaded):
            log.warning("%s: TLS handshake abandoned (connection closed before it completed)", self.name,
                        extra={"meter_id": self.name, "layer": "tls"})
            if self.on_failure is not None:
                self.on_failure(tls_error(TlsFailure.HANDSHAKE_FAILURE, "handshake abandoned by the peer"))
        if self.inner is not None:
            self.inner.connection_lost()
        if self.on_closed is not None:
            self.on_closed()

    # --- internals ----------------------------------------------------------------------------------------

    def _check_age(self) -> None:
        """End a connection that outlived the session lifetime: our close_notify goes out first."""
        if (self.expired or self.established_at is None or self.clock is None or self.max_age_s is None
                or self.error is not None or self._running()):
            return
        age = self.clock() - self.established_at
        if age < self.max_age_s:
            return
        self.expired = True
        log.info("%s: TLS connection closed after %.0f s (session lifetime %.0f s)", self.name, age,
                 self.max_age_s, extra={"meter_id": self.name, "layer": "tls"})
        self.tls.close()
        self._collect_output()

    def _running(self) -> bool:
        return self._future is not None and not self._future.done()

    def _advance(self) -> None:
        """Harvest a finished step, feed queued input, move application data; all in the station's thread."""
        while not self._lost and self.error is None:
            if self._running():
                return
            if self._future is not None:
                future, self._future = self._future, None
                exc = future.exception()
                self._collect_output()
                if exc is not None:
                    self._fail(exc)
                    return
                self._after_step()
                continue
            if not self._inbox:
                return
            data = bytes(self._inbox)
            self._inbox.clear()
            if self.tls.handshake_complete:
                try:
                    self.tls.receive_bytes(data)
                except Exception as exc:
                    self._collect_output()
                    self._fail(exc)
                    return
                self._collect_output()
                self._after_step()
            else:
                self.steps_threaded += 1
                self._future = self.executor.submit(self.tls.receive_bytes, data)

    def _collect_output(self) -> None:
        records = self.tls.records_to_send()
        if self.session_id is None and not self.established:
            for record in records:
                sid = server_hello_session_id(record)
                if sid is not None:
                    self.session_id = sid
                    break
        self._out.extend(records)

    def _after_step(self) -> None:
        if not self.established and self.tls.handshake_complete:
            self.established = True
            self.established_at = self.clock() if self.clock is not None else None
            info = self.tls.info
            reused = bool(info is not None and info.session_reused)
            by_ticket = bool(getattr(self.tls, "resumed_by_ticket", False))
            if self.session_filter is not None and not self.session_filter(self.session_id, reused, by_ticket):
                self.tls.close()
                self._collect_output()
                self._fail(tls_error(TlsFailure.POLICY_VIOLATION,
                                     "resumed a TLS session from before the last crypto-reset or pairing "
                                     "(ended with close_notify: after the abbreviated handshake an alert would "
                                     "have to be encrypted)"))
                return
            if info is not None:
                log.info("%s: TLS established (%s, %s, group %s%s)", self.name, info.version, info.cipher_suite,
                         info.group.value if info.group else "-", ", resumed" if info.session_reused else "",
                         extra={"meter_id": self.name, "layer": "tls"})
            if self.on_established is not None:
                self.on_established(info)
            self.inner = self.inner_factory()
            if self.inner is None:
                raise TlsLayerClosed("no application behind TLS")
        if self.established and self.inner is not None:
            data = self.tls.read_application_data()
            if data:
                self.inner.data_received(data)

    def _pull_inner(self, max_size: int) -> None:
        """Ask the inner layer for one record's worth of plaintext and encrypt it."""
        assert self.inner is not None
        if self.tls.closed:
            return
        mfl = self.tls.max_fragment_length
        size = min(mfl, _DEFAULT_PLAINTEXT, max(max_size - _RECORD_OVERHEAD, _MIN_PLAINTEXT))
        plain = self.inner.data_to_send(size)
        if not plain:
            return
        try:
            self.tls.send_application_data(plain)
        except Exception as exc:
            self._collect_output()
            self._fail(exc)
            return
        self._collect_output()

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, TlsLayerClosed):
            raise exc
        err = exc if isinstance(exc, TlsError) else tls_error(
            TlsFailure.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        self.error = err
        if err.reason is TlsFailure.PEER_ALERT:
            answer = f"; the client sent alert {err.alert}" if err.alert else ""
        else:
            answer = f"; answered with alert {err.alert}" if err.alert else "; no alert sent"
        log.warning("%s: TLS failure: %s%s%s", self.name, err.reason.value, f" ({err.detail})" if err.detail else "",
                    answer, extra={"meter_id": self.name, "layer": "tls", "reason": err.reason.value,
                                   "alert": err.alert or ""})
        if self.on_failure is not None:
            self.on_failure(err)
        if not self._out:
            raise TlsLayerClosed(f"TLS failed: {err.reason.value}")


def server_hello_session_id(record: bytes) -> bytes | None:
    """The session ID of a plaintext record that starts with a ServerHello, else None."""
    if len(record) < 5 + 4 + 2 + 32 + 1 or record[0] != 22 or record[5] != 2:
        return None
    pos = 5 + 4 + 2 + 32
    n = record[pos]
    if n > 32 or len(record) < pos + 1 + n:
        return None
    return bytes(record[pos + 1 : pos + 1 + n])


class _ClientTls(Protocol):
    handshake_complete: bool
    closed: bool

    def start(self) -> None: ...
    def receive_bytes(self, data: bytes) -> None: ...
    def records_to_send(self) -> list[bytes]: ...
    def send_application_data(self, data: bytes) -> None: ...
    def read_application_data(self) -> bytes: ...
    def close(self) -> None: ...

    @property
    def info(self) -> TlsSessionInfo | None: ...


class TlsClientLayer:
    """Gateway side of selector 1: TLS client + inner ClientLayer.

    The conversation is done (:meth:`is_done`, the station then sends DISC) when the inner layer is done and
    our close_notify has been handed out (the meter's close_notify answer is not waited for: the DISC that
    follows ends the connection anyway). A TLS failure raises :class:`~bab.tls.errors.TlsError` from
    :meth:`data_received` (the station reports the conversation as failed with that reason) and is kept in
    :attr:`error`. ``session`` (the TLS session for resumption) is available after the handshake.
    """

    def __init__(self, tls: _ClientTls, inner: ClientLayer, *,
                 on_established: Callable[[TlsSessionInfo | None], None] | None = None,
                 on_closed: Callable[[str | None], None] | None = None) -> None:
        self.tls = tls
        self.inner = inner
        self.on_established = on_established
        self.on_closed = on_closed
        self.error: TlsError | None = None
        self.established = False
        self.result: str | None = "pending"  # None after a clean end, else the failure reason
        self._out: deque[bytes] = deque()
        self._partial = b""
        self._started = False
        self._close_queued = False

    def data_to_send(self, max_size: int) -> bytes:
        if self.error is not None:
            raise self.error
        if not self._started:
            self._started = True
            self.tls.start()
        self._collect()
        if self._partial:
            chunk, self._partial = self._partial[:max_size], self._partial[max_size:]
            return chunk
        if not self._out and self.established and not self._close_queued:
            if self.inner.is_done():
                self.tls.close()
                self._close_queued = True
            else:
                plain = self.inner.data_to_send(min(512, max(max_size - _RECORD_OVERHEAD, _MIN_PLAINTEXT)))
                if plain:
                    self.tls.send_application_data(plain)
            self._collect()
        if self._out:
            record = self._out.popleft()
            if len(record) > max_size:
                record, self._partial = record[:max_size], record[max_size:]
            return record
        return b""

    def data_received(self, data: bytes) -> None:
        try:
            self.tls.receive_bytes(data)
        except TlsError as exc:
            self.error = exc
            self._collect()
            raise
        self._collect()
        if not self.established and self.tls.handshake_complete:
            self.established = True
            if self.on_established is not None:
                self.on_established(self.tls.info)
        if self.established:
            plain = self.tls.read_application_data()
            if plain:
                self.inner.data_received(plain)

    def is_done(self) -> bool:
        if self.error is not None:
            raise self.error
        return self._close_queued and not self._out and not self._partial

    def connection_lost(self, reason: str | None) -> None:
        if reason is None and not self.inner.is_done():
            reason = "connection closed before the application was done"
        self.result = reason
        self.inner.connection_lost(reason)
        if self.on_closed is not None:
            self.on_closed(reason)

    def _collect(self) -> None:
        self._out.extend(self.tls.records_to_send())


__all__ = ["InlineExecutor", "TlsClientLayer", "TlsLayerClosed", "TlsServerLayer", "server_hello_session_id",
           "shared_executor"]
