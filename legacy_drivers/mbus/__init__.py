"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer): gas, water and heat meters.

``frame`` (FT 1.2 frames, stream splitter), ``link`` (sans-I/O master: SND_NKE, REQ_UD2/RSP_UD, FCB,
secondary addressing, multi-telegram readouts, time-outs and retries), ``records`` (exact decoding of the
variable data structure), ``obis_map`` (records -> OBIS readings per medium), ``bus`` (one port shared by the
slaves on it), ``driver`` (``type: mbus``) and ``slave_sim`` (a simulated slave for tests).
"""

from .driver import MbusDriver, meter_medium
from .link import LinkTiming, MbusMaster, Primary, Secondary

__all__ = ["LinkTiming", "MbusDriver", "MbusMaster", "Primary", "Secondary", "meter_medium"]
