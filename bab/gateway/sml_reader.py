"""The software gateway's default reader: reads a base meter's registers and identification over SML/COSEM.

``SmlReader(report)`` is a :data:`bab.gateway.app.Reader`: for each poll it returns a
``PollJob(selector=3, SmlClient)`` (plain SML_COSEM while unpaired, LMN-STACK.md 0 fact 6) that reads
1-0:1.8.0, 1-0:2.8.0, 1-0:16.7.0 (a gas, water or heat meter: its main register instead, by the medium digit
of its ID), the device ID, manufacturer and firmware version, and reports each value when the conversation
completes, e.g. ``1BAB0012345678 1-0:1.8.0*255 = 12345.678 kWh`` or ``7ACW0010020387 7-0:3.0.0*255 = 0.26 m³``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bab.cosem.objects import ObjectName
from bab.hdlc.primary import Participant
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.reading import Reading
from bab.sml.client import ObjectRequest, SmlClient, SmlResult, objects_for
from bab.sml.tl import Unsigned
from bab.units import Unit

from .app import PollJob, describe

SML_COSEM = 3
_DISPLAY = {Unit.WH: ("kWh", 3), Unit.W: ("W", 0), Unit.V: ("V", 0), Unit.A: ("A", 0), Unit.HZ: ("Hz", 0),
            Unit.VARH: ("kvarh", 3), Unit.VAR: ("var", 0), Unit.M3: ("m³", 0), Unit.M3_PER_H: ("m³/h", 0),
            Unit.J: ("GJ", 9), Unit.CELSIUS: ("°C", 0), Unit.K: ("K", 0)}


def format_reading(r: Reading) -> str:
    """``1-0:1.8.0*255 = 12345.678 kWh`` (energy in kWh, other units as they are)."""
    symbol, shift = _DISPLAY.get(r.unit, (r.unit.name, 0))
    value = r.decimal.scaleb(-shift)
    text = f"{value:f}"
    status = f" [{r.status!r}]" if r.status else ""
    return f"{r.obis} = {text} {symbol}{status}"


def format_octets(obis: Obis, raw: bytes) -> str:
    if len(raw) == 10 and raw[0] == 0x0A:
        try:
            return f"{obis} = {MeterId.from_server_id(raw)}"
        except (ValueError, UnicodeDecodeError):
            pass
    if raw and all(0x20 <= b < 0x7F for b in raw):
        return f"{obis} = {raw.decode('ascii')}"
    return f"{obis} = {raw.hex()}"


class SmlReader:
    """Reads every participant on each poll and reports what it read; ``results`` keeps the latest per meter."""

    def __init__(self, report: Callable[[str], None], *, objects: Sequence[ObjectRequest] | None = None,
                 selector: int = SML_COSEM, on_result: Callable[[SmlResult], None] | None = None,
                 full_list: bool = True) -> None:
        self.report = report
        self.full_list = full_list  # also read the meter's GetList, so every register it has is printed
        self.objects = tuple(objects) if objects is not None else None  # None: by the meter's medium
        self.selector = selector
        self.on_result = on_result
        self.results: dict[bytes, SmlResult] = {}
        self.completed = 0
        self._writes: dict[bytes, list[tuple[ObjectName, int, bool | bytes | Unsigned]]] = {}
        self.write_results: list[tuple[bytes, ObjectName, SmlResult]] = []

    def set_parameter(self, server_id: bytes, name: ObjectName, value: bool | bytes | Unsigned,
                      attribute: int = 2) -> None:
        """Queue a SetProcParameter (e.g. the crypto-reset 1-0:94.49.0*7 = TRUE): the next poll of that meter
        sends it instead of the read and reports the meter's attention answer."""
        self._writes.setdefault(bytes(server_id), []).append((name, attribute, value))

    def __call__(self, participant: Participant) -> PollJob | None:
        queued = self._writes.get(participant.server_id)
        if queued:
            name, attribute, value = queued.pop(0)
            return PollJob(self.selector, SmlClient.set_parameter(
                participant.server_id, name, value, attribute,
                on_done=lambda result: self._written(name, attribute, result)))
        objects = self.objects if self.objects is not None else objects_for(participant.server_id)
        return PollJob(self.selector, SmlClient.read_objects(participant.server_id, objects,
                                                             full_list=self.full_list, on_done=self._done))

    def _written(self, name: ObjectName, attribute: int, result: SmlResult) -> None:
        self.write_results.append((result.server_id, name, result))
        answer = result.error or ", ".join(str(a) for a in result.attentions) or "no answer"
        self.report(f"{describe(result.server_id)} set {name.obis} attribute {attribute}: {answer}")

    def _done(self, result: SmlResult) -> None:
        self.completed += 1
        self.results[result.server_id] = result
        who = describe(result.server_id)
        if result.error is not None:
            self.report(f"{who} SML read failed: {result.error}")
        for r in result.readings:
            self.report(f"{who} {format_reading(r)}")
        for obis, raw in result.identification.items():
            self.report(f"{who} {format_octets(obis, raw)}")
        for a in result.attentions:
            if not a.ok:
                self.report(f"{who} attention {a}")
        if self.on_result is not None:
            self.on_result(result)
