"""SML cases (LMN-STACK.md sections 6 and 7): Open/Close framing, GetProcParameter of the base-meter objects
with their types and attribute order, scaler and unit, GetList, GetProfileList, attentions for unknown objects
and bad requests, and the connection staying usable after an error."""

from __future__ import annotations

from bab.cosem.base_meter import (
    DEVICE_ID,
    ENERGY_EXPORT,
    ENERGY_IMPORT,
    POWER,
    STATUS_WORD,
)
from bab.cosem.objects import CosemClass, ObjectName
from bab.cosem.profile import PROFILE_OBIS
from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.obis import Obis
from bab.sml.attention import AttentionCode, attention_name
from bab.sml.messages import (
    AttentionRes,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    GetProfileListRes,
    MessageBody,
    PublicCloseRes,
    PublicOpenRes,
    SmlFile,
)
from bab.sml.quirks import Quirk
from bab.sml.stream import FileDecoded, FileRejected, SmlStreamDecoder
from bab.sml.tl import Integer, Unsigned
from bab.sml.types import CosemScalerUnit, ProcParKind

from .case import CaseFailed, CaseSkipped, case, check
from .common import ensure_registered, sml_request

G = "SML"
_ADV = CosemClass.ADVANCED_EXT_REGISTER
UNIT_WH, UNIT_W = 30, 27  # DLMS unit codes


class SmlFilesClient:
    """Client layer: sends request files one after the other on one connection, each once the answer to the
    previous one is complete; keeps every answer (decoded, or the reason it was rejected)."""

    def __init__(self, files: list[bytes]) -> None:
        self.files = list(files)
        self.answers: list[FileDecoded | FileRejected] = []
        self.received = bytearray()
        self.lost: str | None = None
        self._decoder = SmlStreamDecoder(Quirk.DEFAULT)
        self._out = bytearray()
        self._sent = 0

    def data_to_send(self, max_size: int) -> bytes:
        if not self._out and self._sent < len(self.files) and len(self.answers) == self._sent:
            self._out += self.files[self._sent]
            self._sent += 1
        chunk = bytes(self._out[:max_size])
        del self._out[:max_size]
        return chunk

    def data_received(self, data: bytes) -> None:
        self.received += data
        for e in self._decoder.feed(data):
            if isinstance(e, FileDecoded | FileRejected):
                self.answers.append(e)

    def is_done(self) -> bool:
        return len(self.answers) >= len(self.files)

    def connection_lost(self, reason: str | None) -> None:
        self.lost = reason


def converse_sml(s, rec, files: list[bytes]) -> SmlFilesClient:  # type: ignore[no-untyped-def]
    """Send ``files`` on one connection: plain SML (selector 3), or inside TLS (selector 1) when the meter is
    paired and the suite holds the TLS credentials. Fails unless every file was answered."""
    from .tls_cases import tls_client_for

    address = ensure_registered(s)
    client = SmlFilesClient(files)
    result = s.tester.converse(address, Selector.SML_COSEM, client, timeout=40.0)
    if isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)" and not client.answers:
        layer = tls_client_for(s, client := SmlFilesClient(files))
        if layer is None:
            raise CaseSkipped("plain SML is refused (DM) and the suite has no TLS credentials for this meter")
        result = s.tester.converse(address, Selector.TLS_SML_COSEM, layer, timeout=40.0)
        rec.figure("channel", "TLS (selector 1)")
    else:
        rec.figure("channel", "plain (selector 3)")
    for i, a in enumerate(client.answers):
        if isinstance(a, FileDecoded):
            rec.frame(s.tester.now, "rx", a.payload[:512], f"SML answer file {i + 1}")
    if len(client.answers) < len(files):
        why = result.reason if isinstance(result, ev.ExchangeFailed) else "the meter ended before answering"
        raise CaseFailed(f"{len(client.answers)} of {len(files)} request files answered ({why})")
    return client


def decoded(client: SmlFilesClient, i: int = 0) -> SmlFile:
    a = client.answers[i]
    if isinstance(a, FileRejected):
        raise CaseFailed(f"answer file {i + 1} rejected: {a.error}")
    return a.file


def bodies(file: SmlFile, kind: type[MessageBody]) -> list:  # type: ignore[type-arg]
    return [m.body for m in file.messages if type(m.body) is kind]


def attentions(file: SmlFile) -> list[AttentionRes]:
    return bodies(file, AttentionRes)


def get_pp(obis: Obis, cls: int, attrs: tuple[int, ...]) -> GetProcParameterReq:
    return GetProcParameterReq(parameter_tree_path=[ObjectName(obis, cls).to_bytes(),
                                                    *(a.to_bytes(2, "big") for a in attrs)])


@case("SML-FRM-01", "Open/Close framing of the answer file (transport CRC, file ID, server ID)",
      "LMN-STACK.md 6 (SML 1.04 transport v1, PublicOpen/PublicClose)", group=G,
      catches=("bad_sml_crc", "wrong_server_id", "truncated_sml"))
def framing(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    req = sml_request(s.server_id, [get_pp(ENERGY_IMPORT, _ADV, (2, 3, 4, 5))], file_id=b"FRM1")
    client = converse_sml(s, rec, [req])
    f = decoded(client)
    msgs = [m.body for m in f.messages]
    rec.figure("messages", [type(b).__name__ for b in msgs])
    rec.figure("answer_bytes", len(client.received))
    check(msgs and type(msgs[0]) is PublicOpenRes, "the answer file does not start with PublicOpen.Res")
    check(type(msgs[-1]) is PublicCloseRes, "the answer file does not end with PublicClose.Res")
    check(msgs[0].req_file_id == b"FRM1", f"PublicOpen.Res echoes reqFileId {msgs[0].req_file_id!r}, sent b'FRM1'")
    for b in msgs:
        sid = getattr(b, "server_id", None)
        check(not sid or bytes(sid) == bytes(s.server_id),
              f"{type(b).__name__} carries server ID {bytes(sid).hex() if sid else ''}, the meter's is "
              f"{s.server_id.hex()}")


def _check_tree(res: GetProcParameterRes, obj: ObjectName, attrs: tuple[int, ...]) -> dict[int, object]:
    tree = res.parameter_tree
    check(tree.parameter_name == obj.to_bytes(), f"answer names {tree.parameter_name.hex()}, asked "
          f"{obj.to_bytes().hex()}")
    children = tree.child_list or []
    names = [int.from_bytes(c.parameter_name, "big") for c in children]
    check(names == list(attrs), f"{obj.obis}: attributes {names} in the answer, asked {list(attrs)} in that order")
    values = {}
    for c in children:
        pv = c.parameter_value
        check(pv is not None and pv.kind is ProcParKind.VALUE, f"{obj.obis} attribute "
              f"{int.from_bytes(c.parameter_name, 'big')} has no value")
        values[int.from_bytes(c.parameter_name, "big")] = pv.value
    return values


@case("SML-GPP-01", "GetProcParameter of the base-meter objects: types and class 0x8002 attribute order",
      "LMN-STACK.md 7 (object list; 0x8002: 2 value, 3 scaler_unit, 4 capture time, 5 status)", group=G,
      catches=("attention",))
def get_proc_parameter(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    asks = [(ObjectName(ENERGY_IMPORT, _ADV), (2, 3, 4, 5)), (ObjectName(ENERGY_EXPORT, _ADV), (2, 3, 4, 5)),
            (ObjectName(POWER, CosemClass.REGISTER), (2, 3)), (ObjectName(DEVICE_ID, CosemClass.DATA), (2,)),
            (ObjectName(STATUS_WORD, CosemClass.DATA), (2,))]
    req = sml_request(s.server_id, [get_pp(o.obis, o.class_id, a) for o, a in asks], file_id=b"GPP1")
    f = decoded(converse_sml(s, rec, [req]))
    att = attentions(f)
    check(not att, "attention instead of values: " + ", ".join(
        f"{attention_name(a.attention_no)}" for a in att))
    answers = bodies(f, GetProcParameterRes)
    check(len(answers) == len(asks), f"{len(answers)} GetProcParameter.Res for {len(asks)} requests")
    types = {}
    for (obj, attrs), res in zip(asks, answers, strict=True):
        values = _check_tree(res, obj, attrs)
        types[str(obj.obis)] = {a: type(v).__name__ for a, v in values.items()}
        if obj.class_id in (_ADV, CosemClass.REGISTER):
            check(isinstance(values[2], Unsigned | Integer), f"{obj.obis} value is {type(values[2]).__name__}, "
                  "expected an integer")
            check(type(values[3]) is CosemScalerUnit, f"{obj.obis} scaler_unit is {type(values[3]).__name__}")
        if obj.class_id == _ADV:
            check(isinstance(values[5], Unsigned), f"{obj.obis} status is {type(values[5]).__name__}")
        if obj.obis == DEVICE_ID:
            check(type(values[2]) is bytes and values[2][:10] == s.server_id[:10],
                  f"device ID {values[2]!r} is not the server ID")
        if obj.obis == STATUS_WORD:
            check(isinstance(values[2], Unsigned), f"status word is {type(values[2]).__name__}")
    rec.figure("types", types)


@case("SML-SU-01", "scaler and unit of energy (Wh) and power (W)",
      "LMN-STACK.md 7 (scaler_unit, DLMS units 30 Wh / 27 W)", group=G)
def scaler_unit(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    req = sml_request(s.server_id, [get_pp(ENERGY_IMPORT, _ADV, (2, 3)), get_pp(POWER, CosemClass.REGISTER, (2, 3))],
                      file_id=b"SU01")
    f = decoded(converse_sml(s, rec, [req]))
    answers = bodies(f, GetProcParameterRes)
    check(len(answers) == 2, f"{len(answers)} answers for 2 requests ({len(attentions(f))} attentions)")
    for res, unit, what in zip(answers, (UNIT_WH, UNIT_W), ("1.8.0", "16.7.0"), strict=True):
        children = res.parameter_tree.child_list or []
        su = next((c.parameter_value.value for c in children if c.parameter_name == b"\x00\x03"
                   and c.parameter_value is not None), None)
        check(type(su) is CosemScalerUnit, f"{what}: no scaler_unit")
        rec.figure(f"{what}_scaler", su.scaler)
        rec.figure(f"{what}_unit", su.unit)
        check(su.unit == unit, f"{what}: unit {su.unit}, expected {unit}")
        check(-9 <= su.scaler <= 9, f"{what}: scaler {su.scaler} out of -9..9")


@case("SML-GL-01", "GetList answers the meter's list with 1.8.0 in Wh",
      "LMN-STACK.md 6 (SML_GetList), 7", group=G)
def get_list(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    req = sml_request(s.server_id, [GetListReq(client_id=b"BABCONF", server_id=s.server_id)], file_id=b"GL01")
    f = decoded(converse_sml(s, rec, [req]))
    lists = bodies(f, GetListRes)
    check(len(lists) == 1, f"{len(lists)} GetList.Res ({len(attentions(f))} attentions)")
    entries = {e.obj_name[:6]: e for e in lists[0].val_list}
    rec.figure("entries", len(entries))
    e = entries.get(ENERGY_IMPORT.to_bytes()[:6])
    check(e is not None, "the list has no 1-0:1.8.0")
    check(e.unit == UNIT_WH, f"1.8.0 in the list has unit {e.unit}")
    check(isinstance(e.value, Unsigned | Integer), f"1.8.0 value is {type(e.value).__name__}")


@case("SML-PL-01", "GetProfileList of the load profile 1-0:99.1.0*255",
      "LMN-STACK.md 6.3, 7 (load profile; an empty profile answers 'no entry')", group=G)
def profile_list(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    req = sml_request(s.server_id, [GetProfileListReq(server_id=s.server_id,
                                                      parameter_tree_path=[PROFILE_OBIS.to_bytes()])], b"PL01")
    f = decoded(converse_sml(s, rec, [req]))
    periods = bodies(f, GetProfileListRes)
    att = attentions(f)
    rec.figure("periods", len(periods))
    if periods:
        for p in periods:
            check(p.parameter_tree_path and p.parameter_tree_path[0] == PROFILE_OBIS.to_bytes(),
                  "a GetProfileList.Res names another profile")
        return
    ok = {AttentionCode.PROFILE_HAS_NO_ENTRY.to_bytes(), AttentionCode.NO_ENTRIES_IN_RANGE.to_bytes()}
    check(att and att[0].attention_no in ok, "neither profile periods nor 'no entry': " + ", ".join(
        attention_name(a.attention_no) for a in att))
    rec.figure("attention", attention_name(att[0].attention_no))


UNKNOWN = Obis(1, 0, 99, 99, 99, 255)


@case("SML-ATT-01", "an unknown object is answered with an error attention naming it",
      "LMN-STACK.md 6 (SML_Attention.Res), 7", group=G)
def unknown_object(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    req = sml_request(s.server_id, [get_pp(UNKNOWN, CosemClass.REGISTER, (2,))], b"AT01")
    f = decoded(converse_sml(s, rec, [req]))
    att = attentions(f)
    check(att, "no attention for an unknown object")
    a = att[0]
    rec.figure("attention", attention_name(a.attention_no))
    check(a.attention_no[:4] == b"\x81\x81\xc7\xc7" and a.attention_no[4] == 0xFE,
          f"attention {a.attention_no.hex()} is not an error (81 81 C7 C7 FE xx)")
    check(not bodies(f, GetProcParameterRes), "a value was answered for an object that does not exist")


@case("SML-ATT-02", "bad requests are answered with error attentions (empty path, foreign server ID)",
      "LMN-STACK.md 6 (SML_Attention.Res: FE 0A order not executed, FE 03 server ID unavailable)", group=G)
def bad_requests(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    empty = sml_request(s.server_id, [GetProcParameterReq(parameter_tree_path=[])], b"AT02")
    foreign = sml_request(bytes.fromhex("0a01434f4e4600000001"), [get_pp(ENERGY_IMPORT, _ADV, (2,))], b"AT03")
    client = converse_sml(s, rec, [empty, foreign])
    codes = []
    for i in range(2):
        f = decoded(client, i)
        att = attentions(f)
        check(att, f"request file {i + 1} (bad) answered without an attention")
        codes.append(attention_name(att[0].attention_no))
        check(att[0].attention_no[4] == 0xFE, f"file {i + 1}: attention {att[0].attention_no.hex()} is not an error")
        check(not bodies(f, GetProcParameterRes), f"file {i + 1}: a value was answered for a bad request")
    rec.figure("attentions", codes)


@case("SML-ERR-01", "the connection stays usable after an error",
      "LMN-STACK.md 6 (errors answered in place of the response; the connection stays open)", group=G)
def usable_after_error(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    bad = sml_request(s.server_id, [get_pp(UNKNOWN, CosemClass.REGISTER, (2,))], b"ER01")
    good = sml_request(s.server_id, [get_pp(ENERGY_IMPORT, _ADV, (2, 3))], b"ER02")
    client = converse_sml(s, rec, [bad, good])
    check(attentions(decoded(client, 0)), "the bad request was not answered with an attention")
    f = decoded(client, 1)
    check(bodies(f, GetProcParameterRes), "after the error the next request on the same connection got no value: "
          + ", ".join(attention_name(a.attention_no) for a in attentions(f)))
