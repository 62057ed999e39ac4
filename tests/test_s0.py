"""S0 pulse input: debounce, register arithmetic, persistence (incl. SIGKILL during writes), gpiod errors."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bab.obis import Obis
from bab.persist import read_json
from bab.reading import Reading, ReadingStatus
from bab.units import Unit
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.s0 import Edge, GpiodEdgeSource, PulseCounter, QueueEdgeSource, Register, S0Driver
from legacy_drivers.s0.driver import STATE_FILE

MS = 1_000_000
REPO = Path(__file__).resolve().parents[1]


class Sink:
    def __init__(self) -> None:
        self.readings: list[list[Reading]] = []
        self.health: list[tuple[Health, str]] = []

    def publish(self, readings: Sequence[Reading]) -> None:
        self.readings.append(list(readings))

    def set_health(self, health: Health, detail: str = "") -> None:
        self.health.append((health, detail))


async def until(cond: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.01)


# ---- counting ------------------------------------------------------------------------------------------


def test_debounce_counts_on_trailing_edge_after_min_width() -> None:
    c = PulseCounter(min_width_ns=30 * MS)
    # leading-edge bounce: 1 ms blips, then a 60 ms pulse, then a trailing bounce
    edges = [(0, True), (1, False), (2, True), (3, False), (4, True), (64, False), (65, True), (66, False)]
    counted = [c.edge(Edge(t * MS, a)) for t, a in edges]
    assert counted == [False, False, False, False, False, True, False, False]
    assert (c.pulses, c.glitches) == (1, 3)
    assert c.edge(Edge(100 * MS, True)) is False and c.edge(Edge(129 * MS, False)) is False  # 29 ms: too short
    assert c.edge(Edge(200 * MS, True)) is False and c.edge(Edge(230 * MS, False)) is True  # exactly 30 ms
    assert c.edge(Edge(300 * MS, False)) is False  # trailing edge without a leading one
    assert c.pulses == 2


@given(st.lists(st.tuples(st.integers(30, 200), st.integers(1, 29), st.integers(0, 5)), max_size=50))
def test_debounce_property(pulses: list[tuple[int, int, int]]) -> None:
    """Every pulse >= 30 ms counts once, whatever short glitches come between pulses."""
    c = PulseCounter(min_width_ns=30 * MS)
    t = 0
    for width, glitch, nglitch in pulses:
        for _ in range(nglitch):
            c.edge(Edge(t * MS, True))
            c.edge(Edge((t + glitch) * MS, False))
            t += glitch + 1
        c.edge(Edge(t * MS, True))
        c.edge(Edge((t + width) * MS, False))
        t += width + 40
    assert c.pulses == len(pulses)


def test_register_arithmetic_and_reading() -> None:
    reg = Register(Decimal("12345.6"), 800, 1001)  # 800 imp/kWh -> 1.25 Wh per pulse
    assert reg.kwh == Decimal("12346.85125")
    r = reg.reading(time=5.0)
    assert (str(r.obis), r.value, r.scaler, r.unit) == ("1-0:1.8.0*255", 12346851250, -3, Unit.WH)
    assert r.status == ReadingStatus.ESTIMATED
    third = Register(Decimal(0), 375, 1)  # 2.666.. Wh: rounded down to the mWh
    assert third.kwh == Decimal("0.002666")


def test_register_reconfiguration_and_json() -> None:
    reg = Register(Decimal("100"), 1000, 500, Decimal("100"))
    assert reg.reconfigured(Decimal("100"), 1000) is reg
    folded = reg.reconfigured(Decimal("100"), 2000)  # new constant: pulses so far are kept as energy
    assert folded.kwh == Decimal("100.5") and folded.pulses == 0 and folded.configured == Decimal("100")
    assert folded.reconfigured(Decimal("100"), 2000) is folded  # stable across restarts
    assert reg.reconfigured(Decimal("200"), 1000) == Register(Decimal("200"), 1000, 0, Decimal("200"))
    assert Register.from_json(json.loads(json.dumps(folded.to_json()))) == folded
    for bad in ({}, {"version": 1}, {"version": 1, "start_kwh": "x", "meter_constant": 1, "pulses": 0},
                {"version": 1, "start_kwh": "1", "meter_constant": 0, "pulses": 0},
                {"version": 1, "start_kwh": "1", "meter_constant": 1, "pulses": -1}, [1, 2]):
        with pytest.raises(ValueError):
            Register.from_json(bad)


# ---- driver ----------------------------------------------------------------------------------------------


def make(tmp_path: Path, source: Any = None, **opts: Any) -> S0Driver:
    options = {"line": 17, "meter_constant": 1000, "start_value": Decimal("10.5"), "interval": 0.05,
               "persist_interval": 0.0, "reopen_interval": 0.05, **opts}
    return S0Driver(options, DriverContext("1ABC0012345678", str(tmp_path)), edge_source=source)


async def test_driver_counts_publishes_and_persists(tmp_path: Path) -> None:
    src = QueueEdgeSource()
    driver = make(tmp_path, src)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: sink.readings)
    for i in range(5):
        src.pulse(i * 100 * MS, 40 * MS)
    src.put(Edge(600 * MS, True))
    src.put(Edge(601 * MS, False))  # a glitch
    await until(lambda: sink.readings[-1][0].value == 10505000)
    await until(lambda: (read_json(tmp_path / STATE_FILE) or {}).get("pulses") == 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [h for h, _ in sink.health] == [Health.STARTING, Health.OK]
    last = sink.readings[-1][0]
    assert last.status == ReadingStatus.ESTIMATED and last.decimal == Decimal("10505")
    assert driver.counter.glitches == 1
    # a restart continues from the stored count
    src2 = QueueEdgeSource()
    driver2 = make(tmp_path, src2)
    sink2 = Sink()
    task = asyncio.create_task(driver2.run(sink2))
    await until(lambda: sink2.readings)
    src2.pulse(0, 50 * MS)
    await until(lambda: sink2.readings[-1][0].value == 10506000)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert read_json(tmp_path / STATE_FILE)["pulses"] == 6  # written on stop


async def test_edge_source_ending_is_source_lost_then_reopened(tmp_path: Path) -> None:
    src = QueueEdgeSource()
    driver = make(tmp_path, src)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: bool(sink.health) and sink.health[-1][0] is Health.OK)
    src.put(None)  # the source ends (line released under us)
    await until(lambda: Health.SOURCE_LOST in [h for h, _ in sink.health])
    await until(lambda: bool(sink.health) and sink.health[-1][0] is Health.OK)  # reopened
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [h for h, _ in sink.health] == [Health.STARTING, Health.OK, Health.SOURCE_LOST, Health.OK]


async def test_missing_gpiod_is_a_clear_error_not_a_crash(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    driver = make(tmp_path)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: len(sink.health) >= 2)
    await asyncio.sleep(0.2)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [h for h, _ in sink.health] == [Health.STARTING, Health.SOURCE_LOST]
    assert "gpiod" in sink.health[1][1] and "cannot be imported" in sink.health[1][1]


async def test_missing_gpio_chip_is_source_lost(tmp_path: Path) -> None:
    pytest.importorskip("gpiod")
    driver = make(tmp_path, GpiodEdgeSource("/dev/gpiochip-does-not-exist", 17), chip="/dev/nonexistent")
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: len(sink.health) >= 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sink.health[1][0] is Health.SOURCE_LOST
    assert "cannot request GPIO line 17" in sink.health[1][1]


async def test_corrupt_state_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{\"version\": 1, \"pul")
    driver = make(tmp_path, QueueEdgeSource())
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: len(sink.health) >= 2)
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sink.health[1][0] is Health.SOURCE_LOST and "corrupt" in sink.health[1][1]
    assert (tmp_path / STATE_FILE).read_text() == "{\"version\": 1, \"pul"
    assert not sink.readings


def test_start_value_change_restarts_count(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps(Register(Decimal("10.5"), 1000, 42).to_json()))
    assert make(tmp_path).load().pulses == 42
    assert make(tmp_path, start_value=Decimal("20")).load() == Register(Decimal("20"), 1000, 0, Decimal("20"))


_CHILD = r"""
import sys
from decimal import Decimal
from legacy_drivers.api import DriverContext
from legacy_drivers.s0 import S0Driver
d = S0Driver({"line": 0, "meter_constant": 1000, "start_value": Decimal("1"), "persist_interval": 0.0},
             DriverContext("x", sys.argv[1]))
d.register = d.load()
d.persist(force=True)
print("ready", d.register.pulses, flush=True)
while True:
    d.register = d.register.with_pulses(d.register.pulses + 7)
    d.persist(force=True)
"""


def test_sigkill_during_writes_never_corrupts(tmp_path: Path) -> None:
    rng = random.Random(4711)
    state = tmp_path / STATE_FILE
    last = -1
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(30):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                                 env=env, cwd=REPO)
        assert child.stdout is not None
        line = child.stdout.readline().split()
        assert line[0] == b"ready" and int(line[1]) >= last  # the child resumed from a valid file
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        reg = Register.from_json(read_json(state))  # always complete and valid
        assert reg.pulses >= last and reg.pulses % 7 == 0  # monotonic, never a partial update
        last = reg.pulses
    assert last > 0
    leftovers = list(tmp_path.glob(f".{STATE_FILE}.*.tmp"))
    assert len(leftovers) <= 1  # temp files of killed writes are removed on the next start


def test_options_schema_from_yaml(tmp_path: Path) -> None:
    from bab.schema import ConfigError, Map, load_yaml

    schema = Map(fields=dict(S0Driver.options_schema))
    opts = load_yaml("line: GPIO17\nmeter_constant: 10000\nstart_value: 4711.25\n", schema, "bab.yaml")
    assert opts["line"] == "GPIO17" and opts["start_value"] == Decimal("4711.25")
    assert opts["min_pulse_width"] == 0.030 and opts["persist_interval"] == 60.0
    driver = S0Driver(opts, DriverContext("x", str(tmp_path)))
    assert driver.load().kwh == Decimal("4711.25")
    # exactly one of meter_constant / pulse_value (checked with the meter ID when the config is loaded)
    assert S0Driver.check(load_yaml("line: 17\n", schema, "bab.yaml"), "1ABC0012345678")[0] == "meter_constant"
    both = load_yaml("line: 17\nmeter_constant: 100\npulse_value: 0.01\n", schema, "bab.yaml")
    assert S0Driver.check(both, "1ABC0012345678")[0] == "meter_constant"
    with pytest.raises(ConfigError, match="min_pulse_width"):
        load_yaml("line: 17\nmeter_constant: 1000\nmin_pulse_width: 0\n", schema, "bab.yaml")


async def test_gpiod_adapter_with_a_stand_in_binding(tmp_path: Path, monkeypatch: Any) -> None:
    """GpiodEdgeSource against a stand-in of the gpiod v2 API (no gpio-sim kernel module here)."""
    import enum
    import types

    class EvType(enum.Enum):
        RISING_EDGE = 1
        FALLING_EDGE = 2

    class Request:
        def __init__(self) -> None:
            self.r, self.w = os.pipe()
            self.fd = self.r
            self.pending: list[Any] = []
            self.released = False

        def emit(self, ts_ms: int, rising: bool) -> None:
            ev = types.SimpleNamespace(event_type=EvType.RISING_EDGE if rising else EvType.FALLING_EDGE,
                                       timestamp_ns=ts_ms * MS)
            self.pending.append(ev)
            os.write(self.w, b"x")

        def wait_edge_events(self, timeout: Any) -> bool:
            return bool(self.pending)

        def read_edge_events(self) -> list[Any]:
            os.read(self.r, 4096)
            out, self.pending = self.pending, []
            return out

        def release(self) -> None:
            self.released = True

    req = Request()
    seen: dict[str, Any] = {}

    def request_lines(path: str, consumer: str, config: dict[Any, Any]) -> Request:
        seen.update(path=path, consumer=consumer, config=config)
        return req

    line_mod = types.SimpleNamespace(
        Bias=enum.Enum("Bias", "AS_IS PULL_UP PULL_DOWN DISABLED"), Direction=enum.Enum("Direction", "INPUT"),
        Edge=enum.Enum("Edge", "BOTH"))
    fake = types.SimpleNamespace(LineSettings=lambda **kw: kw, request_lines=request_lines,
                                 EdgeEvent=types.SimpleNamespace(Type=EvType), line=line_mod)
    monkeypatch.setitem(sys.modules, "gpiod", fake)
    monkeypatch.setitem(sys.modules, "gpiod.line", line_mod)
    driver = make(tmp_path, chip="/dev/gpiochip4", line=17)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: bool(sink.health) and sink.health[-1][0] is Health.OK)
    req.emit(0, True)
    req.emit(45, False)  # a 45 ms pulse
    req.emit(100, True)
    req.emit(105, False)  # a 5 ms glitch
    await until(lambda: driver.counter.pulses == 1 and driver.counter.glitches == 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    settings = seen["config"][17]
    assert seen["path"] == "/dev/gpiochip4" and settings["active_low"] is True
    assert settings["bias"] == line_mod.Bias.PULL_UP and settings["edge_detection"] == line_mod.Edge.BOTH
    assert req.released
    os.close(req.r)
    os.close(req.w)


# ---- volume pulses (reed contacts of gas and water meters) ------------------------------------------------


def test_reed_contact_gap_debounce() -> None:
    """With min_gap, an interruption shorter than the gap belongs to the pulse; the pulse counts once the gap is
    confirmed (by the next pulse or by tick); a long closed phase is one pulse."""
    c = PulseCounter(min_width_ns=50 * MS, min_gap_ns=50 * MS)
    edges = [(0, True), (2, False), (3, True), (4, False), (5, True),  # make bounce
             (3000, False), (3001, True), (3003, False)]  # 3 s closed, then break bounce
    assert [c.edge(Edge(t * MS, a)) for t, a in edges] == [False] * 8
    assert c.pulses == 0 and not c.tick(3040 * MS)  # the gap is not yet confirmed
    assert c.tick(3053 * MS) and c.pulses == 1 and c.glitches == 0
    c.edge(Edge(5000 * MS, True))
    c.edge(Edge(5010 * MS, False))  # 10 ms: too short even as one pulse
    assert c.edge(Edge(5100 * MS, True)) is False and c.glitches == 1  # the gap passed: the short one was a glitch
    c.edge(Edge(5200 * MS, False))
    assert c.edge(Edge(5300 * MS, True)) is True and c.pulses == 2  # a confirmed gap counts the pulse before


def test_volume_register_pulse_value_and_json() -> None:
    reg = Register(Decimal("123.45"), None, 7, Decimal("123.45"), Decimal("0.01"), "m3")
    assert reg.value == Decimal("123.52")
    r = reg.reading(obis=Obis(8, 0, 1, 0, 0))
    assert (str(r.obis), r.value, r.scaler, r.unit, r.status) == ("8-0:1.0.0*255", 123520000, -6, Unit.M3,
                                                                   ReadingStatus.ESTIMATED)
    back = Register.from_json(json.loads(json.dumps(reg.to_json())))
    assert back == reg and reg.to_json()["version"] == 2
    # a changed pulse value folds what was counted; a changed unit starts over
    assert reg.reconfigured(Decimal("123.45"), None, Decimal("0.1"), "m3").value == Decimal("123.52")
    assert reg.reconfigured(Decimal("123.45"), 1000, None, "kWh").value == Decimal("123.45")
    with pytest.raises(ValueError):
        Register(Decimal(0), 100, 0, None, Decimal("0.01"), "m3")


async def test_water_meter_by_pulses_publishes_m3(tmp_path: Path) -> None:
    src = QueueEdgeSource()
    opts = {"line": 17, "obis": Obis(8, 0, 1, 0, 0), "pulse_value": Decimal("0.01"), "start_value": Decimal("12.3"),
            "min_pulse_width": 0.05, "min_pulse_gap": 0.05, "interval": 0.05, "persist_interval": 0.0}
    clock = [0.0]
    driver = S0Driver(opts, DriverContext("8BAB0000004711", str(tmp_path)), edge_source=src, clock=lambda: clock[0])
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await until(lambda: sink.readings)
    for i in range(5):
        src.pulse(i * 1000 * MS, 400 * MS)
    clock[0] = 10.0  # long after the last pulse: its gap is confirmed by the driver's tick
    await until(lambda: sink.readings[-1][0].decimal == Decimal("12.35"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    last = sink.readings[-1][0]
    assert (str(last.obis), last.unit) == ("8-0:1.0.0*255", Unit.M3)
    assert read_json(tmp_path / STATE_FILE)["pulses"] == 5


def test_volume_options_checked_against_the_meter_id() -> None:
    ok = {"line": 1, "obis": Obis(7, 0, 3, 0, 0), "pulse_value": Decimal("0.01")}
    assert S0Driver.check(ok, "7BAB0000000001") is None
    key, message = S0Driver.check(ok, "8BAB0000000001")
    assert key == "obis" and "must start with 7" in message
    assert S0Driver.check({**ok, "obis": Obis(1, 0, 16, 7, 0)}, "1BAB0000000001") is None
    assert S0Driver.check({**ok, "obis": Obis(0, 0, 1, 0, 0)}, "1BAB0000000001")[0] == "obis"
