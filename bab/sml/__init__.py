"""SML 1.04 codec (BSI TR-03109-1 Anlage IVb; LMN-STACK.md sections 6, 7, 9.1), sans-I/O, both directions.

Quick use::

    from bab.sml import SmlMessage, PublicOpenRes, GetListRes, PublicCloseRes, encode_sml, decode_sml
    wire = encode_sml([SmlMessage(b"\\x01", PublicOpenRes(...)), ...])   # transport v1 bytes
    sml_file = decode_sml(wire)                                            # SmlFile
    decoder = SmlStreamDecoder(Quirk.EDL); events = decoder.feed(chunk)   # streaming

Modules: :mod:`.tl` (TL primitives), :mod:`.types` (SML_Time, SML_Value, ListEntry, Tree, ...),
:mod:`.messages` (bodies, SML_Message, file), :mod:`.transport` (transport v1), :mod:`.stream`
(streaming receiver), :mod:`.attention` (attention numbers), :mod:`.quirks` (named workarounds),
:mod:`.readings` (GetList.Res -> bab.reading.Reading), :mod:`.errors` (SmlError hierarchy).
"""

from __future__ import annotations

from .attention import AttentionCode, attention_name
from .errors import (
    SmlCrcError,
    SmlEncodeError,
    SmlError,
    SmlFileTooLarge,
    SmlTransportError,
    SmlTruncated,
    SmlTypeError,
    SmlUnsupportedMessage,
)
from .messages import (
    AttentionRes,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    GetProfileListRes,
    GetProfilePackReq,
    GetProfilePackRes,
    MessageBody,
    OpaqueBody,
    PublicCloseReq,
    PublicCloseRes,
    PublicOpenReq,
    PublicOpenRes,
    SetProcParameterReq,
    SmlFile,
    SmlMessage,
    decode_file,
    decode_message,
    encode_file,
    encode_message,
)
from .quirks import Quirk
from .stream import FileDecoded, FileRejected, SmlStreamDecoder
from .tl import Integer, Unsigned
from .transport import BytesDiscarded, TransportDecoder, decode_transport, encode_transport
from .types import (
    CosemScalerUnit,
    ListEntry,
    LocalTimestamp,
    PeriodEntry,
    ProcParKind,
    ProcParValue,
    ProfObjHeaderEntry,
    ProfObjPeriodEntry,
    SecIndex,
    Timestamp,
    TimestampedValue,
    Tree,
    TupelEntry,
    ValueEntry,
)


def encode_sml(messages: list[SmlMessage] | SmlFile) -> bytes:
    """Encode messages as one SML file wrapped in transport v1 (what goes on the wire)."""
    return encode_transport(encode_file(messages))


def decode_sml(data: bytes | bytearray, quirks: Quirk = Quirk.DEFAULT) -> SmlFile:
    """Decode one complete transport v1 frame into an SML file (raises SmlError subclasses)."""
    return decode_file(decode_transport(data, quirks), quirks)


__all__ = [
    "AttentionCode", "AttentionRes", "BytesDiscarded", "CosemScalerUnit", "FileDecoded", "FileRejected",
    "GetListReq", "GetListRes", "GetProcParameterReq", "GetProcParameterRes", "GetProfileListReq",
    "GetProfileListRes", "GetProfilePackReq", "GetProfilePackRes", "Integer", "ListEntry", "LocalTimestamp",
    "MessageBody", "OpaqueBody", "PeriodEntry", "ProcParKind", "ProcParValue", "ProfObjHeaderEntry",
    "ProfObjPeriodEntry", "PublicCloseReq", "PublicCloseRes", "PublicOpenReq", "PublicOpenRes", "Quirk",
    "SecIndex", "SetProcParameterReq", "SmlCrcError", "SmlEncodeError", "SmlError", "SmlFile",
    "SmlFileTooLarge", "SmlMessage", "SmlStreamDecoder", "SmlTransportError", "SmlTruncated", "SmlTypeError",
    "SmlUnsupportedMessage", "Timestamp", "TimestampedValue", "TransportDecoder", "Tree", "TupelEntry",
    "Unsigned", "ValueEntry", "attention_name", "decode_file", "decode_message", "decode_sml", "decode_transport",
    "encode_file", "encode_message", "encode_sml", "encode_transport",
]
