"""The gateway side of SML/COSEM on the LMN (LMN-STACK.md sections 6 and 7): a sans-I/O client layer.

:class:`SmlClient` implements :class:`bab.hdlc.upper.ClientLayer`: it sends one request file
(PublicOpen.Req, the requests, PublicClose.Req), collects the response file (which may span several I-frames),
and turns it into an :class:`SmlResult`: readings for registers (value + scaler_unit + status), the octet
strings of identification objects, attentions. Used by the software gateway's reader
(:mod:`bab.gateway.sml_reader`) and by labs to write parameters (:meth:`SmlClient.set_parameter`, e.g. the
crypto-reset 1-0:94.49.0*7).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..cosem.base_meter import (
    DEVICE_ID,
    ENERGY_EXPORT,
    ENERGY_IMPORT,
    FIRMWARE_VERSION,
    MANUFACTURER,
    POWER,
    SECONDS_INDEX,
    STATUS_WORD,
)
from ..cosem.objects import AttrValue, CosemClass, ObjectName
from ..obis import Obis
from ..reading import Reading, ReadingStatus
from ..units import Unit
from . import encode_sml
from .attention import AttentionCode, attention_name
from .messages import (
    AttentionRes,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    MessageBody,
    PublicCloseReq,
    PublicOpenReq,
    PublicOpenRes,
    SetProcParameterReq,
    SmlFile,
    SmlMessage,
)
from .quirks import Quirk
from .readings import readings_from_get_list
from .stream import FileDecoded, FileRejected, SmlStreamDecoder
from .tl import Unsigned
from .types import CosemScalerUnit, ProcParKind, ProcParValue, SecIndex, Tree

DEFAULT_CLIENT_ID = b"BABSMGW"


@dataclass(frozen=True, slots=True)
class ObjectRequest:
    """One object to read: its name and the attributes (request order = answer order)."""

    name: ObjectName
    attributes: tuple[int, ...] = (2,)

    def request(self) -> GetProcParameterReq:
        return GetProcParameterReq(parameter_tree_path=[self.name.to_bytes(),
                                                        *(a.to_bytes(2, "big") for a in self.attributes)])


_ADV = CosemClass.ADVANCED_EXT_REGISTER
#: What the software gateway reads from a base meter: 1.8.0, 2.8.0, 16.7.0 and the identification objects.
DEFAULT_OBJECTS: tuple[ObjectRequest, ...] = (
    ObjectRequest(ObjectName(ENERGY_IMPORT, _ADV), (2, 3, 4, 5)),
    ObjectRequest(ObjectName(ENERGY_EXPORT, _ADV), (2, 3, 4, 5)),
    ObjectRequest(ObjectName(POWER, CosemClass.REGISTER), (2, 3)),
    ObjectRequest(ObjectName(DEVICE_ID, CosemClass.DATA)),
    ObjectRequest(ObjectName(MANUFACTURER, CosemClass.DATA)),
    ObjectRequest(ObjectName(FIRMWARE_VERSION, CosemClass.DATA)),
)



def objects_for(server_id: bytes) -> tuple[ObjectRequest, ...]:
    """What the software gateway reads from a meter of this server ID: a gas, water, heat or cooling meter
    (the medium digit of its ID, :mod:`bab.medium`) gets its main register asked for instead of 1.8.0/2.8.0/16.7.0."""
    from ..medium import Medium
    from ..meter_id import MeterId

    try:
        medium = Medium.of_sparte(MeterId.from_server_id(bytes(server_id)).sparte)
    except (ValueError, UnicodeDecodeError):
        medium = None
    main = medium.main_register if medium is not None else None
    if medium is None or medium is Medium.ELECTRICITY or main is None:
        return DEFAULT_OBJECTS
    return (ObjectRequest(ObjectName(main, _ADV), (2, 3, 4, 5)), *DEFAULT_OBJECTS[3:])


_STATUS_ATTRIBUTE = {CosemClass.ADVANCED_EXT_REGISTER: 5, CosemClass.SIGNED_EXT_REGISTER: 4}


@dataclass(slots=True)
class Attention:
    """An SML_Attention.Res of the response: the object it concerns (details name), its number and text."""

    name: bytes | None
    number: bytes
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.number == AttentionCode.OK.to_bytes()

    def __str__(self) -> str:
        what = f" for {self.name.hex()}" if self.name else ""
        return f"{attention_name(self.number)}{what}{': ' + self.message if self.message else ''}"


@dataclass(slots=True)
class SmlResult:
    """What one conversation yielded."""

    server_id: bytes
    readings: list[Reading] = field(default_factory=list)
    #: every attribute value received: object name -> attribute number -> value
    attributes: dict[bytes, dict[int, AttrValue]] = field(default_factory=dict)
    #: octet-string Data objects (device ID, manufacturer, firmware version ...)
    identification: dict[Obis, bytes] = field(default_factory=dict)
    attentions: list[Attention] = field(default_factory=list)
    ref_time: int | None = None  # the seconds index from PublicOpen.Res
    status_word: int | None = None
    error: str | None = None  # the conversation failed (no response, undecodable response, link error)

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.ok for a in self.attentions)

    def reading(self, obis: Obis | str) -> Reading | None:
        if isinstance(obis, str):
            obis = Obis.parse(obis)
        return next((r for r in self.readings if r.obis == obis), None)


def parse_response(file: SmlFile, server_id: bytes) -> SmlResult:
    """Turn a response file into an :class:`SmlResult` (unknown parts are ignored, never raised)."""
    result = SmlResult(server_id)
    for m in file.messages:
        body = m.body
        answered_by = getattr(body, "server_id", None)
        if server_id and answered_by and bytes(answered_by) != bytes(server_id) and result.error is None:
            result.error = f"answer from server ID {bytes(answered_by).hex()}, asked {bytes(server_id).hex()}"
        if type(body) is PublicOpenRes and type(body.ref_time) is SecIndex:
            result.ref_time = body.ref_time.value
        elif type(body) is AttentionRes:
            name = body.attention_details.parameter_name if body.attention_details else None
            text = body.attention_msg.decode("utf-8", "replace") if body.attention_msg else ""
            result.attentions.append(Attention(name, body.attention_no, text))
        elif type(body) is GetProcParameterRes:
            _parse_tree(body.parameter_tree, result)
        elif type(body) is GetListRes:
            # The meter's whole list: registers not asked for one by one are added (asked ones win).
            known = {r.obis for r in result.readings}
            for r in readings_from_get_list(body, quirks=Quirk.DEFAULT):
                if r.obis not in known:
                    result.readings.append(r)
    return result


def _parse_tree(tree: Tree, result: SmlResult) -> None:
    name = tree.parameter_name
    attrs: dict[int, AttrValue] = {}
    for child in tree.child_list or ():
        pv = child.parameter_value
        if len(child.parameter_name) == 2 and pv is not None and pv.kind is ProcParKind.VALUE:
            attrs[int.from_bytes(child.parameter_name, "big")] = pv.value  # type: ignore[assignment]
    result.attributes[name] = attrs
    if len(name) != 9:
        return
    obj = ObjectName.from_bytes(name)
    value = attrs.get(2)
    if obj.class_id == CosemClass.DATA:
        if type(value) is bytes:
            result.identification[obj.obis] = value
        elif isinstance(value, Unsigned) and obj.obis == STATUS_WORD:
            result.status_word = value.value
        elif isinstance(value, Unsigned) and obj.obis == SECONDS_INDEX and result.ref_time is None:
            result.ref_time = value.value
        return
    su = attrs.get(3)
    if not isinstance(value, Unsigned) or type(su) is not CosemScalerUnit:
        return
    unit = Unit(su.unit) if su.unit in Unit._value2member_map_ else Unit.COUNT
    status = ReadingStatus.OK
    status_attr = _STATUS_ATTRIBUTE.get(obj.class_id)  # type: ignore[call-overload]
    raw_status = attrs.get(status_attr) if status_attr else None
    if isinstance(raw_status, Unsigned):
        status = ReadingStatus(raw_status.value & 0x3F)
    result.readings.append(Reading(obj.obis, value.value, su.scaler, unit, status))  # scaler is an int8


class SmlClient:
    """One request file, one response file (implements :class:`bab.hdlc.upper.ClientLayer`)."""

    _file_ids = itertools.count(1)

    def __init__(self, server_id: bytes, requests: Sequence[MessageBody], *, client_id: bytes = DEFAULT_CLIENT_ID,
                 on_done: Callable[[SmlResult], None] | None = None) -> None:
        self.server_id = bytes(server_id)
        self.on_done = on_done
        file_id = next(self._file_ids) & 0xFFFFFFFF
        self.req_file_id = file_id.to_bytes(4, "big")
        messages = [SmlMessage(self.req_file_id + b"\x01", PublicOpenReq(
            client_id=client_id, req_file_id=self.req_file_id, server_id=self.server_id))]
        for i, body in enumerate(requests):
            messages.append(SmlMessage(self.req_file_id + bytes((i + 2,)), body))
        messages.append(SmlMessage(self.req_file_id + bytes((len(requests) + 2,)), PublicCloseReq()))
        self.request = encode_sml(messages)
        self._out = bytearray(self.request)
        self._decoder = SmlStreamDecoder(Quirk.DEFAULT)
        self.result: SmlResult | None = None

    @classmethod
    def read_objects(cls, server_id: bytes, objects: Sequence[ObjectRequest] = DEFAULT_OBJECTS,
                     *, full_list: bool = False, client_id: bytes = DEFAULT_CLIENT_ID, **kw: object) -> SmlClient:
        """A client that reads ``objects`` with one GetProcParameter.Req each (and, with ``full_list``, the
        meter's GetList: every register it has)."""
        requests: list[MessageBody] = [o.request() for o in objects]
        if full_list:
            requests.append(GetListReq(client_id=client_id, server_id=server_id))
        return cls(server_id, requests, client_id=client_id, **kw)  # type: ignore[arg-type]

    @classmethod
    def set_parameter(cls, server_id: bytes, name: ObjectName | bytes, value: bool | bytes | Unsigned,
                      attribute: int = 2, **kw: object) -> SmlClient:
        """A client that writes one attribute (answer: an attention, OK or ``FE xx``, in ``result.attentions``)."""
        raw = name.to_bytes() if isinstance(name, ObjectName) else bytes(name)
        attr = attribute.to_bytes(2, "big")
        tree = Tree(raw, None, [Tree(attr, ProcParValue(ProcParKind.VALUE, value))])
        return cls(server_id, [SetProcParameterReq(parameter_tree_path=[raw, attr], parameter_tree=tree)],
                   **kw)  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------- ClientLayer

    def data_to_send(self, max_size: int) -> bytes:
        chunk = bytes(self._out[:max_size])
        del self._out[:max_size]
        return chunk

    def data_received(self, data: bytes) -> None:
        if self.result is not None:
            return
        for event in self._decoder.feed(data):
            if type(event) is FileDecoded:
                self._finish(parse_response(event.file, self.server_id))
                return
            if type(event) is FileRejected:
                self._finish(SmlResult(self.server_id, error=f"undecodable response: {event.error}"))
                return

    def is_done(self) -> bool:
        return self.result is not None

    def connection_lost(self, reason: str | None) -> None:
        if self.result is None:
            self._finish(SmlResult(self.server_id, error=reason or "connection closed before the response"))

    def _finish(self, result: SmlResult) -> None:
        self.result = result
        if self.on_done is not None:
            self.on_done(result)
