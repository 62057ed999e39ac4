"""Third-party drivers: found through the `bab.drivers` entry point, configured with one line of YAML."""

from __future__ import annotations

import asyncio
import shutil
import sys
from decimal import Decimal
from pathlib import Path

from bab import config
from legacy_drivers.api import DriverContext, Health, available_drivers

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "bab-example-driver"


def install_example(site: Path) -> None:
    """Install the example plugin as a distribution (package + dist-info with its entry point) on sys.path."""
    shutil.copytree(EXAMPLE / "bab_example_driver", site / "bab_example_driver")
    info = site / "bab_example_driver-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bab-example-driver\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text('[bab.drivers]\ntextfile = bab_example_driver:TextFileDriver\n')


class Sink:
    def __init__(self) -> None:
        self.readings, self.health = [], []

    def publish(self, readings) -> None:
        self.readings += readings

    def set_health(self, health, detail="") -> None:
        self.health.append(health)


def test_example_plugin_is_found_configured_and_reads(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    install_example(site)
    monkeypatch.syspath_prepend(str(site))
    assert "textfile" in available_drivers()
    meter_file = tmp_path / "meter.txt"
    meter_file.write_text("1234.5\n")
    cfg = config.loads(f"""lmn: {{port: x}}
meters:
  - id: "1BAB0000000001"
    driver: {{type: textfile, path: {meter_file}, interval: 0.1}}
""")
    m = cfg.meters[0]
    driver = available_drivers()[m.driver_type](m.driver_options, DriverContext("1BAB0000000001", str(tmp_path)))
    sink = Sink()

    async def run():
        task = asyncio.create_task(driver.run(sink))
        await asyncio.sleep(0.25)
        meter_file.unlink()
        await asyncio.sleep(0.25)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert sink.readings[0].decimal == Decimal("1234500")  # 1234.5 kWh in Wh, exact
    assert Health.OK in sink.health and sink.health[-1] is Health.SOURCE_LOST
    # Its options are validated like the built-in ones.
    try:
        config.loads("lmn: {port: x}\nmeters:\n  - id: \"1BAB0000000001\"\n    driver: {type: textfile, pth: x}\n",
                     "bab.yaml")
    except config.ConfigError as exc:
        assert "did you mean 'path'" in str(exc) and exc.line == 4
    else:
        raise AssertionError("typo accepted")
    sys.modules.pop("bab_example_driver", None)


def test_broken_plugin_does_not_break_discovery(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bab.drivers]\nbroken = no_such_module:Driver\n")
    monkeypatch.syspath_prepend(str(site))
    drivers = available_drivers()
    assert "broken" not in drivers and "simulated" in drivers
