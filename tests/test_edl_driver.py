"""The EDL driver: every real capture replayed through a pty at 9600 baud line speed (all in parallel)."""

from __future__ import annotations

import asyncio
import os
import tty
from pathlib import Path

import pytest

from bab.sml import FileDecoded, Quirk, SmlStreamDecoder
from bab.sml.readings import readings_from_file
from legacy_drivers.api import DriverContext, Health
from legacy_drivers.edl import EdlDriver, reduced_data_set


class Recorder:
    def __init__(self) -> None:
        self.published: list[list] = []
        self.health: list[tuple[Health, str]] = []

    def publish(self, readings) -> None:
        self.published.append(list(readings))

    def set_health(self, health, detail="") -> None:
        self.health.append((health, detail))


def direct(data: bytes) -> list[list]:
    """What the codec decodes from the whole capture in one go (the reference for the line replay)."""
    d = SmlStreamDecoder(Quirk.EDL)
    files = [e.file for e in d.feed(data) + d.finish() if isinstance(e, FileDecoded)]
    return [rs for rs in (readings_from_file(f, quirks=Quirk.EDL) for f in files) if rs]


async def replay(path: Path, baud: int = 9600, chunk: int = 24) -> tuple[Recorder, EdlDriver]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    driver = EdlDriver({"port": os.ttyname(slave), "push_timeout": 30.0}, DriverContext(path.stem, "/tmp"))
    rec = Recorder()
    task = asyncio.create_task(driver.run(rec))
    loop = asyncio.get_running_loop()
    data = path.read_bytes()
    await asyncio.sleep(0.2)  # the driver opens the port
    t0 = loop.time()
    for i in range(0, len(data), chunk):
        os.write(master, data[i : i + chunk])
        # pace at line speed: 10 bits per byte
        await asyncio.sleep(max(0.0, t0 + (i + chunk) * 10 / baud - loop.time()))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    os.close(master)
    os.close(slave)
    return rec, driver


async def test_every_capture_replayed_at_line_speed(shared_vectors):
    paths = sorted((shared_vectors / "sml-push").glob("*.bin"))
    assert len(paths) >= 29
    results = await asyncio.gather(*(replay(p) for p in paths))
    for path, (rec, _driver) in zip(paths, results, strict=True):
        expected = direct(path.read_bytes())
        assert [[(x.obis, x.value, x.scaler, x.unit) for x in rs] for rs in rec.published] == \
            [[(x.obis, x.value, x.scaler, x.unit) for x in rs] for rs in expected], path.name
        states = [h for h, _ in rec.health]
        if not expected:
            assert Health.OK not in states and Health.REDUCED not in states, path.name
        elif reduced_data_set(expected[-1]):
            assert states[-1] is Health.REDUCED and "without PIN" in rec.health[-1][1], path.name
        else:
            assert states[-1] in (Health.OK, Health.REDUCED), (path.name, rec.health)
    by_name = {p.name: r for p, (r, _) in zip(paths, results, strict=True)}
    mme = {str(x.obis): x for x in by_name["EMH_mME40-AE6AKF0K0.bin"].published[-1]}
    assert (mme["1-0:1.8.0*255"].value, mme["1-0:1.8.0*255"].scaler) == (4289043, -1)
    jmberg = {str(x.obis): x for x in by_name["DZG_DVS-7412.2_jmberg.bin"].published[-1]}
    assert jmberg["1-0:16.7.0*255"].value == 35624  # 356.24 W, the DZG int16 bug repaired (FILES.txt)
    holley = by_name["HOLLEY_DTZ541-BDBA_without_PIN.bin"]
    assert holley.health[-1][0] is Health.REDUCED


async def test_garbage_and_silence_make_the_source_stale(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    driver = EdlDriver({"port": os.ttyname(slave), "push_timeout": 0.5, "stale_after": 2},
                       DriverContext("m", str(tmp_path)))
    rec = Recorder()
    task = asyncio.create_task(driver.run(rec))
    await asyncio.sleep(0.2)
    os.write(master, os.urandom(3000))  # line noise, never a valid file
    await asyncio.sleep(1.6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    os.close(master)
    os.close(slave)
    assert rec.published == []
    assert rec.health[-1][0] is Health.STALE
    assert driver.decoder.buffered <= 16384 + 8  # garbage is not hoarded


@pytest.mark.parametrize("name", ["EMH_mME40-AE6AKF0K0.bin"])
def test_handle_counts_files_and_is_chunking_independent(shared_vectors, name):
    data = (shared_vectors / "sml-push" / name).read_bytes()
    one, many = Recorder(), Recorder()
    a = EdlDriver({"port": "loop://"}, DriverContext("a", "/tmp"))
    b = EdlDriver({"port": "loop://"}, DriverContext("b", "/tmp"))
    a.handle(data, one)
    for i in range(len(data)):
        b.handle(data[i : i + 1], many)
    assert one.published == many.published and len(one.published) == 12
