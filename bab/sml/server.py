"""The meter's SML application server: SML 1.04 files carrying COSEM objects (LMN-STACK.md sections 6 and 7).

Sans-I/O and transport-agnostic: it implements :class:`bab.hdlc.upper.ServerLayer` (bytes in through
``data_received``, bytes out through ``data_to_send``), so the same object runs over plain HDLC (selector 3)
and, later, inside TLS (selector 1). One :class:`SmlServer` per connection; the meter's object model
(:class:`bab.cosem.BaseMeterModel`) is shared by all connections of a meter.

Request files arrive as SML transport v1 and may span several I-frames (streaming decoder). Each complete
file is answered by one response file, queued for ``data_to_send`` in chunks:

* PublicOpen.Req -> PublicOpen.Res (echoes clientId and reqFileId; own serverId; refTime = seconds index).
* GetProcParameter.Req ``[obj9, 00 02, 00 03, ...]`` -> GetProcParameter.Res with the attributes as children,
  in request order (a path with only the object name returns every readable attribute >= 2).
* SetProcParameter.Req -> Attention.Res ``FD 00`` (OK) with the object name as details, or an error.
* GetList.Req -> GetList.Res with the EDL-style list of a base meter.
* GetProfileList.Req on the 15-minute profile 1-0:99.1.0*255 -> one GetProfileList.Res per period (oldest
  first, at most :data:`MAX_PROFILE_ENTRIES` per request).
* PublicClose.Req -> PublicClose.Res.

Errors are answered with SML_Attention.Res in place of the failed request's response; the connection stays
usable:

======================================================  =============================================
situation                                               attention number
======================================================  =============================================
file does not start with PublicOpen.Req, a response or  FE 0D unexpected message
COSEM message sent to the meter, messages after Close
serverId of the Open is not ours                        FE 03 serverId unavailable (whole file refused)
serverId of a request is not ours                       FE 03 (that request)
unknown object, malformed path, crypto-reset refused    FE 0A order not executed
attribute missing / write-only (Get)                    FE 06 attribute cannot be read
attribute missing / read-only (Set)                     FE 05 attribute cannot be written
wrong data type in a Set                                FE 0F unsupported data type
value out of range                                      FE 09
register without any value from the legacy meter yet   FE 07 communication with measuring point disrupted
profile: end before begin / empty / nothing in range    FE 12 / FE 11 / FE 13
profile: unknown object in object_List                  FE 0E
file ended without PublicClose.Req                      FE 14 (after the other answers), then Close.Res
transport or message CRC wrong                          FE 0B checksum wrong
unknown message tag                                     FE 01 unknown SML id
any other undecodable file                              FE 08 raw data not interpretable
======================================================  =============================================

With ``abortOnError != 0`` on a failed request the remaining requests of that file are skipped (SML 1.04
allows finer group semantics; BAB treats every non-zero value as "abort the rest"). username/password are
ignored: on selector 3 nothing is protected, and over TLS the certificates authenticate the gateway. Bytes outside any
transport frame are a counted drop without an answer. Memory is bounded by the decoder's ``max_frame`` and
``max_outbox`` (a response that would overflow the unread output is dropped and counted).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cosem.base_meter import SECONDS_INDEX, BaseMeterModel
from ..cosem.objects import AccessFailure, CosemAccessError, CosemClass, ObjectName
from ..cosem.profile import PROFILE_OBIS
from . import encode_sml
from .attention import AttentionCode
from .errors import SmlCrcError, SmlError, SmlUnsupportedMessage
from .messages import (
    AttentionRes,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    GetProfileListRes,
    PublicCloseReq,
    PublicCloseRes,
    PublicOpenReq,
    PublicOpenRes,
    SetProcParameterReq,
    SmlFile,
    SmlMessage,
)
from .quirks import Quirk
from .stream import FileDecoded, FileRejected, SmlStreamDecoder
from .tl import Integer, Unsigned
from .transport import BytesDiscarded
from .types import LocalTimestamp, PeriodEntry, ProcParKind, ProcParValue, SecIndex, SmlTime, Timestamp, Tree

if TYPE_CHECKING:
    from bab.hdlc.upper import ServerLayer
    from bab.meter import MeterRuntime

log = logging.getLogger("bab.sml.server")

#: list name of the base meter's GetList (as EDL meters push it, LMN-STACK.md 6.4)
LIST_NAME = bytes((1, 0, 0x62, 0x0A, 0xFF, 0xFF))
MAX_PROFILE_ENTRIES = 96
MAX_REQUEST_FILE = 16 * 1024
MAX_OUTBOX = 256 * 1024

_GET_FAILURES = {
    AccessFailure.UNKNOWN_OBJECT: AttentionCode.ORDER_NOT_EXECUTED,
    AccessFailure.NO_SUCH_ATTRIBUTE: AttentionCode.ATTRIBUTE_NOT_READABLE,
    AccessFailure.NOT_READABLE: AttentionCode.ATTRIBUTE_NOT_READABLE,
    AccessFailure.NOT_WRITABLE: AttentionCode.ATTRIBUTE_NOT_WRITABLE,
    AccessFailure.WRONG_TYPE: AttentionCode.UNSUPPORTED_DATA_TYPE,
    AccessFailure.OUT_OF_RANGE: AttentionCode.VALUE_OUT_OF_RANGE,
    AccessFailure.NOT_EXECUTED: AttentionCode.ORDER_NOT_EXECUTED,
    AccessFailure.NO_DATA: AttentionCode.MEASURING_POINT_UNREACHABLE,
}
_SET_FAILURES = {**_GET_FAILURES, AccessFailure.NO_SUCH_ATTRIBUTE: AttentionCode.ATTRIBUTE_NOT_WRITABLE}


class Refused(Exception):
    """A request answered with an attention number (internal to the server)."""

    def __init__(self, code: AttentionCode, details: bytes | None = None, msg: str = "") -> None:
        super().__init__(f"{code.name}{': ' + msg if msg else ''}")
        self.code = code
        self.details = details
        self.msg = msg


@dataclass(slots=True)
class SmlServerStats:
    files_ok: int = 0  # request files answered
    files_rejected: int = 0  # undecodable files (answered with an attention)
    bytes_dropped: int = 0  # garbage outside transport frames (no answer)
    requests: int = 0
    attentions: int = 0  # error attentions sent
    responses_dropped: int = 0  # responses not queued because the unread output was full
    internal_errors: int = 0


class SmlServer:
    """One SML/COSEM connection on the meter side (implements :class:`bab.hdlc.upper.ServerLayer`)."""

    def __init__(self, model: BaseMeterModel, *, max_request: int = MAX_REQUEST_FILE,
                 max_outbox: int = MAX_OUTBOX) -> None:
        self.model = model
        self.server_id = model.server_id
        self.max_request = max_request
        self._decoder = SmlStreamDecoder(Quirk.DEFAULT, max_frame=max_request)
        self._outbox = bytearray()
        self.max_outbox = max_outbox
        self.stats = SmlServerStats()
        self.closed = False
        self._error_tid = 0

    # ------------------------------------------------------------------------------------- ServerLayer

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        for event in self._decoder.feed(data):
            if type(event) is FileDecoded:
                self._answer(self._handle_file_safely(event.file))
            elif type(event) is FileRejected:
                self.stats.files_rejected += 1
                log.info("SML request file rejected: %s", event.error)
                self._answer([self._attention(self._next_error_tid(), _rejection_code(event.error),
                                              msg=str(event.error))])
            elif type(event) is BytesDiscarded:
                self.stats.bytes_dropped += event.count

    def data_to_send(self, max_size: int) -> bytes:
        if max_size <= 0 or not self._outbox:
            return b""
        chunk = bytes(self._outbox[:max_size])
        del self._outbox[:max_size]
        return chunk

    def is_busy(self) -> bool:
        return False

    def connection_lost(self) -> None:
        self.closed = True
        self._outbox.clear()
        self._decoder = SmlStreamDecoder(Quirk.DEFAULT, max_frame=self.max_request)

    # ------------------------------------------------------------------------------------- processing

    @property
    def pending(self) -> int:
        """Response bytes not yet taken by ``data_to_send``."""
        return len(self._outbox)

    def handle_request(self, wire: bytes) -> bytes:
        """Convenience for tests and benchmarks: one complete request file in, the response bytes out."""
        self.data_received(wire)
        return self.data_to_send(len(self._outbox))

    def response_for(self, file: SmlFile) -> bytes:
        """The encoded response file for a decoded request file (no queueing; for benchmarks and tools)."""
        return encode_sml(self._handle_file_safely(file))

    def _answer(self, messages: list[SmlMessage]) -> None:
        try:
            wire = encode_sml(messages)
        except SmlError as exc:  # a model value the codec cannot carry: a bug, but never a crash
            self.stats.internal_errors += 1
            log.error("cannot encode SML response: %s", exc)
            wire = encode_sml([self._attention(messages[0].transaction_id, AttentionCode.UNKNOWN_ERROR)])
        if len(self._outbox) + len(wire) > self.max_outbox:
            self.stats.responses_dropped += 1
            log.warning("SML response of %d bytes dropped: %d bytes unread", len(wire), len(self._outbox))
            return
        self._outbox += wire

    def _next_error_tid(self) -> bytes:
        self._error_tid = (self._error_tid + 1) & 0xFFFFFFFF
        return b"E" + self._error_tid.to_bytes(4, "big")

    def _attention(self, tid: bytes, code: AttentionCode, details: bytes | None = None,
                   msg: str = "") -> SmlMessage:
        if code.is_error:
            self.stats.attentions += 1
        tree = Tree(details) if details is not None else None
        text = msg.encode("utf-8", "replace")[:64] if msg else None
        return SmlMessage(tid, AttentionRes(self.server_id, code.to_bytes(), text, tree))

    def _handle_file_safely(self, file: SmlFile) -> list[SmlMessage]:
        try:
            out = self._handle_file(file)
            self.stats.files_ok += 1
            return out
        except Exception as exc:  # noqa: BLE001 - last resort: a request must never kill the meter
            self.stats.internal_errors += 1
            log.exception("SML request handling failed")
            tid = file.messages[0].transaction_id if file.messages else self._next_error_tid()
            return [self._attention(tid, AttentionCode.UNKNOWN_ERROR, msg=type(exc).__name__)]

    def _handle_file(self, file: SmlFile) -> list[SmlMessage]:
        messages = file.messages
        first = messages[0]
        if type(first.body) is not PublicOpenReq:
            return [self._attention(first.transaction_id, AttentionCode.UNEXPECTED_MESSAGE,
                                    msg="a request file starts with PublicOpen.Req")]
        open_req: PublicOpenReq = first.body
        if open_req.server_id and open_req.server_id != self.server_id:
            return [self._attention(first.transaction_id, AttentionCode.SERVER_ID_UNAVAILABLE)]
        out = [SmlMessage(first.transaction_id, PublicOpenRes(
            None, open_req.client_id, open_req.req_file_id, self.server_id, SecIndex(self.model.sec_index())))]
        closed = False
        aborted = False
        for m in messages[1:]:
            if closed:
                out.append(self._attention(m.transaction_id, AttentionCode.UNEXPECTED_MESSAGE,
                                           msg="message after PublicClose.Req"))
                continue
            if type(m.body) is PublicCloseReq:
                closed = True
                continue
            if aborted:
                continue
            self.stats.requests += 1
            try:
                out.extend(self._request(m))
            except Refused as r:
                out.append(self._attention(m.transaction_id, r.code, r.details, r.msg))
                if m.abort_on_error:
                    aborted = True
        last_tid = messages[-1].transaction_id
        if not closed:
            out.append(self._attention(last_tid, AttentionCode.FILE_ENDED_WITHOUT_CLOSE))
            out.append(SmlMessage(last_tid, PublicCloseRes()))
        else:
            close_tid = next(m.transaction_id for m in messages if type(m.body) is PublicCloseReq)
            out.append(SmlMessage(close_tid, PublicCloseRes()))
        return out

    def _request(self, m: SmlMessage) -> list[SmlMessage]:
        body = m.body
        kind = type(body)
        if kind in _REQUESTS:
            sid = body.server_id  # type: ignore[union-attr]
            if sid and sid != self.server_id:
                raise Refused(AttentionCode.SERVER_ID_UNAVAILABLE, msg="not this meter's serverId")
        if kind is GetProcParameterReq:
            return [SmlMessage(m.transaction_id, self._get_proc_parameter(body))]  # type: ignore[arg-type]
        if kind is SetProcParameterReq:
            name = self._set_proc_parameter(body)  # type: ignore[arg-type]
            return [self._attention(m.transaction_id, AttentionCode.OK, name)]
        if kind is GetListReq:
            return [SmlMessage(m.transaction_id, self._get_list(body))]  # type: ignore[arg-type]
        if kind is GetProfileListReq:
            return [SmlMessage(m.transaction_id, r) for r in self._get_profile_list(body)]  # type: ignore[arg-type]
        raise Refused(AttentionCode.UNEXPECTED_MESSAGE, msg=f"{type(body).__name__} is not a request here")

    def _get_proc_parameter(self, req: GetProcParameterReq) -> GetProcParameterRes:
        path = req.parameter_tree_path
        if not path:
            raise Refused(AttentionCode.ORDER_NOT_EXECUTED, msg="empty parameterTreePath")
        name = path[0]
        try:
            obj = self.model.table.lookup(name)
            numbers = [_attribute_number(p, name) for p in path[1:]] or obj.readable()
            children = [Tree(n.to_bytes(2, "big"), ProcParValue(ProcParKind.VALUE, obj.read(n))) for n in numbers]
        except CosemAccessError as e:
            raise Refused(_GET_FAILURES[e.kind], name, str(e)) from None
        return GetProcParameterRes(self.server_id, list(path), Tree(name, None, children))

    def _set_proc_parameter(self, req: SetProcParameterReq) -> bytes:
        path = req.parameter_tree_path
        tree = req.parameter_tree
        if not path:
            raise Refused(AttentionCode.ORDER_NOT_EXECUTED, msg="empty parameterTreePath")
        name = path[0]
        try:
            obj = self.model.table.lookup(name)
            writes: list[tuple[int, object]] = []
            if tree.child_list:
                for child in tree.child_list:
                    pv = child.parameter_value
                    if pv is None or pv.kind is not ProcParKind.VALUE:
                        raise Refused(AttentionCode.UNSUPPORTED_DATA_TYPE, name, "a Set carries ProcParValue(1, v)")
                    writes.append((_attribute_number(child.parameter_name, name), pv.value))
            elif tree.parameter_value is not None:
                if tree.parameter_value.kind is not ProcParKind.VALUE:
                    raise Refused(AttentionCode.UNSUPPORTED_DATA_TYPE, name, "a Set carries ProcParValue(1, v)")
                number = _attribute_number(path[1], name) if len(path) > 1 else 2
                writes.append((number, tree.parameter_value.value))
            else:
                raise Refused(AttentionCode.ORDER_NOT_EXECUTED, name, "no value to set")
            for number, _ in writes:  # check every access right before changing anything
                attr = obj.attributes.get(number)
                if attr is None or attr.set is None:
                    raise CosemAccessError(AccessFailure.NOT_WRITABLE, f"attribute {number}")
            for number, value in writes:
                obj.write(number, value)  # type: ignore[arg-type]
        except CosemAccessError as e:
            raise Refused(_SET_FAILURES[e.kind], name, str(e)) from None
        return name

    def _get_list(self, req: GetListReq) -> GetListRes:
        if req.list_name and req.list_name != LIST_NAME:
            raise Refused(AttentionCode.ORDER_NOT_EXECUTED, req.list_name, "unknown list")
        return GetListRes(req.client_id or None, self.server_id, LIST_NAME, SecIndex(self.model.sec_index()),
                          self.model.list_entries())

    def _get_profile_list(self, req: GetProfileListReq) -> list[GetProfileListRes]:
        path = req.parameter_tree_path
        if not path or not _is_profile_name(path[0]):
            raise Refused(AttentionCode.ORDER_NOT_EXECUTED, path[0] if path else None, "unknown profile")
        profile = self.model.profile
        begin, b_idx = _time_key(req.begin_time)
        end, e_idx = _time_key(req.end_time)
        if begin is not None and end is not None and b_idx != e_idx:
            raise Refused(AttentionCode.UNSUPPORTED_DATA_TYPE, path[0], "begin and end of different time kinds")
        if begin is not None and end is not None and end < begin:
            raise Refused(AttentionCode.END_BEFORE_START, path[0])
        if not profile.entries:
            raise Refused(AttentionCode.PROFILE_HAS_NO_ENTRY, path[0])
        wanted = None
        if req.object_list:
            known = {o.to_bytes() for o in profile.objects} | {SECONDS_INDEX.to_bytes()}
            wanted = {n[:6] for n in req.object_list}
            if any(len(n) not in (6, 9) for n in req.object_list) or not wanted <= known:
                raise Refused(AttentionCode.UNKNOWN_OBJECT_IN_PROFILE, path[0])
        entries = profile.select(begin, end, by_index=bool(b_idx or e_idx), limit=MAX_PROFILE_ENTRIES)
        if not entries:
            raise Refused(AttentionCode.NO_ENTRIES_IN_RANGE, path[0])
        act = SecIndex(self.model.sec_index())
        out = []
        for e in entries:
            period = [PeriodEntry(SECONDS_INDEX.to_bytes(), 255, 0, Unsigned(e.sec_index, 4))]
            period += [PeriodEntry(v.obis.to_bytes(), v.unit, v.scaler,
                                   Unsigned(v.value, 8) if v.value >= 0 else Integer(v.value, 8)) for v in e.values]
            if wanted is not None:
                period = [p for p in period if p.obj_name in wanted]
            out.append(GetProfileListRes(self.server_id, act, profile.period, list(path), Timestamp(e.time),
                                         e.status, period))
        return out


_REQUESTS = (GetProcParameterReq, SetProcParameterReq, GetListReq, GetProfileListReq)


def _rejection_code(error: SmlError) -> AttentionCode:
    if isinstance(error, SmlCrcError):
        return AttentionCode.CHECKSUM_WRONG
    if isinstance(error, SmlUnsupportedMessage):
        return AttentionCode.UNKNOWN_SML_ID
    return AttentionCode.RAWDATA_NOT_INTERPRETABLE


def _attribute_number(entry: bytes, name: bytes) -> int:
    if len(entry) != 2:
        raise Refused(AttentionCode.ORDER_NOT_EXECUTED, name, f"path entry {entry.hex()} is not an attribute")
    return int.from_bytes(entry, "big")


def _is_profile_name(name: bytes) -> bool:
    if len(name) == 6:
        return name == PROFILE_OBIS.to_bytes()
    if len(name) == 9:
        return name == ObjectName(PROFILE_OBIS, CosemClass.PROFILE_GENERIC).to_bytes()
    return False


def _time_key(t: SmlTime | None) -> tuple[int | None, bool]:
    """(value, is_seconds_index) of a profile range limit."""
    if t is None:
        return None, False
    if type(t) is SecIndex:
        return t.value, True
    if isinstance(t, LocalTimestamp):
        return t.timestamp, False
    return t.value, False  # Timestamp


class SmlService:
    """The selector-3 (and later TLS-wrapped) service factory of one meter: a new :class:`SmlServer` per
    connection, all sharing ``model``."""

    def __init__(self, model: BaseMeterModel) -> None:
        self.model = model
        self.connections = 0

    def __call__(self) -> ServerLayer:
        self.connections += 1
        return SmlServer(self.model)


def sml_service(meter_or_model: MeterRuntime | BaseMeterModel) -> SmlService:
    """The factory to register as ``meter.services[3]``; builds the model from a MeterRuntime if needed
    (then reachable as ``service.model`` for the daemon's ``tick``/``shutdown`` calls)."""
    if isinstance(meter_or_model, BaseMeterModel):
        return SmlService(meter_or_model)
    return SmlService(BaseMeterModel.for_runtime(meter_or_model))

