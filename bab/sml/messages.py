"""SML 1.04 message bodies, SML_Message and the SML file (LMN-STACK.md 6.2, 6.3).

Each body is a dataclass with its tag (``TAG``) and a field codec table, so decoding and encoding follow the
field lists of table 6.3 one to one. :func:`decode_file` / :func:`encode_file` turn an SML file (the transport
payload, see :mod:`bab.sml.transport`) into :class:`SmlFile` and back; the message CRC (X-25 over the message
from its ``76`` up to the CRC field, sent as Unsigned16 holding the byte-swapped value) is checked and written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from bab.crc import crc16_kermit, crc16_x25

from .errors import SmlCrcError, SmlEncodeError, SmlError, SmlTruncated, SmlTypeError, SmlUnsupportedMessage
from .quirks import Quirk
from .tl import Reader, write_bool, write_octets, write_uint_fixed
from .types import (
    ListEntry,
    PeriodEntry,
    ProfObjHeaderEntry,
    ProfObjPeriodEntry,
    SmlTime,
    Tree,
    read_header_entry,
    read_list_entries,
    read_octet_list,
    read_opt_octet_list,
    read_opt_time,
    read_opt_tree,
    read_period_entry,
    read_prof_period_entry,
    read_time,
    read_tree,
    write_header_entry,
    write_list,
    write_list_entry,
    write_octet_list,
    write_period_entry,
    write_prof_period_entry,
    write_time,
    write_tree,
)

_Read = Callable[[Reader], Any]
_Write = Callable[[bytearray, Any], None]


def _opt(read: _Read, write: _Write) -> tuple[_Read, _Write]:
    def read_opt(r: Reader) -> Any:
        return None if r.skip_absent() else read(r)

    def write_opt(out: bytearray, v: Any) -> None:
        if v is None:
            out.append(0x01)
        else:
            write(out, v)

    return read_opt, write_opt


def _required(read: _Read, write: _Write) -> tuple[_Read, _Write]:
    def write_required(out: bytearray, v: Any) -> None:
        if v is None:
            raise SmlEncodeError("a mandatory field is None")
        write(out, v)

    return read, write_required


def _list_of(read_item: _Read, write_item: _Write) -> tuple[_Read, _Write]:
    def read(r: Reader) -> list[Any]:
        return [read_item(r) for _ in range(r.list_header())]

    def write(out: bytearray, v: list[Any]) -> None:
        write_list(out, v, write_item)

    return read, write


OCT: tuple[_Read, _Write] = (Reader.octets, write_octets)
OPT_OCT: tuple[_Read, _Write] = (Reader.opt_octets, write_octets)
U8 = (lambda r: r.uint(8), lambda o, v: write_uint_fixed(o, v, 8))
U32 = (lambda r: r.uint(32), lambda o, v: write_uint_fixed(o, v, 32))
U64 = (lambda r: r.uint(64), lambda o, v: write_uint_fixed(o, v, 64))
OPT_U8 = _opt(*U8)
OPT_BOOL = _opt(Reader.boolean, write_bool)
TIME = _required(read_time, write_time)
OPT_TIME = (read_opt_time, write_time)
PATH = _required(read_octet_list, write_octet_list)
OPT_OCT_LIST = (read_opt_octet_list, write_octet_list)
TREE = _required(read_tree, write_tree)
OPT_TREE = (read_opt_tree, write_tree)
LIST_ENTRIES = _required(read_list_entries, lambda o, v: write_list(o, v, write_list_entry))
PERIOD_ENTRIES = _required(*_list_of(read_period_entry, write_period_entry))
HEADER_ENTRIES = _required(*_list_of(read_header_entry, write_header_entry))
PROF_PERIOD_ENTRIES = _required(*_list_of(read_prof_period_entry, write_prof_period_entry))


class MessageBody:
    """Base of the message bodies. ``TAG`` is the SML_MessageBody choice, ``CODECS`` one codec per field."""

    TAG: ClassVar[int]
    CODECS: ClassVar[tuple[tuple[_Read, _Write], ...]]
    _READERS: ClassVar[tuple[_Read, ...]]
    _WRITERS: ClassVar[tuple[tuple[str, _Write], ...]]
    _HEADER: ClassVar[int]
    __slots__ = ()

    @classmethod
    def _setup(cls) -> None:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if len(names) != len(cls.CODECS):
            raise AssertionError(f"{cls.__name__}: {len(names)} fields but {len(cls.CODECS)} codecs")
        cls._READERS = tuple(c[0] for c in cls.CODECS)
        cls._WRITERS = tuple((n, c[1]) for n, c in zip(names, cls.CODECS, strict=True))
        cls._HEADER = 0x70 | len(names)

    @classmethod
    def read(cls, r: Reader) -> MessageBody:
        r.list_header(len(cls._READERS))
        return cls(*[read(r) for read in cls._READERS])

    def write(self, out: bytearray) -> None:
        out.append(self._HEADER)
        for name, write in self._WRITERS:
            write(out, getattr(self, name))


@dataclass(slots=True)
class PublicOpenReq(MessageBody):
    """SML_PublicOpen.Req (0x0100)."""

    TAG: ClassVar[int] = 0x0100
    CODECS: ClassVar = (OPT_OCT, OCT, OCT, OPT_OCT, OPT_OCT, OPT_OCT, OPT_U8)
    codepage: bytes | None = None
    client_id: bytes = b""
    req_file_id: bytes = b""
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    sml_version: int | None = None


@dataclass(slots=True)
class PublicOpenRes(MessageBody):
    """SML_PublicOpen.Res (0x0101)."""

    TAG: ClassVar[int] = 0x0101
    CODECS: ClassVar = (OPT_OCT, OPT_OCT, OCT, OCT, OPT_TIME, OPT_U8)
    codepage: bytes | None = None
    client_id: bytes | None = None
    req_file_id: bytes = b""
    server_id: bytes = b""
    ref_time: SmlTime | None = None
    sml_version: int | None = None


@dataclass(slots=True)
class PublicCloseReq(MessageBody):
    """SML_PublicClose.Req (0x0200)."""

    TAG: ClassVar[int] = 0x0200
    CODECS: ClassVar = (OPT_OCT,)
    global_signature: bytes | None = None


@dataclass(slots=True)
class PublicCloseRes(MessageBody):
    """SML_PublicClose.Res (0x0201)."""

    TAG: ClassVar[int] = 0x0201
    CODECS: ClassVar = (OPT_OCT,)
    global_signature: bytes | None = None


_PROFILE_REQ_CODECS = (OPT_OCT, OPT_OCT, OPT_OCT, OPT_BOOL, OPT_TIME, OPT_TIME, PATH, OPT_OCT_LIST, OPT_TREE)


@dataclass(slots=True)
class GetProfilePackReq(MessageBody):
    """SML_GetProfilePack.Req (0x0300); same fields as GetProfileList.Req."""

    TAG: ClassVar[int] = 0x0300
    CODECS: ClassVar = _PROFILE_REQ_CODECS
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    with_rawdata: bool | None = None
    begin_time: SmlTime | None = None
    end_time: SmlTime | None = None
    parameter_tree_path: list[bytes] = field(default_factory=list)
    object_list: list[bytes] | None = None
    das_details: Tree | None = None


@dataclass(slots=True)
class GetProfilePackRes(MessageBody):
    """SML_GetProfilePack.Res (0x0301)."""

    TAG: ClassVar[int] = 0x0301
    CODECS: ClassVar = (OCT, TIME, U32, PATH, HEADER_ENTRIES, PROF_PERIOD_ENTRIES, OPT_OCT, OPT_OCT)
    server_id: bytes = b""
    act_time: SmlTime | None = None
    reg_period: int = 0
    parameter_tree_path: list[bytes] = field(default_factory=list)
    header_list: list[ProfObjHeaderEntry] = field(default_factory=list)
    period_list: list[ProfObjPeriodEntry] = field(default_factory=list)
    rawdata: bytes | None = None
    profile_signature: bytes | None = None


@dataclass(slots=True)
class GetProfileListReq(MessageBody):
    """SML_GetProfileList.Req (0x0400)."""

    TAG: ClassVar[int] = 0x0400
    CODECS: ClassVar = _PROFILE_REQ_CODECS
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    with_rawdata: bool | None = None
    begin_time: SmlTime | None = None
    end_time: SmlTime | None = None
    parameter_tree_path: list[bytes] = field(default_factory=list)
    object_list: list[bytes] | None = None
    das_details: Tree | None = None


@dataclass(slots=True)
class GetProfileListRes(MessageBody):
    """SML_GetProfileList.Res (0x0401)."""

    TAG: ClassVar[int] = 0x0401
    CODECS: ClassVar = (OCT, TIME, U32, PATH, TIME, U64, PERIOD_ENTRIES, OPT_OCT, OPT_OCT)
    server_id: bytes = b""
    act_time: SmlTime | None = None
    reg_period: int = 0
    parameter_tree_path: list[bytes] = field(default_factory=list)
    val_time: SmlTime | None = None
    status: int = 0
    period_list: list[PeriodEntry] = field(default_factory=list)
    rawdata: bytes | None = None
    period_signature: bytes | None = None


@dataclass(slots=True)
class GetProcParameterReq(MessageBody):
    """SML_GetProcParameter.Req (0x0500)."""

    TAG: ClassVar[int] = 0x0500
    CODECS: ClassVar = (OPT_OCT, OPT_OCT, OPT_OCT, PATH, OPT_OCT)
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    parameter_tree_path: list[bytes] = field(default_factory=list)
    attribute: bytes | None = None


@dataclass(slots=True)
class GetProcParameterRes(MessageBody):
    """SML_GetProcParameter.Res (0x0501)."""

    TAG: ClassVar[int] = 0x0501
    CODECS: ClassVar = (OCT, PATH, TREE)
    server_id: bytes = b""
    parameter_tree_path: list[bytes] = field(default_factory=list)
    parameter_tree: Tree = field(default_factory=lambda: Tree(b""))


@dataclass(slots=True)
class SetProcParameterReq(MessageBody):
    """SML_SetProcParameter.Req (0x0600); there is no response message, the server answers with Attention."""

    TAG: ClassVar[int] = 0x0600
    CODECS: ClassVar = (OPT_OCT, OPT_OCT, OPT_OCT, PATH, TREE)
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    parameter_tree_path: list[bytes] = field(default_factory=list)
    parameter_tree: Tree = field(default_factory=lambda: Tree(b""))


@dataclass(slots=True)
class GetListReq(MessageBody):
    """SML_GetList.Req (0x0700)."""

    TAG: ClassVar[int] = 0x0700
    CODECS: ClassVar = (OCT, OPT_OCT, OPT_OCT, OPT_OCT, OPT_OCT)
    client_id: bytes = b""
    server_id: bytes | None = None
    username: bytes | None = None
    password: bytes | None = None
    list_name: bytes | None = None


@dataclass(slots=True)
class GetListRes(MessageBody):
    """SML_GetList.Res (0x0701): what EDL21/eHZ meters push."""

    TAG: ClassVar[int] = 0x0701
    CODECS: ClassVar = (OPT_OCT, OCT, OPT_OCT, OPT_TIME, LIST_ENTRIES, OPT_OCT, OPT_TIME)
    client_id: bytes | None = None
    server_id: bytes = b""
    list_name: bytes | None = None
    act_sensor_time: SmlTime | None = None
    val_list: list[ListEntry] = field(default_factory=list)
    list_signature: bytes | None = None
    act_gateway_time: SmlTime | None = None


@dataclass(slots=True)
class AttentionRes(MessageBody):
    """SML_Attention.Res (0xFF01); ``attention_no`` is 6 bytes, see :mod:`bab.sml.attention`."""

    TAG: ClassVar[int] = 0xFF01
    CODECS: ClassVar = (OCT, OCT, OPT_OCT, OPT_TREE)
    server_id: bytes = b""
    attention_no: bytes = b""
    attention_msg: bytes | None = None
    attention_details: Tree | None = None


@dataclass(slots=True)
class OpaqueBody:
    """A body this codec carries without interpreting it: GetCosem/SetCosem/ActionCosem (0x0800..0x0A01),
    "unfinished" in SML 1.04. ``raw`` is the encoded body element as received."""

    tag: int
    raw: bytes

    @property
    def TAG(self) -> int:  # noqa: N802 - mirrors MessageBody.TAG
        return self.tag

    def write(self, out: bytearray) -> None:
        out += self.raw


BODY_TYPES: dict[int, type[MessageBody]] = {}
for _cls in (PublicOpenReq, PublicOpenRes, PublicCloseReq, PublicCloseRes, GetProfilePackReq, GetProfilePackRes,
             GetProfileListReq, GetProfileListRes, GetProcParameterReq, GetProcParameterRes, SetProcParameterReq,
             GetListReq, GetListRes, AttentionRes):
    _cls._setup()
    BODY_TYPES[_cls.TAG] = _cls

#: GetCosem.Req/Res, SetCosem.Req/Res, ActionCosem.Req/Res: decoded as :class:`OpaqueBody`
COSEM_TAGS = frozenset((0x0800, 0x0801, 0x0900, 0x0901, 0x0A00, 0x0A01))

Body = MessageBody | OpaqueBody


# ---------------------------------------------------------------------------------------------- SML_Message


@dataclass(slots=True)
class SmlMessage:
    """SML_Message ``[transactionId, groupNo, abortOnError, messageBody, crc16, endOfSmlMsg]``.

    ``crc_kind`` tells which CRC the decoded message carried ("x25", or "kermit" with
    Quirk.HOLLEY_KERMIT_CRC); encoding always writes X-25 unless ``crc_kind == "kermit"``. ``tag_width`` is
    the wire width of the body tag (0: Unsigned16; several meters send Unsigned32). Neither takes part in ``==``.
    """

    transaction_id: bytes
    body: Body
    group_no: int = 0
    abort_on_error: int = 0
    crc_kind: str = field(default="x25", compare=False)
    tag_width: int = field(default=0, compare=False)


def _read_message(r: Reader) -> SmlMessage:
    start = r.pos
    r.list_header(6)
    tid = r.octets()
    group_no = r.uint(8)
    abort_on_error = r.uint(8)
    r.list_header(2)
    tag, tag_width = r.uint_w(32)
    cls = BODY_TYPES.get(tag)
    if cls is not None:
        body: Body = cls.read(r)
    elif tag in COSEM_TAGS:
        b0 = r.pos
        r.skip_element()
        body = OpaqueBody(tag, r.buf[b0:r.pos])
    else:
        raise SmlUnsupportedMessage(tag)
    crc_end = r.pos
    received = r.uint(16)
    data = r.buf[start:crc_end]
    x25 = crc16_x25(data)
    crc_kind = "x25"
    if received != ((x25 & 0xFF) << 8 | x25 >> 8):
        if r.quirks & Quirk.HOLLEY_KERMIT_CRC and received == crc16_kermit(data):
            crc_kind = "kermit"
        else:
            raise SmlCrcError("message", received, (x25 & 0xFF) << 8 | x25 >> 8)
    r.end_of_message()
    return SmlMessage(tid, body, group_no, abort_on_error, crc_kind, tag_width)


def write_message(out: bytearray, m: SmlMessage) -> None:
    """Append one SML_Message with its CRC and endOfSmlMsg (SmlEncodeError for anything unencodable)."""
    start = len(out)
    try:
        _write_message(out, m, start)
    except SmlError:
        del out[start:]
        raise
    except (TypeError, AttributeError, ValueError, OverflowError) as e:
        del out[start:]
        raise SmlEncodeError(f"cannot encode {type(m.body).__name__}: {e}") from e


def _write_message(out: bytearray, m: SmlMessage, start: int) -> None:
    out.append(0x76)
    write_octets(out, m.transaction_id)
    write_uint_fixed(out, m.group_no, 8)
    write_uint_fixed(out, m.abort_on_error, 8)
    out.append(0x72)
    if not isinstance(m.body, (MessageBody, OpaqueBody)):
        raise SmlEncodeError(f"not a message body: {m.body!r}")
    tag = m.body.TAG
    write_uint_fixed(out, tag, 32, m.tag_width or (2 if tag <= 0xFFFF else 4))
    m.body.write(out)
    data = bytes(out[start:])
    if m.crc_kind == "kermit":
        out.append(0x63)
        out += crc16_kermit(data).to_bytes(2, "big")
    else:
        out.append(0x63)
        out += crc16_x25(data).to_bytes(2, "little")
    out.append(0x00)


# -------------------------------------------------------------------------------------------------- file


@dataclass(slots=True)
class SmlFile:
    """An SML file: the messages of one transport frame (Open, ≥1 messages, Close; not enforced)."""

    messages: list[SmlMessage] = field(default_factory=list)

    def bodies(self, kind: type[MessageBody] | None = None) -> list[Any]:
        """The message bodies, optionally only those of one type."""
        return [m.body for m in self.messages if kind is None or type(m.body) is kind]

    @property
    def server_id(self) -> bytes | None:
        """The server ID of the first body that carries one."""
        for m in self.messages:
            sid = getattr(m.body, "server_id", None)
            if sid:
                return bytes(sid)
        return None


def decode_file(payload: bytes | bytearray | memoryview, quirks: Quirk = Quirk.DEFAULT) -> SmlFile:
    """Decode an SML file (the unescaped transport payload, fill bytes removed or not).

    Stray ``00`` bytes between and after messages are skipped (meters pad). Raises an
    :class:`~bab.sml.errors.SmlError` subclass, never anything else.
    """
    r = Reader(bytes(payload), quirks)
    buf = r.buf
    end = r.end
    messages = []
    try:
        while r.pos < end:
            if buf[r.pos] == 0x00:
                r.pos += 1
                continue
            messages.append(_read_message(r))
    except SmlError:
        raise
    except IndexError as e:  # defensive: every length is checked, but never let one escape as a crash
        raise SmlTruncated(f"input ends early ({e})") from None
    except (ValueError, TypeError, RecursionError) as e:
        raise SmlTypeError(f"malformed SML: {e}") from None
    if not messages:
        raise SmlTypeError("SML file without messages")
    return SmlFile(messages)


def decode_message(data: bytes, quirks: Quirk = Quirk.DEFAULT) -> tuple[SmlMessage, int]:
    """Decode one SML_Message at the start of ``data``; returns it and the number of bytes used."""
    r = Reader(bytes(data), quirks)
    try:
        return _read_message(r), r.pos
    except SmlError:
        raise
    except (IndexError, ValueError, TypeError, RecursionError) as e:
        raise SmlTypeError(f"malformed SML: {e}") from None


def encode_file(messages: list[SmlMessage] | SmlFile) -> bytes:
    """Encode messages back to back into an SML file (the transport payload)."""
    if isinstance(messages, SmlFile):
        messages = messages.messages
    out = bytearray()
    for m in messages:
        write_message(out, m)
    return bytes(out)


def encode_message(m: SmlMessage) -> bytes:
    out = bytearray()
    write_message(out, m)
    return bytes(out)
