"""Optical-head hot-plug: identity matching and the udev event tracker (no real udev needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from legacy_drivers.hotplug import Attached, Detached, HeadIdentity, HeadTracker, HotplugMonitor

BY_ID = "/dev/serial/by-id/usb-Silicon_Labs_CP2104_USB_to_UART_01A2B3C4-if00-port0"


@dataclass
class Ev:
    action: str | None
    device_node: str | None
    properties: dict[str, str] = field(default_factory=dict)


def cp2104(action: str | None, node: str, serial: str = "01A2B3C4") -> Ev:
    link = f"/dev/serial/by-id/usb-Silicon_Labs_CP2104_USB_to_UART_{serial}-if00-port0"
    return Ev(action, node, {"ID_VENDOR_ID": "10c4", "ID_MODEL_ID": "ea60", "ID_SERIAL_SHORT": serial,
                             "DEVLINKS": f"/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0 {link}"})


def test_identity_from_port() -> None:
    assert HeadIdentity.from_port("usb:10C4:EA60") == HeadIdentity(vendor_id="10c4", product_id="ea60")
    assert HeadIdentity.from_port("usb:10c4:ea60:01A2B3C4").serial == "01A2B3C4"  # type: ignore[union-attr]
    assert HeadIdentity.from_port(BY_ID) == HeadIdentity(by_id=BY_ID)
    for plain in ("/dev/ttyUSB0", "socket://10.0.0.2:4001", "loop://", "usb:10c4"):
        assert HeadIdentity.from_port(plain) is None


def test_matching() -> None:
    assert HeadIdentity(by_id=BY_ID).matches(cp2104("add", "/dev/ttyUSB0"))
    assert not HeadIdentity(by_id=BY_ID).matches(cp2104("add", "/dev/ttyUSB0", serial="OTHER"))
    any_cp = HeadIdentity(vendor_id="10c4", product_id="ea60")
    assert any_cp.matches(cp2104("add", "/dev/ttyUSB0", serial="OTHER"))
    one = HeadIdentity(vendor_id="10c4", product_id="ea60", serial="01A2B3C4")
    assert not one.matches(cp2104("add", "/dev/ttyUSB0", serial="OTHER"))
    assert not one.matches(Ev("add", "/dev/ttyS0"))  # no USB properties at all


def test_tracker_reports_each_transition_once() -> None:
    t = HeadTracker(HeadIdentity(by_id=BY_ID), present="/dev/ttyUSB0")
    seq = [
        cp2104("change", "/dev/ttyUSB0"),  # nothing new
        cp2104("remove", "/dev/ttyUSB0"),
        cp2104("remove", "/dev/ttyUSB0"),  # repeated
        cp2104("remove", "/dev/ttyUSB7", serial="OTHER"),  # another head
        cp2104("add", "/dev/ttyUSB7", serial="OTHER"),
        Ev("add", None),  # a udev event without a node
        Ev("move", "/dev/ttyUSB1"),
        cp2104("add", "/dev/ttyUSB1"),
        cp2104("add", "/dev/ttyUSB1"),
        cp2104("remove", "/dev/ttyUSB0"),  # stale remove of the old node: the head lives at ttyUSB1 now
    ]
    out = [t.handle(e) for e in seq]
    assert [c for c in out if c is not None] == [Detached("/dev/ttyUSB0"), Attached("/dev/ttyUSB1")]
    assert t.device_node == "/dev/ttyUSB1"


async def test_monitor_with_injected_source_and_enumeration() -> None:
    events = [cp2104("remove", "/dev/ttyUSB0"), Ev("add", "/dev/ttyUSB0", properties=None),  # type: ignore
              cp2104("add", "/dev/ttyUSB2")]

    async def source() -> AsyncIterator[Ev]:
        for e in events:
            yield e
            await asyncio.sleep(0)

    mon = HotplugMonitor(HeadIdentity(by_id=BY_ID), source=source,
                         enumerate_devices=lambda: [Ev(None, "/dev/ttyS0"), cp2104(None, "/dev/ttyUSB0")])
    assert mon.find() == "/dev/ttyUSB0"
    changes = [c async for c in mon.changes()]
    assert changes == [Detached("/dev/ttyUSB0"), Attached("/dev/ttyUSB2")]  # the malformed event was skipped


def test_find_without_udev_is_none() -> None:
    def broken() -> list[Ev]:
        raise OSError("no udev in this container")

    assert HotplugMonitor(HeadIdentity(by_id=BY_ID), enumerate_devices=broken).find() is None
