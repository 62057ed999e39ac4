"""The driver plugin API: how a legacy meter source feeds readings into BAB.

A driver is a *protocol* (a sans-I/O parser where it reads bytes) plus a *transport* (serial port, TCP socket,
replay file, pty, GPIO). The daemon creates one driver instance per meter from the meter's ``driver:`` YAML
section and runs :meth:`Driver.run` as an asyncio task. The driver publishes normalised
:class:`~bab.reading.Reading` objects and its health to a :class:`ReadingSink`.

Drivers are found through the entry-point group ``bab.drivers`` (name = the YAML ``type``); the in-tree ones
are registered in BAB's own ``pyproject.toml``. A third-party driver is a pip package with::

    [project.entry-points."bab.drivers"]
    mymeter = "mypkg.driver:MyMeterDriver"

and one line of YAML: ``driver: {type: mymeter, ...}``. See ``docs/drivers.md`` for a minimal example.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from bab.reading import Reading
from bab.schema import Type


class Health(enum.Enum):
    """Driver health, exposed by ``bab status`` and logged on every change."""

    STARTING = "starting"
    OK = "ok"
    REDUCED = "reduced data set"
    STALE = "stale"
    SOURCE_LOST = "source lost"


class ReadingSink(Protocol):
    """Where a driver delivers its output (implemented by the meter's value store)."""

    def publish(self, readings: Sequence[Reading]) -> None:
        """New readings from the legacy meter (any subset of the meter's quantities)."""

    def set_health(self, health: Health, detail: str = "") -> None:
        """A change of the driver's health; ``detail`` is a short human-readable reason."""


@dataclass(frozen=True)
class DriverContext:
    """What a driver gets from the daemon besides its own options."""

    meter_id: str
    state_dir: str  # a per-meter directory for persistent driver state (e.g. S0 pulse counts)


class Driver(abc.ABC):
    """Base class of all drivers. Subclasses set ``options_schema`` and implement :meth:`run`."""

    #: Schema of the driver's YAML options, besides ``type`` (see :mod:`bab.schema`).
    options_schema: ClassVar[Mapping[str, Type]] = {}

    def __init__(self, options: Mapping[str, Any], context: DriverContext) -> None:
        self.options = options
        self.context = context

    @classmethod
    def check(cls, options: Mapping[str, Any], meter_id: str) -> tuple[str, str] | None:
        """A check of the validated options together with the meter ID, run when the configuration is loaded:
        None, or (option key or ``"id"``, message) of the first problem (e.g. a gas meter's ID must start with
        7). The default accepts everything."""
        return None

    @abc.abstractmethod
    async def run(self, sink: ReadingSink) -> None:
        """Read the legacy meter until cancelled, publishing readings and health to ``sink``.

        Must not raise on bad input from the meter: log, count, report health, and go on.
        """


class DriverNotFound(LookupError):
    pass


def available_drivers() -> dict[str, type[Driver]]:
    """All installed drivers by YAML ``type`` name (entry-point group ``bab.drivers``)."""
    found: dict[str, type[Driver]] = {}
    for ep in entry_points(group="bab.drivers"):
        try:
            cls = ep.load()
        except Exception:  # a broken third-party plugin must not take the daemon down
            continue
        if isinstance(cls, type) and issubclass(cls, Driver):
            found[ep.name] = cls
    return found


def driver_class(name: str) -> type[Driver]:
    drivers = available_drivers()
    try:
        return drivers[name]
    except KeyError:
        raise DriverNotFound(
            f"no driver {name!r} installed (installed: {', '.join(sorted(drivers)) or 'none'})"
        ) from None
