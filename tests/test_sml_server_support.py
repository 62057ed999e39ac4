"""Builders shared by the SML server tests: a meter model with values, request files, response decoding."""

from __future__ import annotations

from bab.cosem import BaseMeterModel
from bab.meter_id import MeterId
from bab.reading import Reading
from bab.sml import (
    AttentionRes,
    PublicCloseReq,
    PublicOpenReq,
    SmlFile,
    SmlMessage,
    attention_name,
    decode_sml,
    encode_sml,
)
from bab.sml.server import SmlServer
from bab.values import ValueStore

SID = MeterId.parse("1BAB0012345678").server_id
OTHER_SID = MeterId.parse("1EMH0004911613").server_id


class Clock:
    def __init__(self, t: float = 5000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_model(tmp_path, *, readings=True, **kw) -> BaseMeterModel:
    clock = Clock()
    values = ValueStore("1BAB0012345678", clock=clock)
    if readings:
        values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"),
                        Reading.from_text("1-0:2.8.0", "1.5", "kWh"),
                        Reading.from_text("1-0:16.7.0", "432.1", "W")])
    return BaseMeterModel(SID, values, tmp_path, clock=clock, **kw)


def make_server(tmp_path, **kw) -> SmlServer:
    return SmlServer(make_model(tmp_path, **kw))


def request(*bodies, server_id: bytes | None = SID, open_: bool = True, close: bool = True,
            file_id: bytes = b"\x00\x00\x00\x07", abort_on_error: int = 0) -> bytes:
    msgs = []
    if open_:
        msgs.append(SmlMessage(b"\x01", PublicOpenReq(client_id=b"TESTGW", req_file_id=file_id,
                                                       server_id=server_id)))
    for i, b in enumerate(bodies):
        msgs.append(SmlMessage(bytes((i + 2,)), b, abort_on_error=abort_on_error))
    if close:
        msgs.append(SmlMessage(b"\x7f", PublicCloseReq()))
    return encode_sml(msgs)


def exchange(server: SmlServer, wire: bytes) -> SmlFile:
    out = server.handle_request(wire)
    assert out, "no response"
    return decode_sml(out)


def attentions(f: SmlFile) -> list[str]:
    return [attention_name(b.attention_no) for b in f.bodies(AttentionRes)]


def kinds(f: SmlFile) -> list[str]:
    return [type(m.body).__name__ for m in f.messages]
