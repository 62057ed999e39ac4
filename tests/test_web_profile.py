"""bab.web.profile_reader against BAB's SML server: every period of the load profile with exact values; an empty
profile answers with the meter's attention."""

from __future__ import annotations

from decimal import Decimal

from test_sml_server_support import SID, make_model

from bab.sml.server import SmlServer
from bab.web.profile_reader import ProfileReader


def _converse(server: SmlServer, reader: ProfileReader) -> None:
    request = reader.data_to_send(1 << 20)
    answer = server.handle_request(request)
    assert answer
    for i in range(0, len(answer), 100):  # the answer arrives in I-frame sized pieces
        reader.data_received(answer[i:i + 100])
    reader.connection_lost(None)


def test_profile_periods_and_an_empty_profile(tmp_path):
    model = make_model(tmp_path)
    server = SmlServer(model)
    results = []
    empty = ProfileReader(SID, on_done=results.append)
    _converse(server, empty)
    assert results[-1].periods == []
    assert results[-1].attentions and results[-1].attentions[0].startswith("PROFILE_HAS_NO_ENTRY")
    assert not results[-1].to_json()["ok"]
    for i in range(5):
        model.tick(model.clock(), 1_700_000_000.0 + 900 * i)
    full = ProfileReader(SID, on_done=results.append)
    _converse(server, full)
    r = results[-1]
    assert r.error is None and r.attentions == [] and len(r.periods) == 5
    assert [p.time for p in r.periods] == sorted(p.time for p in r.periods)
    assert r.periods[1].time - r.periods[0].time == 900
    assert r.periods[0].values["1-0:1.8.0*255"] == (Decimal("12345.678"), "kWh")
    assert r.periods[0].sec_index is not None and r.to_json()["ok"]
