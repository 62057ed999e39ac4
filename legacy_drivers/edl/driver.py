"""The EDL driver: a meter pushing SML files on its optical INFO interface (LMN-STACK.md 9.1).

The protocol is :class:`bab.sml.SmlStreamDecoder` in streaming mode (it resynchronises on the transport escape
sequence after garbage or a broken file); the transport is any port (9600 8N1 by default). Quirks are the codec's
named workarounds (:class:`bab.sml.Quirk`): with ``quirks: edl`` (the default) the Holley CRC-16/Kermit and the
DZG int16 power bug are detected automatically where that is safe (see :mod:`bab.sml.quirks`); ``strict``
turns every workaround off. A meter without its PIN entered sends a reduced data set (energy in whole kWh, no
power): that is detected and reported as health "reduced data set", with the values still served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import serial

from bab.reading import Reading
from bab.schema import Float, Int, Str
from bab.sml import BytesDiscarded, FileDecoded, FileRejected, Quirk, SmlStreamDecoder
from bab.sml.readings import readings_from_file
from bab.transport import StreamTransport
from bab.units import Unit

from ..api import ReadingSink
from ..serial_driver import SERIAL_OPTIONS, SerialDriver

log = logging.getLogger(__name__)

QUIRK_PRESETS = {"edl": Quirk.EDL, "default": Quirk.DEFAULT, "strict": Quirk.STRICT}
FRAMINGS = {"8N1": (serial.EIGHTBITS, serial.PARITY_NONE), "7E1": (serial.SEVENBITS, serial.PARITY_EVEN)}


def reduced_data_set(readings: Sequence[Reading]) -> str | None:
    """Why ``readings`` look like the reduced data set of a meter without PIN, or None.

    Without the PIN, mME/EDL meters send energy in whole kWh (scaler >= 3 on Wh) and no power.
    """
    coarse = [r for r in readings if r.obis.d == 8 and r.unit == Unit.WH and r.scaler >= 3]
    if not coarse:
        return None
    has_power = any(r.obis.d == 7 and r.obis.c in (1, 16) for r in readings)
    return "reduced data set without PIN: energy in whole kWh" + ("" if has_power else ", no power")


class EdlDriver(SerialDriver):
    """SML push meter on an optical head."""

    name = "EDL"
    options_schema = {
        **SERIAL_OPTIONS,
        "baudrate": Int(doc="line speed of the INFO interface", default=9600, min=300, max=115200),
        "framing": Str(doc="character framing", choices=tuple(FRAMINGS), default="8N1"),
        "quirks": Str(doc="SML workarounds: edl (Holley CRC, DZG power bug), default, strict",
                      choices=tuple(QUIRK_PRESETS), default="edl"),
        "push_timeout": Float(doc="seconds without a complete SML file that count as a missed readout",
                              default=10.0, min=0.5),
        "max_file_bytes": Int(doc="largest SML file accepted; longer ones are dropped", default=16384,
                              min=256),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quirks = QUIRK_PRESETS[self.opt["quirks"]]
        self.decoder = SmlStreamDecoder(self.quirks, max_frame=self.opt["max_file_bytes"])

    def _make_transport(self, port: str, baudrate: int) -> Any:
        bytesize, parity = FRAMINGS[self.opt["framing"]]
        return StreamTransport(port, baudrate, bytesize=bytesize, parity=parity)

    def _initial_baudrate(self) -> int:
        return int(self.opt["baudrate"])

    def _on_open(self) -> None:
        self.decoder = SmlStreamDecoder(self.quirks, max_frame=self.opt["max_file_bytes"])

    def handle(self, data: bytes, sink: ReadingSink) -> int:
        """Feed received bytes; publishes the readings of every complete file. Returns the files decoded."""
        files = 0
        for ev in self.decoder.feed(data):
            if isinstance(ev, FileDecoded):
                readings = readings_from_file(ev.file, quirks=self.quirks, time=time.time())
                self.stats["files"] += 1
                if not readings:
                    self.stats["files_without_values"] += 1
                    continue
                files += 1
                self._publish(sink, readings, reduced=reduced_data_set(readings))
            elif isinstance(ev, FileRejected):
                self.stats["files_rejected"] += 1
                log.debug("EDL %s: SML file rejected: %s", self.context.meter_id, ev.error)
            elif isinstance(ev, BytesDiscarded):
                self.stats["bytes_discarded"] += ev.count
        return files

    async def _serve(self, transport: Any, sink: ReadingSink) -> None:
        last = time.monotonic()
        while True:
            timeout = max(0.0, last + self.opt["push_timeout"] - time.monotonic())
            try:
                async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel (3.11)
                    data = await transport.read()
            except TimeoutError:
                self._missed_readout(sink, "timeout", f"no SML file for {self.opt['push_timeout']:g} s")
                last = time.monotonic()
                continue
            if self.handle(data, sink):
                last = time.monotonic()
