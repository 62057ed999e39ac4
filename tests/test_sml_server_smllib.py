"""Independent check of the server's responses: smllib (a separate SML decoder, test-only) reads the Open,
GetList and Close responses our server encodes to the values the meter model holds."""

from __future__ import annotations

from typing import Any

import pytest
from test_sml_server_support import SID, make_model, request

from bab.reading import Reading
from bab.sml import GetListReq
from bab.sml.server import SmlServer

smllib = pytest.importorskip("smllib")


def smllib_messages(wire: bytes) -> list[Any]:
    reader = smllib.SmlStreamReader()
    reader.add(wire)
    frame = reader.get_frame()
    assert frame is not None
    return frame.parse_frame()


def test_smllib_reads_open_get_list_close(tmp_path):
    model = make_model(tmp_path)
    model.values.publish([Reading.from_text("1-0:32.7.0", "231.4", "V")])
    wire = SmlServer(model).handle_request(request(GetListReq(client_id=b"TESTGW")))
    msgs = smllib_messages(wire)
    assert [type(m.message_body).__name__ for m in msgs] == ["SmlOpenResponse", "SmlGetListResponse",
                                                             "SmlCloseResponse"]
    assert [m.transaction_id for m in msgs] == ["01", "02", "7f"]
    o = msgs[0].message_body
    assert o.server_id == SID.hex() and o.req_file_id == "00000007" and o.client_id == b"TESTGW".hex()
    assert o.ref_time == 1
    g = msgs[1].message_body
    assert g.server_id == SID.hex() and g.list_name == "0100620affff"
    entries = {e.obis: e for e in g.val_list}
    assert entries["010060320101"].value == "BAB"
    assert entries["0100600100ff"].value == SID.hex()
    e = entries["0100010800ff"]
    assert (e.value, e.scaler, e.unit, e.status, e.val_time) == (12345678, 0, 30, 0, 1)
    e = entries["0100020800ff"]
    assert (e.value, e.scaler, e.unit) == (15, 2, 30)
    e = entries["0100100700ff"]
    assert (e.value, e.scaler, e.unit) == (4321, -1, 27)
    e = entries["0100200700ff"]
    assert (e.value, e.scaler, e.unit) == (2314, -1, 35)


def test_smllib_reads_the_open_close_of_every_answer(tmp_path):
    """Open.Res and Close.Res around a response smllib cannot parse are still well-formed for smllib's
    frame reader (transport CRC, escaping, fill)."""
    model = make_model(tmp_path)
    wire = SmlServer(model).handle_request(request())
    msgs = smllib_messages(wire)
    assert [type(m.message_body).__name__ for m in msgs] == ["SmlOpenResponse", "SmlCloseResponse"]
    reader = smllib.SmlStreamReader()
    reader.add(SmlServer(make_model(tmp_path / "b")).handle_request(request(GetListReq(client_id=b"x"))))
    assert reader.get_frame() is not None
