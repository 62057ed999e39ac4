"""Fuzzing the meter's SML server with random and mutated requests: no exception escapes, memory stays bounded,
every malformed file gets an attention answer (or, outside any frame, a counted drop), and the connection
still answers a good request afterwards."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sml_server_support import SID, make_model, request

from bab.cosem import ObjectName
from bab.obis import Obis
from bab.sml import (
    AttentionCode,
    AttentionRes,
    GetListReq,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    ProcParKind,
    ProcParValue,
    SecIndex,
    SetProcParameterReq,
    SmlStreamDecoder,
    Timestamp,
    Tree,
    Unsigned,
)
from bab.sml.server import SmlServer
from bab.sml.stream import FileDecoded

NAMES = [ObjectName(Obis.parse(o), c).to_bytes() for o, c in [
    ("1-0:1.8.0", 0x8002), ("1-0:2.8.0", 0x8002), ("1-0:16.7.0", 3), ("1-0:96.1.0", 1), ("1-0:94.49.0*7", 1),
    ("1-0:94.49.0*1", 1), ("1-0:96.5.0", 1), ("1-0:32.7.0", 3), ("1-0:99.1.0", 7)]]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    m = make_model(tmp_path_factory.mktemp("fuzz"))
    for i in range(3):
        m.tick(m.clock(), 1_700_000_000.0 + 900 * i)
    return m


def response_files(out: bytes) -> list:
    files = []
    for ev in SmlStreamDecoder().feed(out):
        assert type(ev) is FileDecoded, ev  # everything the server sends decodes
        files.append(ev.file)
    return files


def assert_healthy(server: SmlServer) -> None:
    assert server.stats.internal_errors == 0
    assert server.pending <= server.max_outbox
    assert server._decoder.buffered <= 16 * 1024 + 8
    # the connection still answers a good request
    server.data_to_send(1 << 30)
    good = request(GetProcParameterReq(parameter_tree_path=[NAMES[0], b"\x00\x02"]))
    server.data_received(b"\x1b\x1b\x1b\x1b\x1a\x00\x00\x00")  # close whatever frame the fuzz left open
    server.data_to_send(1 << 30)
    server.data_received(good)
    files = response_files(server.data_to_send(1 << 30))
    assert files and [type(m.body).__name__ for m in files[-1].messages] == [
        "PublicOpenRes", "GetProcParameterRes", "PublicCloseRes"]


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes(model, chunks):
    server = SmlServer(model)
    for c in chunks:
        server.data_received(c)
    out = server.data_to_send(1 << 30)
    files = response_files(out)
    # one answer per complete frame: good or rejected
    assert len(files) == server.stats.files_ok + server.stats.files_rejected - server.stats.responses_dropped
    assert_healthy(server)


good_requests = st.sampled_from([
    request(GetProcParameterReq(parameter_tree_path=[NAMES[0], b"\x00\x02", b"\x00\x03"])),
    request(GetListReq(client_id=b"x")),
    request(GetProfileListReq(parameter_tree_path=[Obis.parse("1-0:99.1.0").to_bytes()])),
    request(SetProcParameterReq(parameter_tree_path=[NAMES[4], b"\x00\x02"], parameter_tree=Tree(
        NAMES[4], None, [Tree(b"\x00\x02", ProcParValue(ProcParKind.VALUE, True))]))),
])


@st.composite
def mutated(draw):
    wire = bytearray(draw(good_requests))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        i = draw(st.integers(0, max(0, len(wire) - 1)))
        if op == "flip" and wire:
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del wire[i:i + draw(st.integers(1, 8))]
        elif op == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            wire[i:i] = wire[i:i + draw(st.integers(1, 16))]
    return bytes(wire)


@SETTINGS
@given(mutated(), st.integers(1, 64))
def test_mutated_requests(model, wire, chunk):
    server = SmlServer(model)
    for i in range(0, len(wire), chunk):
        server.data_received(wire[i:i + chunk])
    response_files(server.data_to_send(1 << 30))
    assert_healthy(server)


values = st.one_of(st.booleans(), st.binary(max_size=12), st.integers(0, 2**64 - 1).map(Unsigned),
                   st.builds(SecIndex, st.integers(0, 2**32 - 1)))
paths = st.lists(st.one_of(st.sampled_from(NAMES), st.binary(max_size=10), st.integers(0, 9).map(
    lambda n: n.to_bytes(2, "big"))), max_size=6)
bodies = st.one_of(
    st.builds(lambda p, s: GetProcParameterReq(server_id=s, parameter_tree_path=p), paths,
              st.sampled_from([None, SID, b"\x0a" * 10])),
    st.builds(lambda p, v, n: SetProcParameterReq(parameter_tree_path=p, parameter_tree=Tree(
        n, None, [Tree(b"\x00\x02", ProcParValue(ProcParKind.VALUE, v))])), paths, values, st.sampled_from(NAMES)),
    st.builds(lambda p, b, e: GetProfileListReq(parameter_tree_path=p, begin_time=b, end_time=e),
              st.one_of(paths, st.just([Obis.parse("1-0:99.1.0").to_bytes()])),
              st.one_of(st.none(), st.builds(Timestamp, st.integers(0, 2**32 - 1)),
                        st.builds(SecIndex, st.integers(0, 2**32 - 1))),
              st.one_of(st.none(), st.builds(Timestamp, st.integers(0, 2**32 - 1)))),
    st.builds(lambda n: GetListReq(client_id=b"c", list_name=n), st.one_of(st.none(), st.binary(max_size=6))),
)


@SETTINGS
@given(st.lists(bodies, max_size=5), st.booleans(), st.integers(0, 255))
def test_random_structured_requests(model, reqs, close, abort):
    """Every request is answered by its response or by an attention, in order."""
    server = SmlServer(model)
    server.data_received(request(*reqs, close=close, abort_on_error=abort))
    files = response_files(server.data_to_send(1 << 30))
    assert len(files) == 1
    kinds = [type(m.body).__name__ for m in files[0].messages]
    assert kinds[0] == "PublicOpenRes" and kinds[-1] == "PublicCloseRes"
    answered = files[0].messages[1:-1]
    if not close:  # FE 14 before the Close.Res
        assert answered[-1].body.attention_no == AttentionCode.FILE_ENDED_WITHOUT_CLOSE.to_bytes()
        answered = answered[:-1]
    ids = [m.transaction_id for m in answered]
    assert ids == sorted(ids)
    for m in answered:
        assert type(m.body).__name__ in ("GetProcParameterRes", "AttentionRes", "GetProfileListRes",
                                         "GetListRes")
    if not abort and close:
        assert sorted(set(ids)) == [bytes((i + 2,)) for i in range(len(reqs))]
    for m in answered:
        if type(m.body) is GetProcParameterRes:
            req = reqs[m.transaction_id[0] - 2]
            assert m.body.parameter_tree_path == req.parameter_tree_path
        if type(m.body) is AttentionRes and m.body.attention_no[-2:] == b"\xfd\x00":
            assert type(reqs[m.transaction_id[0] - 2]) is SetProcParameterReq
    assert server.stats.internal_errors == 0


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated(), st.integers(1, 64))
def test_mutated_requests_long(model, wire, chunk):
    test_mutated_requests.hypothesis.inner_test(model, wire, chunk)
