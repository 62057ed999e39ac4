"""The lab meter driven at run time: SimControl in-process, the status socket's request lines, ``bab sim``,
scenario files (validation with file/line/key, timers on the event loop), the status word bits and the seconds
index as the gateway reads them, and the simulated meter's values (steps, CSV replay, rollover, backwards
jumps, reduced data set)."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from decimal import Decimal
from pathlib import Path

import pytest
from sim_helpers import Lab

from bab import config
from bab.cli import build_parser
from bab.cosem.base_meter import SECONDS_INDEX, STATUS_WORD
from bab.cosem.objects import CosemClass, ObjectName
from bab.cosem.status_word import StatusBit
from bab.daemon import Daemon
from bab.hdlc import events as ev
from bab.obis import Obis
from bab.schema import ConfigError
from bab.sim.control import SimCommandError, SimControl
from bab.sim.scenario import load_scenario
from bab.sml.client import ObjectRequest, SmlClient
from bab.status import StatusPermissionDenied, StatusServer, query_socket, query_status, render_status
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.simulated import SimulatedDriver, read_replay

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "lab-scenario.yaml"
DEMO_ID = "1BAB0012345678"


def daemon_config(tmp_path: Path, extra: str = "") -> config.Config:
    return config.loads(f"""lmn: {{port: "virtual://x"}}
state_dir: {tmp_path / 'state'}
meters:
  - id: "{DEMO_ID}"
    driver: {{type: simulated, registers: {{"1-0:1.8.0": 100, "1-0:16.7.0": 5}}}}
  - id: "1BAB0000000007"
    driver: {{type: simulated}}
{extra}""")


@pytest.fixture
async def daemon(tmp_path):
    d = Daemon(daemon_config(tmp_path))
    d.build()
    path = tmp_path / "status.sock"
    server = StatusServer(d.status, path, commands=d.handle_request, request_wait=0.05)
    await server.start()
    d.socket_path = path
    yield d
    await server.close()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


async def cli(daemon, *argv: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(run_cli, ["sim", *argv, "--socket", str(daemon.socket_path)])


# --- SimControl and the socket ----------------------------------------------------------------------------


async def test_fault_on_and_off_through_bab_sim_and_counted_in_bab_status(daemon):
    code, out, err = await cli(daemon, "fault", DEMO_ID, "bad_fcs", "probability=0.2", "count=5")
    assert code == 0, err
    assert "bad_fcs (probability=0.2, count=5) on" in out
    m = daemon.meters[0]
    assert m.faults.active["bad_fcs"].probability == 0.2 and m.faults.active["bad_fcs"].count == 5
    m.faults.rng.seed(1)
    hits = sum(m.faults.fire("bad_fcs") is not None for _ in range(100))
    assert hits == 5 and "bad_fcs" not in m.faults.active  # the count ran out
    doc = await asyncio.to_thread(query_status, str(daemon.socket_path))
    assert doc["meters"][0]["faults"]["injected"] == {"bad_fcs": 5}
    assert "faults  active: none; injected: bad_fcs 5" in render_status(doc)
    code, out, _ = await cli(daemon, "fault", DEMO_ID, "rnr", "seconds=3", "--json")
    assert code == 0 and json.loads(out)["fault"]["params"] == {"seconds": 3.0}
    code, out, _ = await cli(daemon, "clear", DEMO_ID)
    assert code == 0 and "cleared rnr" in out and not m.faults.active


@pytest.mark.parametrize("argv, message", [
    (["fault", DEMO_ID, "bad_fc"], "expected one of 'silent'"),
    (["fault", DEMO_ID, "late_replies"], "ms: missing required key"),
    (["fault", DEMO_ID, "late_replies", "ms=fast"], "ms: expected a number"),
    (["fault", DEMO_ID, "bad_fcs", "probability=1.5"], "probability: expected a number from 0.0 to 1.0"),
    (["fault", DEMO_ID, "bad_fcs", "speed=3"], "speed: unknown key"),
    (["fault", "1BAB0099999999", "bad_fcs"], "no meter '1BAB0099999999'"),
    (["clear", DEMO_ID, "nonsense"], "no fault kind 'nonsense'"),
    (["set", DEMO_ID, "1-0:1.8", "5"], "not an OBIS code"),
    (["set", DEMO_ID, "1-0:1.8.0", "lots"], "not a number"),
    (["set", DEMO_ID, "1-0:94.49.0*1", "-1"], "0..4294967295"),
    (["status", DEMO_ID, "HAPPY", "on"], "no status bit 'HAPPY'"),
])
async def test_a_bad_command_is_refused_with_its_reason_and_changes_nothing(daemon, argv, message):
    m = daemon.meters[0]
    before = (dict(m.faults.active), dict(m.driver.values), m.sml.model.status_forced_on, m.sml.model.sec_index())
    code, out, err = await cli(daemon, *argv)
    assert code == 2 and message in err and out == ""
    after = (dict(m.faults.active), dict(m.driver.values), m.sml.model.status_forced_on, m.sml.model.sec_index())
    assert after == before


async def test_set_value_status_bit_and_seconds_index(daemon):
    m = daemon.meters[0]
    code, out, _ = await cli(daemon, "set", DEMO_ID, "1-0:1.8.0", "123.5")
    assert code == 0 and "1-0:1.8.0*255 = 123.5" in out
    assert m.values.get(Obis.parse("1-0:1.8.0")).decimal == Decimal("123500")  # served at once (Wh)
    code, out, _ = await cli(daemon, "status", DEMO_ID, "magnetic", "on")
    assert code == 0 and m.sml.model.status_word() & StatusBit.MAGNETIC
    await cli(daemon, "status", DEMO_ID, "NO_DATA", "off")
    assert not m.sml.model.status_word() & StatusBit.NO_DATA
    code, out, _ = await cli(daemon, "set", DEMO_ID, "1-0:94.49.0*1", "7")
    assert code == 0 and m.sml.model.sec_index() in (7, 8)
    code, out, _ = await cli(daemon, "show", DEMO_ID, "--json")
    shown = json.loads(out)["meters"][0]
    assert shown["registers"]["1-0:1.8.0*255"] == "123.5" and "MAGNETIC" in shown["status_bits"]
    assert shown["status_forced"] == {"on": ["MAGNETIC"], "off": ["NO_DATA"]}
    await cli(daemon, "status", DEMO_ID, "magnetic", "auto")
    assert not m.sml.model.status_word() & StatusBit.MAGNETIC
    code, out, _ = await cli(daemon, "show")
    assert code == 0 and "Meter 1BAB0012345678" in out and "Meter 1BAB0000000007" in out


async def test_the_socket_serves_the_status_document_to_a_client_that_sends_nothing(daemon):
    def silent_client() -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(daemon.socket_path))
        data = b""
        while chunk := s.recv(65536):  # never writes, never half-closes
            data += chunk
        s.close()
        return json.loads(data)

    doc = await asyncio.to_thread(silent_client)
    assert doc["meters"][0]["id"] == DEMO_ID
    doc = await asyncio.to_thread(query_socket, str(daemon.socket_path), {"command": "status"})
    assert doc["meters"][0]["id"] == DEMO_ID
    answer = await asyncio.to_thread(query_socket, str(daemon.socket_path), {"command": "sim.show", "meter": DEMO_ID})
    assert answer["ok"] and answer["result"]["meters"][0]["id"] == DEMO_ID


async def test_the_socket_refuses_malformed_requests(daemon):
    def raw(line: bytes) -> dict:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(daemon.socket_path))
        s.sendall(line)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        return json.loads(data)

    assert (await asyncio.to_thread(raw, b"{nope\n"))["code"] == "bad_request"
    assert (await asyncio.to_thread(raw, b"[1]\n"))["code"] == "bad_request"
    assert (await asyncio.to_thread(raw, b'{"command": "sim.fly"}\n'))["code"] == "bad_command"
    assert "missing kind" in (await asyncio.to_thread(raw, b'{"command": "sim.fault", "meter": "x"}\n'))["error"]


# --- scenarios ------------------------------------------------------------------------------------------


def test_the_worked_scenario_of_the_guide_is_valid():
    steps = load_scenario(EXAMPLE.read_text(), str(EXAMPLE), [DEMO_ID], [DEMO_ID])
    assert [s.action for s in steps].count("fault") == 4 and steps[-1].at == 240
    # and bab demo presents that meter
    assert config.loads(config.DEMO_CONFIG).meters[0].id == config.MeterId.parse(DEMO_ID)


@pytest.mark.parametrize("text, where", [
    ("steps:\n  - {at: 1, meter: '1BAB0012345678', fault: {kind: dm, selector: 300}}\n",
     "<scenario>:2: steps[0].fault.selector: expected a whole number from 0 to 127"),
    ("steps:\n  - at: 1\n    meter: '1BAB0012345670'\n    clear: all\n",
     "<scenario>:3: steps[0].meter: unknown meter '1BAB0012345670'"),
    ("steps:\n  - at: 1\n    meter: '1BAB0012345678'\n    clear: all\n    set: {'1-0:1.8.0': 1}\n",
     "<scenario>:5: steps[0].set: a step has exactly one of"),
    ("steps:\n  - {at: 1, meter: '1BAB0012345678', status: {MAGNET: on}}\n",
     "<scenario>:2: steps[0].status.MAGNET: expected a status bit name or number"),
    ("steps:\n  - {at: -1, meter: '1BAB0012345678', clear: all}\n", "steps[0].at: expected a number from 0.0"),
    ("steps:\n  - {at: 1, meter: '1BAB0012345678', clear: bad_fc}\n", "steps[0].clear: expected 'all' or a fault"),
    ("steps:\n  - {at: 1, meter: '1BAB0012345678', set: {'1-0:1.8.0': 1}}\n", "only a simulated meter"),
])
def test_a_bad_scenario_names_line_and_key(text, where):
    with pytest.raises(ConfigError) as err:
        load_scenario(text, "<scenario>", [DEMO_ID], [] if "only a simulated" in where else [DEMO_ID])
    assert where in str(err.value)


async def test_a_scenario_runs_on_the_event_loop_timers(daemon, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"""description: quick
steps:
  - {{at: 0, meter: "{DEMO_ID}", fault: {{kind: bad_hcs, count: 2}}}}
  - {{at: 0.05, meter: "{DEMO_ID}", set: {{"1-0:1.8.0": 200}}}}
  - {{at: 0.1, meter: "{DEMO_ID}", status: {{TERMINAL_COVER: on}}}}
  - {{at: 0.15, meter: "{DEMO_ID}", clear: all}}
""")
    code, out, err = await cli(daemon, "scenario", str(path))
    assert code == 0 and "4 steps over 0.15 s started" in out, err
    for _ in range(200):
        if daemon.sim.steps_run == 4:
            break
        await asyncio.sleep(0.01)
    m = daemon.meters[0]
    assert daemon.sim.steps_run == 4 and not m.faults.active
    assert m.driver.values[Obis.parse("1-0:1.8.0")] == 200 and m.sml.model.status_word() & StatusBit.TERMINAL_COVER
    code, _, err = await cli(daemon, "scenario", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such scenario file" in err


async def test_a_scenario_from_stdin(daemon, monkeypatch):
    text = f"steps:\n  - {{at: 0, meter: '{DEMO_ID}', fault: {{kind: silent}}}}\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, err = await cli(daemon, "scenario", "-")
    assert code == 0 and "1 steps" in out, err
    for _ in range(200):
        if "silent" in daemon.meters[0].faults.active:
            break
        await asyncio.sleep(0.01)
    assert "silent" in daemon.meters[0].faults.active


def test_a_seconds_index_jump_survives_a_restart(tmp_path):
    from bab.cosem.seconds_index import SecondsIndex

    idx = SecondsIndex(tmp_path, 0.0, persist_every=60)
    idx.tick(100.0)
    idx.jump(5, 101.0)
    assert idx.value(103.0) == 7
    again = SecondsIndex(tmp_path, 0.0, persist_every=60)
    assert 5 <= again.value(0.0) <= 5 + 61  # from the jumped value (plus the safety step of an unclean stop)


def test_scenario_outside_a_loop_is_refused():
    with pytest.raises(SimCommandError, match="event loop"):
        SimControl(lambda: [_FakeMeter()]).scenario(f"steps:\n  - {{at: 0, meter: '{DEMO_ID}', clear: all}}\n")


class _FakeMeter:
    meter_id = DEMO_ID
    driver = None


def test_faults_from_the_configuration_are_active_from_the_start(tmp_path):
    assert daemon_config(tmp_path).meters[0].faults == ()
    c = config.loads(f"""lmn: {{port: x}}
meters:
  - id: "{DEMO_ID}"
    driver: {{type: simulated}}
    faults: [{{kind: bad_fcs, probability: 0.2}}, {{kind: dm, selector: 3}}]
""")
    lab_faults = [f["kind"] for f in c.meters[0].faults]
    assert lab_faults == ["bad_fcs", "dm"]
    with pytest.raises(ConfigError, match=r"<config>:5: meters\[0\].faults\[1\].kind: duplicate kind bad_fcs"):
        config.loads(f"""lmn: {{port: x}}
meters:
  - id: "{DEMO_ID}"
    driver: {{type: simulated}}
    faults: [{{kind: bad_fcs}}, {{kind: bad_fcs}}]
""")


# --- what the gateway reads ------------------------------------------------------------------------------


def read_status(lab: Lab):
    client = SmlClient.read_objects(lab.station.server_id, [ObjectRequest(ObjectName(STATUS_WORD, CosemClass.DATA)),
                                                            ObjectRequest(ObjectName(SECONDS_INDEX, CosemClass.DATA))])
    assert isinstance(lab.converse(3, client), ev.ConversationDone)
    return client.result


def test_the_gateway_reads_forced_status_bits_and_the_jumped_seconds_index(tmp_path):
    lab = Lab(tmp_path)
    control = SimControl(lambda: [lab.meter])
    lab.register()
    before = read_status(lab)
    assert not before.status_word & StatusBit.MAGNETIC and before.ref_time > 1
    control.set_status(lab.meter.meter_id, "MAGNETIC", True)
    control.set_status(lab.meter.meter_id, 12, True)  # TERMINAL_COVER by number
    control.set_value(lab.meter.meter_id, "1-0:94.49.0*1", 1)
    after = read_status(lab)
    assert after.status_word & (StatusBit.MAGNETIC | StatusBit.TERMINAL_COVER) == \
        StatusBit.MAGNETIC | StatusBit.TERMINAL_COVER
    assert after.ref_time < before.ref_time  # as after a reset of the meter


def test_a_backwards_jump_reaches_the_gateway_only_when_not_monotonic(tmp_path):
    for monotonic, served, flagged in ((True, "12345678", True), (False, "1000000", False)):
        lab = Lab(tmp_path / str(monotonic), driver=f"{{type: simulated, monotonic: {str(monotonic).lower()}}}")
        assert lab.meter.values.monotonic is monotonic
        lab.register()
        SimControl(lambda lab=lab: [lab.meter]).set_value(lab.meter.meter_id, "1-0:1.8.0", 1000)
        client = SmlClient.read_objects(lab.station.server_id)
        assert isinstance(lab.converse(3, client), ev.ConversationDone)
        r = client.result.reading("1-0:1.8.0")
        assert str(r.decimal) == served and bool(r.status & 0x04) is flagged


# --- the simulated meter's values ------------------------------------------------------------------------


def driver(**options) -> SimulatedDriver:
    opts = {"registers": {Obis.parse("1-0:1.8.0"): Decimal("999998"), Obis.parse("1-0:16.7.0"): Decimal("3600000")},
            "interval": 1.0, "advance": False, "steps": [], "repeat": None, "replay": None, "digits": None,
            "monotonic": True, "reduced": False, **options}
    return SimulatedDriver(opts, DriverContext("x", "/nonexistent"))


def test_rollover_at_the_digit_count():
    d = driver(digits=6)
    d._advance(3.0)  # 3 kWh at 3.6 MW for 3 s
    assert d.values[Obis.parse("1-0:1.8.0")] == Decimal("1")
    assert d.set_value("1-0:1.8.0", "1000012.5") == Decimal("12.5")
    assert d.set_value("1-0:16.7.0", "1000012.5") == Decimal("1000012.5")  # power does not roll over


def test_stepwise_profile_repeats():
    p = Obis.parse("1-0:16.7.0")
    d = driver(steps=[{"at": 0.0, "registers": {p: Decimal(100)}}, {"at": 10.0, "registers": {p: Decimal(-50)}}],
               repeat=20.0)
    seen = []
    for t in (0, 5, 10, 15, 20, 31):
        d.apply_schedule(t)
        seen.append(d.values[p])
    assert seen == [100, 100, -50, -50, 100, -50]
    d.set_value(p, 7)  # a value set by hand stays until the next step
    d.apply_schedule(32)
    assert d.values[p] == 7
    d.apply_schedule(40)
    assert d.values[p] == 100


def test_csv_replay_and_its_errors(tmp_path):
    f = tmp_path / "power.csv"
    f.write_text("time,value\n0,10\n1.5,20\n# a comment\n3,30\n")
    assert read_replay(f) == [(0.0, Decimal(10)), (1.5, Decimal(20)), (3.0, Decimal(30))]
    p = Obis.parse("1-0:16.7.0")
    d = driver(replay={"file": str(f), "obis": p, "loop": True})
    got = []
    for t in (0.5, 1.6, 3.1, 4.6):
        d.apply_schedule(t)
        got.append(d.values[p])
    assert got == [10, 20, 10, 20]  # looped with the last row's time as period
    f.write_text("0,10\n2,x\n")
    with pytest.raises(ValueError, match=r"power.csv:2"):
        read_replay(f)
    f.write_text("0,10\n5,1\n2,3\n")
    with pytest.raises(ConfigError, match=r"meters\[0\].driver.replay: .*power.csv:3: times must be >= 0"):
        config.loads(f"""lmn: {{port: x}}
meters:
  - id: "{DEMO_ID}"
    driver: {{type: simulated, replay: {{file: {f}, obis: "1-0:16.7.0"}}}}
""")


async def test_reduced_data_set_publishes_only_energy_with_health_reduced():
    d = driver(reduced=True)
    published, health = [], []

    class Sink:
        def publish(self, readings):
            published.extend(readings)

        def set_health(self, h, detail=""):
            health.append(h)

    task = asyncio.create_task(d.run(Sink()))
    for _ in range(100):
        if published:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {str(r.obis) for r in published} == {"1-0:1.8.0*255"} and health[-1] is Health.REDUCED


async def test_a_refused_peer_cannot_send_commands(tmp_path):
    calls = []
    path = tmp_path / "locked.sock"
    server = StatusServer(lambda: {}, path, commands=lambda req: calls.append(req) or {"ok": True},
                          peer_check=lambda cred: False)
    await server.start()
    try:
        with pytest.raises(StatusPermissionDenied):
            await asyncio.to_thread(query_socket, str(path), {"command": "sim.clear", "meter": DEMO_ID})
    finally:
        await server.close()
    assert calls == [] and server.refused == 1
