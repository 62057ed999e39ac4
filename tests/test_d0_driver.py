"""D0 driver: end to end over a pty with a simulated meter, health, source loss and hot-plug."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import pytest

from bab.reading import Reading, ReadingStatus
from bab.transport import TransportError, TransportLost
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.d0 import D0Driver, wire_time
from legacy_drivers.d0.meter_sim import D0MeterSim, serve_fd
from legacy_drivers.hotplug import HeadIdentity, HotplugMonitor

EMH = D0MeterSim(
    r"/EMH5\@01LZQJC0014F",
    "F.F(00000000)\r\n0.0.0(12345678)\r\n1.8.0(012345.678*kWh)\r\n2.8.0(000123.456*kWh)\r\n"
    "1.7.0(0001.234*kW)\r\n!\r\n",
    reaction=0.05,
)
CTX = DriverContext(meter_id="1EMH0012345678", state_dir="/nonexistent")


class Sink:
    def __init__(self) -> None:
        self.readings: list[list[Reading]] = []
        self.health: list[tuple[Health, str]] = []
        self.changed = asyncio.Event()

    def publish(self, readings: Sequence[Reading]) -> None:
        self.readings.append(list(readings))
        self.changed.set()

    def set_health(self, health: Health, detail: str = "") -> None:
        self.health.append((health, detail))
        self.changed.set()

    async def wait(self, cond: Any, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not cond():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(loop(), timeout)

    def states(self) -> list[Health]:
        return [h for h, _ in self.health]


def fast(**extra: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"interval": 0.0, "reaction_delay": 0.01, "changeover_delay": 0.0,
                            "response_timeout": 0.5, "reopen_interval": 0.05}
    opts.update(extra)
    return opts


# ---- end to end over a pty ----------------------------------------------------------------------------


@pytest.fixture
def pty_meter() -> Any:
    master, slave = os.openpty()
    stop = threading.Event()
    meters: list[D0MeterSim] = []
    threads: list[threading.Thread] = []

    def start(meter: D0MeterSim) -> str:
        meters.append(meter)
        threads.append(serve_fd(master, meter, stop, pace=False))
        return os.ttyname(slave)

    yield start
    stop.set()
    for t in threads:  # before closing: a later test's pty may reuse the fd number
        t.join(10)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


async def test_pty_end_to_end_mode_c(pty_meter: Any) -> None:
    meter = dataclasses.replace(EMH)
    port = pty_meter(meter)
    driver = D0Driver({"port": port, **fast(interval=0.2)}, CTX)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: len(sink.readings) >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.states()[:2] == [Health.STARTING, Health.OK]
    by = {str(r.obis): r for r in sink.readings[0]}
    assert by["1-0:1.8.0*255"].decimal == Decimal("12345678")
    assert by["1-0:1.7.0*255"].decimal == Decimal("1234") and by["1-0:1.7.0*255"].status == ReadingStatus.OK
    assert meter.signons >= 2 and driver.stats["readouts"] >= 2


async def test_pty_mode_d_push_and_port_loss() -> None:
    master, slave = os.openpty()
    meter = D0MeterSim("/ESY5Q3DA1024 V3.04", "1-0:1.8.0*255(00464.2791770*kWh)\r\n!\r\n")
    driver = D0Driver({"port": os.ttyname(slave), "mode": "D", "baudrate": 9600, **fast()}, CTX)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await asyncio.sleep(0.2)
        os.write(master, meter.push())
        await sink.wait(lambda: sink.readings)
        assert sink.readings[0][0].value == 4642791770
        assert sink.states() == [Health.STARTING, Health.OK]
        os.close(slave)
        os.close(master)  # the "head" disappears: the open port reports an error
        await sink.wait(lambda: Health.SOURCE_LOST in sink.states())
        await asyncio.sleep(0.3)  # reopen attempts fail quietly
        assert sink.states().count(Health.SOURCE_LOST) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_loop_url_echo_only_gives_timeouts_then_stale() -> None:
    # loop:// echoes our own sign-on: no meter answers; the echo is ignored and the readouts time out
    driver = D0Driver({"port": "loop://", "stale_after": 2, **fast()}, CTX)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: Health.STALE in sink.states())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.states() == [Health.STARTING, Health.STALE]
    assert driver.client.stats["bad_identification"] == 0  # the echo was recognised, not counted as garbage
    assert driver.stats["timeouts"] >= 2


# ---- in-memory transport ------------------------------------------------------------------------------


class FakePort:
    """A transport whose far end is a D0MeterSim; replies arrive after the meter's delay + wire time."""

    opened: list[str] = []

    def __init__(self, meter: D0MeterSim, port: str, baudrate: int, fail_open: bool = False) -> None:
        self.meter, self.port, self.baudrate, self.fail_open = meter, port, baudrate, fail_open
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    async def open(self) -> None:
        if self.fail_open:
            raise TransportError(f"cannot open {self.port}: [Errno 2] No such file or directory")
        FakePort.opened.append(self.port)
        self.meter.reset()  # the meter timed out while the head was away

    async def read(self) -> bytes:
        item = await self.queue.get()
        if isinstance(item, Exception):
            self.queue.put_nowait(item)
            raise item
        return item

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        heard = data if self.meter.baudrate == self.baudrate else bytes(0x60 | (b & 31) for b in data)
        t = wire_time(len(data), self.baudrate)
        for r in self.meter.receive(heard):
            t += r.delay
            loop.call_later(t, self._deliver, r.data, r.baudrate)

    def _deliver(self, data: bytes, rate: int) -> None:
        self.queue.put_nowait(data if rate == self.baudrate else bytes(0x60 | (b & 31) for b in data))

    def set_baudrate(self, baudrate: int) -> None:
        self.baudrate = baudrate

    def abort(self, reason: str) -> None:
        self.queue.put_nowait(TransportLost(f"{self.port}: {reason}"))

    def close(self) -> None:
        pass


async def test_missed_readouts_reduce_then_stale_then_recover() -> None:
    meter = dataclasses.replace(EMH, reaction=0.01, _buf=bytearray())
    driver = D0Driver({"port": "/dev/ttyFAKE", "stale_after": 3, **fast(response_timeout=0.3)}, CTX,
                      transport_factory=lambda port, rate: FakePort(meter, port, rate))
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: Health.OK in sink.states())
        meter.silent = True
        await sink.wait(lambda: Health.STALE in sink.states())
        meter.silent = False
        await sink.wait(lambda: sink.states()[-1] is Health.OK)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.states() == [Health.STARTING, Health.OK, Health.REDUCED, Health.STALE, Health.OK]
    assert sink.health[3][1].startswith("3 missed readouts")


async def test_required_register_missing_is_reduced_and_meter_error_flag() -> None:
    meter = D0MeterSim("/XYZ5abc", "F.F(00000001)\r\n2.8.0(1.0*kWh)\r\n!\r\n", reaction=0.01)
    driver = D0Driver({"port": "/dev/ttyFAKE", **fast()}, CTX,
                      transport_factory=lambda port, rate: FakePort(meter, port, rate))
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: sink.readings)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.health[-1] == (Health.REDUCED, "missing 1-0:1.8.0*255")
    assert all(r.status & ReadingStatus.METER_ERROR for r in sink.readings[0])


async def test_open_failure_reported_once() -> None:
    driver = D0Driver({"port": "/dev/ttyGONE", **fast()}, CTX,
                      transport_factory=lambda port, rate: FakePort(EMH, port, rate, fail_open=True))
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    await asyncio.sleep(0.4)  # several reopen attempts
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sink.states() == [Health.STARTING, Health.SOURCE_LOST]
    assert "No such file" in sink.health[1][1]


# ---- hot-plug ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class UdevDev:
    action: str | None
    device_node: str | None
    properties: dict[str, str]


def ftdi(node: str, action: str | None = None, serial: str = "D30A1B2C") -> UdevDev:
    return UdevDev(action, node, {"ID_VENDOR_ID": "0403", "ID_MODEL_ID": "6015", "ID_SERIAL_SHORT": serial,
                                  "DEVLINKS": f"/dev/serial/by-id/usb-FTDI_FT230X_{serial}-if00-port0"})


async def test_hotplug_unplug_replug_reopens_without_restart() -> None:
    events: asyncio.Queue[UdevDev] = asyncio.Queue()
    present = [ftdi("/dev/ttyUSB0")]

    async def source() -> AsyncIterator[UdevDev]:
        while True:
            yield await events.get()

    monitor = HotplugMonitor(HeadIdentity.from_port("usb:0403:6015:D30A1B2C"),  # type: ignore[arg-type]
                             source=source, enumerate_devices=lambda: list(present))
    meter = dataclasses.replace(EMH, reaction=0.01, _buf=bytearray())
    FakePort.opened = []
    driver = D0Driver({"port": "usb:0403:6015:D30A1B2C", **fast(interval=0.05, reopen_interval=30.0)}, CTX,
                      transport_factory=lambda port, rate: FakePort(meter, port, rate), hotplug=monitor)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: Health.OK in sink.states())
        present.clear()
        for _ in range(3):  # udev may repeat; a foreign device comes and goes too
            events.put_nowait(ftdi("/dev/ttyUSB0", "remove"))
            events.put_nowait(ftdi("/dev/ttyUSB3", "remove", serial="OTHER"))
        await sink.wait(lambda: Health.SOURCE_LOST in sink.states())
        await asyncio.sleep(0.2)
        present.append(ftdi("/dev/ttyUSB1"))
        events.put_nowait(ftdi("/dev/ttyUSB1", "add"))  # replugged under a new name; reopen_interval is 30 s
        await sink.wait(lambda: sink.states()[-1] is Health.OK, timeout=5.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.states() == [Health.STARTING, Health.OK, Health.SOURCE_LOST, Health.STARTING, Health.OK]
    assert "unplugged" in sink.health[2][1]
    assert FakePort.opened == ["/dev/ttyUSB0", "/dev/ttyUSB1"]


# ---- configuration -------------------------------------------------------------------------------------


def test_options_schema_from_yaml() -> None:
    from bab.schema import ConfigError, Map, load_yaml

    schema = Map(fields=dict(D0Driver.options_schema))
    opts = load_yaml("port: /dev/serial/by-id/usb-x\nbaudrate: 300\nack_baud_char: 4\npassword: 00000000\n"
                     "required: ['1-0:1.8.0', '1-0:2.8.0']\n", schema, "bab.yaml")
    driver = D0Driver(opts, CTX, transport_factory=lambda p, r: FakePort(EMH, p, r))
    assert driver.config.ack_baud_char == "4" and driver.config.password == "00000000"
    assert driver.config.initial_baudrate == 300 and driver.opt["interval"] == 10.0
    assert driver.hotplug is not None  # a by-id port is followed with udev
    with pytest.raises(ConfigError, match=r"bab.yaml:2: ack_baud_char: expected a mode C baud character"):
        load_yaml("port: x\nack_baud_char: 9\n", schema, "bab.yaml")
    with pytest.raises(ConfigError, match="unknown key"):
        load_yaml("port: x\nbaud: 9600\n", schema, "bab.yaml")
    assert D0Driver({"port": "/dev/ttyUSB0", "mode": "D"}, CTX).config.initial_baudrate == 2400
    assert D0Driver({"port": "socket://meter:4001"}, CTX).hotplug is None


async def test_hotplug_by_id_port_unplug_is_seen() -> None:
    events: asyncio.Queue[UdevDev] = asyncio.Queue()
    link = "/dev/serial/by-id/usb-FTDI_FT230X_D30A1B2C-if00-port0"

    async def source() -> AsyncIterator[UdevDev]:
        while True:
            yield await events.get()

    monitor = HotplugMonitor(HeadIdentity(by_id=link), source=source,
                             enumerate_devices=lambda: [ftdi("/dev/ttyUSB0")])
    meter = dataclasses.replace(EMH, reaction=0.01, _buf=bytearray())
    FakePort.opened = []
    driver = D0Driver({"port": link, **fast(interval=0.05)}, CTX,
                      transport_factory=lambda port, rate: FakePort(meter, port, rate), hotplug=monitor)
    sink = Sink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await sink.wait(lambda: Health.OK in sink.states())
        events.put_nowait(ftdi("/dev/ttyUSB0", "remove"))
        await sink.wait(lambda: Health.SOURCE_LOST in sink.states())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert FakePort.opened[0] == link  # the stable path is opened, not the kernel name
    assert "unplugged" in sink.health[2][1]
