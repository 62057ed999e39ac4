"""The meter's SML server: every request kind, every error path with its attention number, chunked input,
several files per connection, the connection usable after errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_sml_server_support import OTHER_SID, SID, attentions, exchange, kinds, make_model, make_server, request

from bab.cosem import ObjectName
from bab.cosem.profile import PROFILE_OBIS
from bab.obis import Obis
from bab.sml import (
    AttentionRes,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    GetProfileListRes,
    OpaqueBody,
    ProcParKind,
    ProcParValue,
    PublicCloseReq,
    PublicCloseRes,
    PublicOpenReq,
    PublicOpenRes,
    SecIndex,
    SetProcParameterReq,
    SmlMessage,
    Timestamp,
    Tree,
    decode_sml,
    encode_sml,
)
from bab.sml.client import SmlClient, parse_response
from bab.sml.messages import encode_file
from bab.sml.server import SmlServer, sml_service
from bab.sml.tl import Integer, Unsigned
from bab.sml.transport import encode_transport
from bab.sml.types import CosemScalerUnit

E_IN = ObjectName(Obis.parse("1-0:1.8.0"), 0x8002).to_bytes()
POWER = ObjectName(Obis.parse("1-0:16.7.0"), 3).to_bytes()
DEV_ID = ObjectName(Obis.parse("1-0:96.1.0"), 1).to_bytes()
RESET = ObjectName(Obis.parse("1-0:94.49.0*7"), 1).to_bytes()
A2, A3, A4, A5 = (n.to_bytes(2, "big") for n in (2, 3, 4, 5))


def gpp(*path: bytes, server_id: bytes | None = None) -> GetProcParameterReq:
    return GetProcParameterReq(server_id=server_id, parameter_tree_path=list(path))


def spp(name: bytes, value, attr: bytes = A2) -> SetProcParameterReq:
    return SetProcParameterReq(parameter_tree_path=[name, attr],
                               parameter_tree=Tree(name, None, [Tree(attr, ProcParValue(ProcParKind.VALUE, value))]))


def vector(shared_vectors, name: str) -> bytes:
    for line in (shared_vectors / "lmn-frames.txt").read_text().splitlines():
        if not line.startswith("#") and line.split(":", 1)[0].strip() == name:
            return bytes.fromhex(line.split(":", 1)[1])
    raise KeyError(name)


def shape(v):
    """The structure of a decoded value: types and widths, not the numbers."""
    if isinstance(v, Unsigned):
        return (type(v).__name__, v.width)
    if isinstance(v, Tree):
        return ("Tree", v.parameter_name if len(v.parameter_name) <= 2 else "name", shape(v.parameter_value),
                [shape(c) for c in v.child_list] if v.child_list is not None else None)
    if isinstance(v, ProcParValue):
        return (int(v.kind), shape(v.value))
    if isinstance(v, CosemScalerUnit | SecIndex):
        return type(v).__name__
    return type(v).__name__


def test_vector_request_is_answered_like_the_vector_response(tmp_path, shared_vectors):
    """The GetProcParameter.Req of vectors/lmn-frames.txt, answered by a meter with that server ID, decodes
    the same way as the vector's response (same messages, path, attribute order and value types)."""
    model = make_model(tmp_path)
    model.server_id = bytes.fromhex("0A01454D4800004AF1FD")
    server = SmlServer(model)
    mine = exchange(server, vector(shared_vectors, "SML GetProcParameter.Req"))
    ref = decode_sml(vector(shared_vectors, "SML GetProcParameter.Res"))
    assert kinds(mine) == kinds(ref) == ["PublicOpenRes", "GetProcParameterRes", "PublicCloseRes"]
    assert [m.transaction_id for m in mine.messages] == [m.transaction_id for m in ref.messages]
    o_mine, o_ref = mine.messages[0].body, ref.messages[0].body
    assert (o_mine.client_id, o_mine.req_file_id, o_mine.server_id) == (o_ref.client_id, o_ref.req_file_id,
                                                                       o_ref.server_id)
    assert type(o_mine.ref_time) is SecIndex
    g_mine, g_ref = mine.messages[1].body, ref.messages[1].body
    assert g_mine.server_id == g_ref.server_id
    assert g_mine.parameter_tree_path == g_ref.parameter_tree_path
    assert g_mine.parameter_tree.parameter_name == g_ref.parameter_tree.parameter_name
    assert shape(g_mine.parameter_tree) == shape(g_ref.parameter_tree)
    # our values: 12345.678 kWh = 12345678 Wh scaler 0
    children = g_mine.parameter_tree.child_list
    assert children[0].parameter_value.value == Unsigned(12345678)
    assert children[1].parameter_value.value == CosemScalerUnit(0, 30)


def test_open_and_close(tmp_path):
    f = exchange(make_server(tmp_path), request())
    assert kinds(f) == ["PublicOpenRes", "PublicCloseRes"]
    o = f.messages[0].body
    assert (o.client_id, o.req_file_id, o.server_id) == (b"TESTGW", b"\x00\x00\x00\x07", SID)
    assert o.ref_time == SecIndex(1)
    assert [m.transaction_id for m in f.messages] == [b"\x01", b"\x7f"]
    # an Open without a serverId is accepted as well
    assert kinds(exchange(make_server(tmp_path / "b"), request(server_id=None))) == ["PublicOpenRes",
                                                                                      "PublicCloseRes"]


def test_get_proc_parameter_in_request_order(tmp_path):
    f = exchange(make_server(tmp_path), request(gpp(E_IN, A5, A3, A2), gpp(POWER, A2, A3), gpp(DEV_ID, A2)))
    res = f.bodies(GetProcParameterRes)
    assert [c.parameter_name for c in res[0].parameter_tree.child_list] == [A5, A3, A2]
    assert res[0].parameter_tree.child_list[2].parameter_value.value == Unsigned(12345678)
    p = res[1].parameter_tree.child_list
    assert p[0].parameter_value.value == Integer(4321) and p[1].parameter_value.value == CosemScalerUnit(-1, 27)
    assert res[2].parameter_tree.child_list[0].parameter_value.value == SID


def test_get_proc_parameter_without_attributes_returns_all_readable(tmp_path):
    f = exchange(make_server(tmp_path), request(gpp(E_IN), gpp(Obis.parse("1-0:1.8.0").to_bytes())))
    for res in f.bodies(GetProcParameterRes):
        assert [c.parameter_name for c in res.parameter_tree.child_list] == [A2, A3, A4, A5]


@pytest.mark.parametrize(("path", "code"), [
    ([b"\x01\x00\x63\x63\x00\xff\x00\x01\x00", A2], "ORDER_NOT_EXECUTED"),  # unknown object
    ([ObjectName(Obis.parse("1-0:1.8.0"), 3).to_bytes(), A2], "ORDER_NOT_EXECUTED"),  # wrong class
    ([E_IN, b"\x00\x09"], "ATTRIBUTE_NOT_READABLE"),  # no such attribute
    ([RESET, A2], "ATTRIBUTE_NOT_READABLE"),  # write-only
    ([E_IN, b"\x02"], "ORDER_NOT_EXECUTED"),  # path entry is not an attribute number
    ([], "ORDER_NOT_EXECUTED"),
])
def test_get_proc_parameter_errors(tmp_path, path, code):
    f = exchange(make_server(tmp_path), request(gpp(*path)))
    assert kinds(f) == ["PublicOpenRes", "AttentionRes", "PublicCloseRes"]
    assert attentions(f) == [code]
    att = f.bodies(AttentionRes)[0]
    if path:
        assert att.attention_details.parameter_name == path[0]
    assert f.messages[1].transaction_id == b"\x02"


def test_register_without_data_answers_measuring_point_unreachable(tmp_path):
    f = exchange(make_server(tmp_path, readings=False), request(gpp(E_IN, A2, A3)))
    assert attentions(f) == ["MEASURING_POINT_UNREACHABLE"]


def test_set_proc_parameter(tmp_path):
    model = make_model(tmp_path)
    server = SmlServer(model)
    f = exchange(server, request(spp(RESET, True)))
    assert attentions(f) == ["ORDER_NOT_EXECUTED"]  # no pairing layer: documented choice
    calls = []
    model.crypto_reset_hook = lambda: calls.append(1) or True
    f = exchange(server, request(spp(RESET, True)))
    assert attentions(f) == ["OK"] and calls == [1]
    assert f.bodies(AttentionRes)[0].attention_details.parameter_name == RESET
    # the flat variant of the libsml fork: [OBIS6, (1, TRUE), -]
    flat = SetProcParameterReq(parameter_tree_path=[RESET[:6]],
                               parameter_tree=Tree(RESET[:6], ProcParValue(ProcParKind.VALUE, True)))
    assert attentions(exchange(server, request(flat))) == ["OK"] and calls == [1, 1]
    assert attentions(exchange(server, request(spp(RESET, Unsigned(1))))) == ["UNSUPPORTED_DATA_TYPE"]
    assert attentions(exchange(server, request(spp(DEV_ID, b"x")))) == ["ATTRIBUTE_NOT_WRITABLE"]
    assert attentions(exchange(server, request(spp(RESET, True, b"\x00\x05")))) == ["ATTRIBUTE_NOT_WRITABLE"]
    assert attentions(exchange(server, request(spp(b"\x01" * 9, True)))) == ["ORDER_NOT_EXECUTED"]
    empty = SetProcParameterReq(parameter_tree_path=[RESET], parameter_tree=Tree(RESET))
    assert attentions(exchange(server, request(empty))) == ["ORDER_NOT_EXECUTED"]
    assert calls == [1, 1]


def test_get_list(tmp_path):
    f = exchange(make_server(tmp_path), request(GetListReq(client_id=b"TESTGW")))
    res = f.bodies(GetListRes)[0]
    assert res.server_id == SID and res.client_id == b"TESTGW" and type(res.act_sensor_time) is SecIndex
    by_name = {e.obj_name: e for e in res.val_list}
    assert by_name[Obis.parse("1-0:96.1.0").to_bytes()].value == SID
    e = by_name[Obis.parse("1-0:1.8.0").to_bytes()]
    assert (e.value, e.scaler, e.unit) == (Unsigned(12345678), 0, 30)
    wrong = exchange(make_server(tmp_path / "x"), request(GetListReq(client_id=b"T", list_name=b"\x01\x02")))
    assert attentions(wrong) == ["ORDER_NOT_EXECUTED"]


def test_get_profile_list(tmp_path):
    model = make_model(tmp_path)
    server = SmlServer(model)
    path = [PROFILE_OBIS.to_bytes()]
    assert attentions(exchange(server, request(GetProfileListReq(parameter_tree_path=path)))) == [
        "PROFILE_HAS_NO_ENTRY"]
    for i in range(4):
        assert model.tick(model.clock(), 1_700_000_000.0 + 900 * i) is not None
    f = exchange(server, request(GetProfileListReq(parameter_tree_path=path)))
    res = f.bodies(GetProfileListRes)
    assert len(res) == 4 and all(r.reg_period == 900 for r in res)
    times = [r.val_time.value for r in res]
    assert times == sorted(times) and times[1] - times[0] == 900
    names = [p.obj_name for p in res[0].period_list]
    assert names == [Obis.parse("1-0:94.49.0*1").to_bytes(), Obis.parse("1-0:1.8.0").to_bytes(),
                     Obis.parse("1-0:2.8.0").to_bytes()]
    assert res[0].period_list[1].value == Unsigned(12345678)
    ranged = GetProfileListReq(parameter_tree_path=path, begin_time=Timestamp(times[1]), end_time=Timestamp(times[2]))
    assert [r.val_time.value for r in exchange(server, request(ranged)).bodies(GetProfileListRes)] == times[1:3]
    only = GetProfileListReq(parameter_tree_path=path, object_list=[Obis.parse("1-0:2.8.0").to_bytes()])
    assert [len(r.period_list) for r in exchange(server, request(only)).bodies(GetProfileListRes)] == [1] * 4
    for req, code in [
        (GetProfileListReq(parameter_tree_path=path, begin_time=Timestamp(times[2]), end_time=Timestamp(times[1])),
         "END_BEFORE_START"),
        (GetProfileListReq(parameter_tree_path=path, begin_time=Timestamp(times[3] + 1)), "NO_ENTRIES_IN_RANGE"),
        (GetProfileListReq(parameter_tree_path=path, object_list=[Obis.parse("1-0:3.8.0").to_bytes()]),
         "UNKNOWN_OBJECT_IN_PROFILE"),
        (GetProfileListReq(parameter_tree_path=path, begin_time=SecIndex(1), end_time=Timestamp(5)),
         "UNSUPPORTED_DATA_TYPE"),
        (GetProfileListReq(parameter_tree_path=[b"\x01\x00\x63\x02\x00\xff"]), "ORDER_NOT_EXECUTED"),
    ]:
        assert attentions(exchange(server, request(req))) == [code], code


def test_wrong_server_id(tmp_path):
    server = make_server(tmp_path)
    f = exchange(server, request(gpp(E_IN, A2), server_id=OTHER_SID))
    assert kinds(f) == ["AttentionRes"] and attentions(f) == ["SERVER_ID_UNAVAILABLE"]
    f = exchange(server, request(gpp(E_IN, A2, server_id=OTHER_SID), gpp(E_IN, A2)))
    assert kinds(f) == ["PublicOpenRes", "AttentionRes", "GetProcParameterRes", "PublicCloseRes"]
    assert attentions(f) == ["SERVER_ID_UNAVAILABLE"]


def test_file_without_close(tmp_path):
    f = exchange(make_server(tmp_path), request(gpp(E_IN, A2), close=False))
    assert kinds(f) == ["PublicOpenRes", "GetProcParameterRes", "AttentionRes", "PublicCloseRes"]
    assert attentions(f) == ["FILE_ENDED_WITHOUT_CLOSE"]


def test_unexpected_messages(tmp_path):
    server = make_server(tmp_path)
    f = exchange(server, request(gpp(E_IN, A2), open_=False))
    assert kinds(f) == ["AttentionRes"] and attentions(f) == ["UNEXPECTED_MESSAGE"]
    f = exchange(server, request(PublicOpenRes(req_file_id=b"1", server_id=SID), OpaqueBody(0x0800, b"\x01"),
                                 PublicOpenReq(client_id=b"x", req_file_id=b"y"), gpp(E_IN, A2)))
    assert attentions(f) == ["UNEXPECTED_MESSAGE"] * 3
    assert kinds(f)[-2:] == ["GetProcParameterRes", "PublicCloseRes"]
    after_close = encode_sml([SmlMessage(b"\x01", PublicOpenReq(client_id=b"c", req_file_id=b"f")),
                              SmlMessage(b"\x02", PublicCloseReq()), SmlMessage(b"\x03", gpp(E_IN, A2))])
    assert attentions(exchange(server, after_close)) == ["UNEXPECTED_MESSAGE"]


def test_abort_on_error_skips_the_rest(tmp_path):
    f = exchange(make_server(tmp_path), request(gpp(b"\x01" * 9, A2), gpp(E_IN, A2), abort_on_error=0xFF))
    assert kinds(f) == ["PublicOpenRes", "AttentionRes", "PublicCloseRes"]


def corrupt_message_crc(wire_payload: bytes) -> bytes:
    b = bytearray(wire_payload)
    # the CRC of the first message: '63 xx xx 00' before the second message's '76'
    i = b.index(b"\x76", 1)
    b[i - 3] ^= 0xFF
    return encode_transport(bytes(b))


def test_undecodable_files(tmp_path):
    server = make_server(tmp_path)
    payload = encode_file([SmlMessage(b"\x01", PublicOpenReq(client_id=b"c", req_file_id=b"f")),
                           SmlMessage(b"\x02", PublicCloseReq())])
    assert attentions(exchange(server, corrupt_message_crc(payload))) == ["CHECKSUM_WRONG"]
    bad_transport = bytearray(encode_transport(payload))
    bad_transport[-1] ^= 0x55
    assert attentions(exchange(server, bytes(bad_transport))) == ["CHECKSUM_WRONG"]
    unknown_tag = encode_transport(encode_file([SmlMessage(b"\x01", OpaqueBody(0x1234, b"\x01"))]))
    assert attentions(exchange(server, unknown_tag)) == ["UNKNOWN_SML_ID"]
    assert attentions(exchange(server, encode_transport(b"\x76\x01\x02\x03\x04\x05\x06\x07"))) == [
        "RAWDATA_NOT_INTERPRETABLE"]
    assert server.stats.files_rejected == 4
    # garbage outside any frame: a counted drop, no answer
    server.data_received(b"\x00\x11garbage" * 10)
    server.data_received(request(gpp(E_IN, A2)))
    f = decode_sml(server.data_to_send(10_000))
    assert kinds(f) == ["PublicOpenRes", "GetProcParameterRes", "PublicCloseRes"]
    assert server.stats.bytes_dropped >= 70
    assert server.stats.internal_errors == 0


def test_chunked_input_and_output(tmp_path):
    wire = request(gpp(E_IN, A2, A3, A4, A5), gpp(DEV_ID, A2), GetListReq(client_id=b"T"))
    whole = make_server(tmp_path / "a").handle_request(wire)
    server = make_server(tmp_path / "b")
    for i in range(len(wire)):
        server.data_received(wire[i:i + 1])
        if i < len(wire) - 1:
            assert server.data_to_send(1000) == b""
    chunks = []
    while chunk := server.data_to_send(37):
        assert len(chunk) <= 37
        chunks.append(chunk)
    assert b"".join(chunks) == whole
    assert len(chunks) == -(-len(whole) // 37)


def test_several_files_and_errors_in_one_connection(tmp_path):
    server = make_server(tmp_path)
    files = [request(gpp(E_IN, A2)), b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01\x99\x1b\x1b\x1b\x1b\x1a\x00\x00\x00",
             request(gpp(b"\x00" * 9, A2)), request(gpp(POWER, A2), server_id=OTHER_SID), request(GetListReq())]
    server.data_received(b"".join(files))  # all at once, back to back
    out = server.data_to_send(1 << 20)
    seen = []
    from bab.sml import SmlStreamDecoder
    from bab.sml.stream import FileDecoded
    for ev in SmlStreamDecoder().feed(out):
        assert type(ev) is FileDecoded
        seen.append(kinds(ev.file))
    assert seen == [["PublicOpenRes", "GetProcParameterRes", "PublicCloseRes"], ["AttentionRes"],
                    ["PublicOpenRes", "AttentionRes", "PublicCloseRes"], ["AttentionRes"],
                    ["PublicOpenRes", "GetListRes", "PublicCloseRes"]]


def test_connection_lost_and_output_bound(tmp_path):
    model = make_model(tmp_path)
    server = SmlServer(model, max_outbox=2000)
    for _ in range(50):
        server.data_received(request(GetListReq(client_id=b"T")))
    assert server.pending <= 2000 and server.stats.responses_dropped > 0
    server.connection_lost()
    assert server.data_to_send(100) == b"" and server.pending == 0
    assert server.is_busy() is False
    service = sml_service(model)
    a, b = service(), service()
    assert a is not b and a.model is b.model is model and service.connections == 2


def test_client_against_server(tmp_path):
    model = make_model(tmp_path)
    server = SmlServer(model)
    client = SmlClient.read_objects(SID)
    while chunk := client.data_to_send(50):
        server.data_received(chunk)
    while chunk := server.data_to_send(50):
        client.data_received(chunk)
    assert client.is_done() and client.result.ok
    r = client.result
    assert str(r.reading("1-0:1.8.0")) == "1-0:1.8.0*255 = 12345678 [WH]"
    assert r.reading("1-0:2.8.0").decimal == 1500 and r.reading("1-0:16.7.0").value == 4321
    assert r.identification[Obis.parse("1-0:96.50.1*1")] == b"BAB" and r.ref_time == 1
    # set_parameter: the crypto-reset answer comes back as an attention
    setter = SmlClient.set_parameter(SID, RESET, True)
    server.data_received(setter.data_to_send(10_000))
    setter.data_received(server.data_to_send(10_000))
    assert [str(a).split(" ")[0] for a in setter.result.attentions] == ["ORDER_NOT_EXECUTED"]
    assert not setter.result.ok
    lost = SmlClient.read_objects(SID)
    lost.connection_lost("timeout")
    assert lost.is_done() and lost.result.error == "timeout"
    assert parse_response(decode_sml(request()), SID).readings == []


def test_close_response_echo(tmp_path):
    f = exchange(make_server(tmp_path), request(gpp(E_IN, A2)))
    assert isinstance(f.messages[-1].body, PublicCloseRes) and isinstance(f.messages[0].body, PublicOpenRes)


def test_set_answer_matches_the_vector_attention(tmp_path, shared_vectors):
    """The crypto-reset OK answer has the layout of the L+G capture in vectors/lmn-frames.txt."""
    model = make_model(tmp_path)
    model.server_id = bytes.fromhex("0A01454D4800004AF1FD")
    model.crypto_reset_hook = lambda: True
    server = SmlServer(model)
    wire = request(spp(RESET, True), server_id=model.server_id)
    mine = exchange(server, wire)
    ref = decode_sml(vector(shared_vectors, "SML Attention FD00 (OK)"))
    assert kinds(mine) == kinds(ref) == ["PublicOpenRes", "AttentionRes", "PublicCloseRes"]
    assert mine.messages[1].body == ref.messages[1].body


def test_reader_full_list_reports_every_register(tmp_path):
    """`bab gateway` prints every register of a meter: the GetList brings what is not asked one by one."""
    from bab.reading import Reading
    from bab.sml.client import SmlClient

    model = make_model(tmp_path)
    model.values.publish([Reading.from_text("1-0:32.7.0", "231.4", "V"), Reading.from_text("1-0:1.8.1", "7.5", "kWh")])
    server = SmlServer(model)
    client = SmlClient.read_objects(SID, full_list=True)
    server.data_received(client.data_to_send(100000))
    while chunk := server.data_to_send(2036):
        client.data_received(chunk)
    got = {str(r.obis): r.decimal for r in client.result.readings}
    assert got["1-0:32.7.0*255"] == Decimal("231.4") and got["1-0:1.8.1*255"] == Decimal("7500.0")
    assert got["1-0:1.8.0*255"] == Decimal("12345678")
    assert client.result.ok
