"""The M-Bus driver on a pty with simulated slaves at 9600 baud: readouts, broken telegrams (counted, never a
value), silence (stale), a slave of another medium, several slaves sharing one bus, secondary addressing,
configuration checks."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import tty
from collections.abc import Sequence
from typing import Any

import mbus_telegrams as T
import pytest

from bab.config import ConfigError, loads
from bab.reading import Reading
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.mbus import MbusDriver
from legacy_drivers.mbus.slave_sim import MbusSlaveSim, SimBus, serve_fd, telegram_of

GAS = telegram_of(T.GAS_ITRON_CYBLE)
WATER = telegram_of(T.WATER_ELSTER_FALCON)


class Sink:
    def __init__(self) -> None:
        self.readings: list[list[Reading]] = []
        self.health: list[tuple[Health, str]] = []

    def publish(self, readings: Sequence[Reading]) -> None:
        self.readings.append(list(readings))

    def set_health(self, health: Health, detail: str = "") -> None:
        self.health.append((health, detail))

    def value(self, obis: str) -> str | None:
        for batch in reversed(self.readings):
            for r in batch:
                if str(r.obis) == obis:
                    return f"{r.decimal} {r.unit.name}"
        return None


async def until(cond: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.fixture
def bus_pty():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    stop = threading.Event()
    threads = []

    def start(slaves: list[MbusSlaveSim]) -> str:
        threads.append(serve_fd(master, SimBus(slaves, baudrate=9600), stop))
        return os.ttyname(slave)

    yield start
    stop.set()
    for t in threads:
        t.join(5)
    os.close(master)
    os.close(slave)


def driver(port: str, meter_id: str, tmp_path, **opts: Any) -> MbusDriver:
    options = {"port": port, "baudrate": 9600, "interval": 0.05, "latency": 0.05, **opts}
    return MbusDriver(options, DriverContext(meter_id, str(tmp_path)))


async def run_until(drivers_sinks, cond, timeout: float = 10.0) -> None:
    tasks = [asyncio.create_task(d.run(s)) for d, s in drivers_sinks]
    try:
        await until(cond, timeout)
    except AssertionError:
        raise AssertionError(f"not reached; driver stats: {[dict(d.stats) for d, _ in drivers_sinks]}") from None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_gas_meter_readout_and_broken_telegrams(bus_pty, tmp_path) -> None:
    slave = MbusSlaveSim(4, [GAS], medium=0x03, faults=["bad_checksum", "ok", "wrong_length", "ok", "truncated"])
    port = bus_pty([slave])
    # latency 0.5 s: on a loaded machine the slave's thread can answer later than the default 50 ms allows,
    # and a timed-out broken answer would be counted as no answer instead of under its own reason
    d, sink = driver(port, "7ACW0010020387", tmp_path, address=4, latency=0.5), Sink()
    await run_until([(d, sink)], lambda: d.stats["readouts"] >= 4)
    assert d.stats["bad_checksum"] == 1 and d.stats["truncated"] >= 1 and d.stats["missed"] == 0
    values = {f"{r.decimal} {r.unit.name}" for batch in sink.readings for r in batch if str(r.obis) == "7-0:3.0.0*255"}
    assert values == {"0.26 M3"}  # the broken telegrams never gave a value
    assert sink.health[:2] == [(Health.STARTING, ""), (Health.OK, "")]


async def test_silent_slave_goes_stale_with_the_reason(bus_pty, tmp_path) -> None:
    slave = MbusSlaveSim(4, [GAS], faults=["silent"] * 100)
    port = bus_pty([slave])
    d, sink = driver(port, "7ACW0010020387", tmp_path, address=4, retries=0, stale_after=2), Sink()
    await run_until([(d, sink)], lambda: any(h is Health.STALE for h, _ in sink.health))
    assert not sink.readings and d.stats["no_answer"] >= 2
    assert "no_answer" in sink.health[-1][1]


async def test_slave_of_another_medium_is_refused(bus_pty, tmp_path) -> None:
    port = bus_pty([MbusSlaveSim(1, [WATER], medium=0x07)])
    d, sink = driver(port, "7ACW0010020387", tmp_path, address=1), Sink()  # a gas meter ID, a water meter
    await run_until([(d, sink)], lambda: any(h is Health.STALE for h, _ in sink.health))
    assert not sink.readings and d.stats["medium_mismatch"] >= 3 and "medium_mismatch" in sink.health[-1][1]


async def test_several_slaves_on_one_bus_each_their_own_meter(bus_pty, tmp_path) -> None:
    gas = MbusSlaveSim(4, [GAS], medium=0x03)
    water = MbusSlaveSim(1, [WATER], medium=0x07)
    port = bus_pty([gas, water])
    d_gas, s_gas = driver(port, "7ACW0010020387", tmp_path / "g", address=4), Sink()
    d_water, s_water = driver(port, "8ELS0070112345", tmp_path / "w", secondary_address="70112345",
                              manufacturer="ELS"), Sink()
    await run_until([(d_gas, s_gas), (d_water, s_water)],
                    lambda: d_gas.stats["readouts"] >= 3 and d_water.stats["readouts"] >= 3)
    assert s_gas.value("7-0:3.0.0*255") == "0.26 M3" and s_water.value("8-0:1.0.0*255") == "1234.567 M3"
    assert s_gas.value("8-0:1.0.0*255") is None and s_water.value("7-0:3.0.0*255") is None
    # the two masters took turns on the line: no collisions, no broken answers
    for d in (d_gas, d_water):
        assert not any(d.stats[k] for k in ("bad_checksum", "truncated", "no_answer", "unexpected_frame"))


async def test_port_that_does_not_exist_is_source_lost(tmp_path) -> None:
    d, sink = driver(str(tmp_path / "no-such-tty"), "7ACW0010020387", tmp_path, address=4), Sink()
    await run_until([(d, sink)], lambda: any(h is Health.SOURCE_LOST for h, _ in sink.health))


def test_configuration_checks() -> None:
    base = 'lmn: {port: "virtual://t"}\nmeters:\n  - id: "%s"\n    driver: {type: mbus, port: /dev/ttyUSB0%s}\n'
    cfg = loads(base % ("7ACW0010020387", ", address: 4"))
    assert cfg.meters[0].driver_type == "mbus" and cfg.meters[0].driver_options["baudrate"] == 2400
    with pytest.raises(ConfigError, match=r":3: meters\[0\].id: .*must start with its medium's digit"):
        loads(base % ("1ACW0010020387", ", address: 4"))
    with pytest.raises(ConfigError, match="either address"):
        loads(base % ("7ACW0010020387", ""))
    with pytest.raises(ConfigError, match="driver.baudrate"):
        loads(base % ("7ACW0010020387", ", address: 4, baudrate: 2401"))
    with pytest.raises(ConfigError, match="secondary_address"):
        loads(base % ("7ACW0010020387", ", secondary_address: 12AB"))
    assert loads(base % ("6KAM0006855817", ", secondary_address: 0685FFFF, manufacturer: kam")
                 ).meters[0].driver_options["manufacturer"] == "KAM"
