"""End to end on the virtual bus in virtual time: the software gateway's SmlReader reads three BAB meters
(MeterRuntime with simulated drivers, SML server on selector 3) and sees a changed value on the next poll."""

from __future__ import annotations

import random
from decimal import Decimal

from lmn_helpers import FAST_GATEWAY

from bab.config import loads
from bab.cosem import CosemClass, ObjectName
from bab.gateway.app import SoftwareGateway
from bab.gateway.readers import default_reader
from bab.gateway.sml_reader import SmlReader
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation
from bab.meter import MeterRuntime
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.sml.server import sml_service
from bab.units import Unit

IDS = ["1BAB0000000001", "1BAB0000000002", "1BAB0000000003"]


def config(state_dir) -> str:
    meters = "".join(
        f'  - id: "{mid}"\n    driver:\n      type: simulated\n'
        f'      registers: {{"1-0:1.8.0": {1000 + i}.125, "1-0:2.8.0": {i}.5, "1-0:16.7.0": -{i + 1}42.5}}\n'
        for i, mid in enumerate(IDS))
    return f'lmn:\n  port: "virtual://t"\nstate_dir: {state_dir}\nmeters:\n{meters}'


def build(tmp_path):
    cfg = loads(config(tmp_path))
    sim = Simulation(VirtualBus())
    stations = []
    meters = []
    for i, mc in enumerate(cfg.meters):
        m = MeterRuntime(mc, cfg.lmn, cfg.state_dir, clock=lambda: sim.now, rng=random.Random(i),
                         siblings=lambda: stations)
        m.services[3] = sml_service(m)
        m.values.publish(m.driver.readings(1.7e9))
        stations.append(m.station)
        meters.append(m)
    lines: list[str] = []
    reader = SmlReader(lines.append)
    gw = SoftwareGateway(FAST_GATEWAY, reader=reader, poll_interval=5.0, report=lines.append)
    sim.add("gw", LinkNode([gw]))
    sim.at(0.0, lambda: None)  # one first step: the gateway starts on its first transmissions_due call
    sim.add("bab", LinkNode(stations))
    return sim, gw, reader, meters, lines


def test_default_reader_is_the_sml_reader():
    assert isinstance(default_reader(print), SmlReader)


def test_gateway_reads_three_meters_and_sees_a_change(tmp_path):
    sim, gw, reader, meters, lines = build(tmp_path)
    sids = [MeterId.parse(i).server_id for i in IDS]
    assert sim.run_for(60.0, lambda: all(s in reader.results for s in sids))
    for i, (sid, mid) in enumerate(zip(sids, IDS, strict=True)):
        res = reader.results[sid]
        assert res.ok, (res.error, [str(a) for a in res.attentions])
        assert res.reading("1-0:1.8.0").decimal == Decimal(f"{1000 + i}125")  # Wh
        assert res.reading("1-0:1.8.0").unit is Unit.WH
        assert res.reading("1-0:2.8.0").decimal == Decimal(f"{i}500")
        assert res.reading("1-0:16.7.0").decimal == Decimal(f"-{i + 1}42.5")
        assert res.reading("1-0:16.7.0").unit is Unit.W
        assert res.identification[Obis(1, 0, 96, 1, 0, 255)] == sid
        assert res.identification[Obis(1, 0, 96, 50, 1, 1)] == b"BAB"
        assert res.identification[Obis(1, 0, 0, 2, 0, 0)]  # BAB's version
        assert f"{mid} 1-0:1.8.0*255 = {1000 + i}.125 kWh" in lines
        assert f"{mid} 1-0:16.7.0*255 = -{i + 1}42.5 W" in lines
        assert f"{mid} 1-0:96.1.0*255 = {mid}" in lines
        assert f"{mid} 1-0:96.50.1*1 = BAB" in lines
    assert not [ln for ln in lines if "failed" in ln or "attention" in ln]

    # The second meter's energy changes: the next poll sees it.
    m = meters[1]
    m.driver.set_value("1-0:1.8.0", "1001.250")
    m.values.publish(m.driver.readings(1.7e9 + 10))
    n = reader.completed
    assert sim.run_for(30.0, lambda: f"{IDS[1]} 1-0:1.8.0*255 = 1001.250 kWh" in lines)
    assert reader.completed > n
    assert reader.results[sids[1]].reading("1-0:1.8.0").decimal == Decimal("1001250")
    # every meter's server handled its own connections; none counted an error
    for m in meters:
        assert m.services[3].connections >= 1


def test_gateway_sends_a_crypto_reset(tmp_path):
    sim, gw, reader, meters, lines = build(tmp_path)
    target = meters[0]
    calls = []
    target.services[3].model.crypto_reset_hook = lambda: calls.append(1) or True
    reset = ObjectName(Obis.parse("1-0:94.49.0*7"), CosemClass.DATA)
    reader.set_parameter(target.server_id, reset, True)
    reader.set_parameter(meters[1].server_id, reset, True)  # no pairing layer there: not executed
    assert sim.run_for(60.0, lambda: len(reader.write_results) == 2)
    answers = {sid: [str(a).split(" ")[0] for a in r.attentions] for sid, _, r in reader.write_results}
    assert answers == {target.server_id: ["OK"], meters[1].server_id: ["ORDER_NOT_EXECUTED"]}
    assert calls == [1]
    assert f"{IDS[0]} set 1-0:94.49.0*7 attribute 2: OK for {reset.to_bytes().hex()}" in lines
