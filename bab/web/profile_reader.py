"""Reading a meter's load profile for the web console: SML_GetProfileList on 1-0:99.1.0*255 (LMN-STACK.md 6.3, 7).

:class:`ProfileReader` is a client layer (:class:`bab.hdlc.upper.ClientLayer`) around an
:class:`~bab.sml.client.SmlClient` that sends the request: it passes every byte on to that client (which ends the
conversation and reports attentions, e.g. ``FE 11`` "no entry" for a profile that has no capture yet) and decodes
the same response file itself for the GetProfileList.Res messages, one per period, which the SML client does not
keep. The result: per period its time (UTC seconds or a seconds index), status and the values as exact decimals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bab.cosem.profile import PROFILE_OBIS
from bab.obis import Obis
from bab.reading import Reading
from bab.sml.client import SmlClient, SmlResult
from bab.sml.messages import GetProfileListReq, GetProfileListRes
from bab.sml.quirks import Quirk
from bab.sml.stream import FileDecoded, SmlStreamDecoder
from bab.sml.types import SecIndex, Timestamp
from bab.status import reading_entry
from bab.units import Unit

MAX_PROFILE_FILE = 256 * 1024  # 96 periods of a handful of registers fit many times over


@dataclass
class ProfilePeriod:
    time: int | None  # UTC seconds of the period end (None: the meter sent a seconds index only)
    sec_index: int | None
    status: int
    values: dict[str, tuple[Decimal, str]] = field(default_factory=dict)  # OBIS -> (value, unit symbol)


@dataclass
class ProfileResult:
    server_id: bytes
    periods: list[ProfilePeriod] = field(default_factory=list)
    error: str | None = None
    attentions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.error is None and not self.attentions, "error": self.error, "attentions": self.attentions,
                "periods": [{"time": p.time, "sec_index": p.sec_index, "status": p.status,
                             "values": {o: {"value": str(v), "unit": u} for o, (v, u) in p.values.items()}}
                            for p in self.periods]}


def _period(res: GetProfileListRes) -> ProfilePeriod:
    t = res.val_time
    period = ProfilePeriod(t.value if isinstance(t, Timestamp) else None,
                           t.value if isinstance(t, SecIndex) else None, res.status)
    for e in res.period_list:
        value = getattr(e.value, "value", e.value)
        if not isinstance(value, int) or isinstance(value, bool) or len(e.obj_name) < 6:
            continue
        obis = Obis.from_bytes(e.obj_name[:6])
        if obis == Obis(1, 0, 94, 49, 0, 1):  # the seconds index of the capture
            period.sec_index = value
            continue
        try:
            unit = Unit(e.unit)
        except ValueError:
            period.values[str(obis)] = (Decimal(value).scaleb(e.scaler), f"unit {e.unit}")
            continue
        entry = reading_entry(Reading(obis, value, e.scaler, unit), 0.0)  # kWh for energy, as everywhere else
        period.values[str(obis)] = (Decimal(entry["value"]), entry["unit"])
    return period


class ProfileReader:
    """Client layer: GetProfileList of the meter's load profile; ``on_done(ProfileResult)`` at the end."""

    def __init__(self, server_id: bytes, on_done: Callable[[ProfileResult], None] | None = None) -> None:
        self.server_id = bytes(server_id)
        self.on_done = on_done
        self._periods: list[ProfilePeriod] = []
        self._decoder = SmlStreamDecoder(Quirk.DEFAULT, max_frame=MAX_PROFILE_FILE)
        req = GetProfileListReq(server_id=self.server_id, parameter_tree_path=[PROFILE_OBIS.to_bytes()])
        self.client = SmlClient(self.server_id, [req], on_done=self._finished)
        self.result: ProfileResult | None = None

    def data_to_send(self, max_size: int) -> bytes:
        return self.client.data_to_send(max_size)

    def data_received(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if type(event) is FileDecoded:
                self._periods = [_period(b) for b in event.file.bodies(GetProfileListRes)]
        self.client.data_received(data)

    def is_done(self) -> bool:
        return self.client.is_done()

    def connection_lost(self, reason: str | None) -> None:
        self.client.connection_lost(reason)

    def _finished(self, sml: SmlResult) -> None:
        self.result = ProfileResult(self.server_id, list(self._periods), sml.error,
                                    [str(a) for a in sml.attentions if not a.ok])
        if self.on_done is not None:
            self.on_done(self.result)
