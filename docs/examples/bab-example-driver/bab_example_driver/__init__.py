"""A minimal BAB driver plugin: reads a meter's 1.8.0 register (kWh) from a text file every few seconds.

Install with ``pip install ./docs/examples/bab-example-driver`` and configure a meter with::

    driver: {type: textfile, path: /run/meter.txt}
"""

from __future__ import annotations

import asyncio
import time

from bab.reading import Reading
from bab.schema import Float, Str
from legacy_drivers.api import Driver, Health, ReadingSink


class TextFileDriver(Driver):
    options_schema = {
        "path": Str(doc="file holding the 1.8.0 energy register in kWh"),
        "interval": Float(doc="seconds between reads", default=5.0, min=0.1),
    }

    async def run(self, sink: ReadingSink) -> None:
        sink.set_health(Health.STARTING)
        while True:
            try:
                with open(self.options["path"]) as f:
                    text = f.read().strip()
                sink.publish([Reading.from_text("1-0:1.8.0", text, "kWh", time=time.time())])
                sink.set_health(Health.OK)
            except FileNotFoundError:
                sink.set_health(Health.SOURCE_LOST, f"{self.options['path']} missing")
            except ValueError as exc:  # bad content: report it, never serve an invented value
                sink.set_health(Health.STALE, f"unreadable value: {exc}")
            await asyncio.sleep(self.options.get("interval", 5.0))
