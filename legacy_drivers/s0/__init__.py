"""S0 pulse input (EN 62053-31): GPIO edges via libgpiod, debounce, persisted pulse-derived register."""

from .counter import ENERGY_IMPORT, PulseCounter, Register
from .driver import S0Driver
from .edges import Edge, EdgeSource, EdgeSourceError, GpiodEdgeSource, QueueEdgeSource

__all__ = ["ENERGY_IMPORT", "Edge", "EdgeSource", "EdgeSourceError", "GpiodEdgeSource", "PulseCounter",
           "QueueEdgeSource", "Register", "S0Driver"]
