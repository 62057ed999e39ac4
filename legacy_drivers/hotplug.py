"""Optical-head hot-plug: follow a USB serial head by its stable identity across unplug and replug.

A head is named in the driver's ``port`` option either by a ``/dev/serial/by-id/...`` path or by
``usb:VID:PID[:SERIAL]`` (hex vendor and product ID, optional serial number as udev reports it in
``ID_SERIAL_SHORT``). :class:`HeadIdentity` matches udev devices against that; :class:`HeadTracker` is the
sans-I/O part that turns udev ``add``/``remove`` events into :class:`Attached`/:class:`Detached` changes,
each reported once (repeated or foreign events give nothing, so an unplugged head cannot flood the log).
:class:`HotplugMonitor` feeds it from pyudev's netlink monitor, or from any injected async source of
udev-like events (tests).

A udev-like event is anything with ``action`` (``"add"``, ``"remove"``, ...), ``device_node`` and
``properties`` (a mapping with ``ID_VENDOR_ID``, ``ID_MODEL_ID``, ``ID_SERIAL_SHORT``, ``DEVLINKS``), as
:class:`pyudev.Device` has.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

BY_ID_DIR = "/dev/serial/by-id/"
_USB = re.compile(r"^usb:([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})(?::(.+))?$")


class UdevDevice(Protocol):
    """The part of :class:`pyudev.Device` the tracker uses."""

    @property
    def device_node(self) -> str | None: ...

    @property
    def properties(self) -> Mapping[str, str]: ...


class UdevEvent(UdevDevice, Protocol):
    @property
    def action(self) -> str | None: ...


@dataclass(frozen=True)
class HeadIdentity:
    """A stable name of one optical head: a by-id path, or USB vendor/product (and serial)."""

    by_id: str | None = None
    vendor_id: str | None = None
    product_id: str | None = None
    serial: str | None = None

    @classmethod
    def from_port(cls, port: str) -> HeadIdentity | None:
        """The identity a ``port`` option names, or None for a plain device or URL (not followed)."""
        m = _USB.match(port)
        if m:
            return cls(vendor_id=m.group(1).lower(), product_id=m.group(2).lower(), serial=m.group(3))
        if port.startswith(BY_ID_DIR):
            return cls(by_id=port)
        return None

    def matches(self, device: UdevDevice) -> bool:
        props = device.properties
        if self.by_id is not None:
            links = str(props.get("DEVLINKS", "")).split()
            return self.by_id in links
        if str(props.get("ID_VENDOR_ID", "")).lower() != self.vendor_id:
            return False
        if str(props.get("ID_MODEL_ID", "")).lower() != self.product_id:
            return False
        return self.serial is None or props.get("ID_SERIAL_SHORT") == self.serial

    def __str__(self) -> str:
        if self.by_id:
            return self.by_id
        return f"usb:{self.vendor_id}:{self.product_id}" + (f":{self.serial}" if self.serial else "")


@dataclass(frozen=True)
class Attached:
    device_node: str


@dataclass(frozen=True)
class Detached:
    device_node: str | None


HeadChange = Attached | Detached


class HeadTracker:
    """Sans-I/O: udev events in, at most one change per real transition out."""

    def __init__(self, identity: HeadIdentity, present: str | None = None) -> None:
        self.identity = identity
        self.device_node = present  # the head's current device node, None while unplugged

    def handle(self, event: UdevEvent) -> HeadChange | None:
        action = event.action
        if action not in ("add", "remove", "change", "bind"):
            return None
        node = event.device_node
        if not node or not self.identity.matches(event):
            return None
        if action == "remove":
            if self.device_node is None or node != self.device_node:
                return None
            self.device_node = None
            return Detached(node)
        if self.device_node == node:
            return None
        self.device_node = node
        return Attached(node)


def _pyudev_enumerate() -> Iterable[UdevDevice]:
    import pyudev

    return list(pyudev.Context().list_devices(subsystem="tty"))


async def _pyudev_events() -> AsyncIterator[UdevEvent]:
    import pyudev

    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("tty")
    monitor.start()
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(monitor.fileno(), ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            while (device := monitor.poll(timeout=0)) is not None:
                yield device
    finally:
        loop.remove_reader(monitor.fileno())


class HotplugMonitor:
    """Follows one head: :meth:`find` gives its device node now, :meth:`changes` yields attach/detach."""

    def __init__(self, identity: HeadIdentity, *,
                 source: Callable[[], AsyncIterator[Any]] | None = None,
                 enumerate_devices: Callable[[], Iterable[Any]] | None = None) -> None:
        self.identity = identity
        self._source = source or _pyudev_events
        self._enumerate = enumerate_devices or _pyudev_enumerate
        self.tracker = HeadTracker(identity)

    def find(self) -> str | None:
        """The head's device node among the present tty devices (None if absent or udev unavailable)."""
        try:
            devices = list(self._enumerate())
        except Exception as exc:  # no udev (container), pyudev missing: the by-id path still works
            log.debug("hot-plug: cannot enumerate devices: %s", exc)
            return None
        for dev in devices:
            if dev.device_node and self.identity.matches(dev):
                self.tracker.device_node = dev.device_node
                return str(dev.device_node)
        self.tracker.device_node = None
        return None

    async def changes(self) -> AsyncIterator[HeadChange]:
        """Attach/detach changes of the head, each once, until cancelled."""
        async for event in self._source():
            try:
                change = self.tracker.handle(event)
            except Exception as exc:  # a malformed event must not stop hot-plug handling
                log.warning("hot-plug: ignoring malformed udev event: %s", exc)
                continue
            if change is not None:
                yield change
