"""Seconds index (monotonic across restarts and power cuts) and the persisted 15-minute profile ring buffer."""

from __future__ import annotations

import json

from bab.cosem import ProfileBuffer, SecondsIndex
from bab.obis import Obis
from bab.reading import Reading

E1 = Obis(1, 0, 1, 8, 0)


def test_seconds_index_counts_and_never_goes_back(tmp_path):
    s = SecondsIndex(tmp_path, now=50.0, persist_every=10)
    assert s.value(50.0) == 1
    assert s.value(60.9) == 11
    assert s.value(55.0) == 11  # the caller's clock jumped back: the index does not
    assert not s.resumed_unclean


def test_seconds_index_clean_restart_resumes_after_the_last_value(tmp_path):
    s = SecondsIndex(tmp_path, now=0.0, persist_every=10)
    last = s.value(123.0)
    s.shutdown(123.0)
    s2 = SecondsIndex(tmp_path, now=7.0, persist_every=10)  # new process, new monotonic clock
    assert s2.value(7.0) == last + 1
    assert not s2.resumed_unclean


def test_seconds_index_power_cut_takes_the_safety_step(tmp_path):
    s = SecondsIndex(tmp_path, now=0.0, persist_every=10)
    served = 0
    for t in range(0, 95):
        s.tick(float(t))
        served = s.value(float(t))
    # power cut at t=94: no shutdown; the last tick wrote at t=90 at the latest
    s2 = SecondsIndex(tmp_path, now=0.0, persist_every=10)
    assert s2.value(0.0) > served
    assert s2.resumed_unclean


def test_seconds_index_power_cut_just_before_the_next_write(tmp_path):
    """Worst case: the power fails just before a periodic write, so the files hold the older write (and a
    restart that itself is cut right after starting must not go back either)."""
    s = SecondsIndex(tmp_path, now=0.0, persist_every=10)
    s.tick(10.0)
    snapshot = {f.name: f.read_bytes() for f in tmp_path.glob("seconds_index.*.json")}
    served = s.value(19.99)  # the write due at t=20 never happens
    for name, raw in snapshot.items():
        assert (tmp_path / name).read_bytes() == raw
    s2 = SecondsIndex(tmp_path, now=0.0, persist_every=10)
    first = s2.value(0.0)
    assert first > served
    s3 = SecondsIndex(tmp_path, now=0.0, persist_every=10)  # cut again at once: persisted base still ahead
    assert s3.value(0.0) > first


def test_seconds_index_with_a_corrupt_file_uses_the_other(tmp_path):
    s = SecondsIndex(tmp_path, now=0.0, persist_every=5)
    for t in (5.0, 10.0, 15.0):
        s.tick(t)
    served = s.value(15.0)
    files = sorted(tmp_path.glob("seconds_index.*.json"), key=lambda f: json.loads(f.read_text())["index"])
    files[-1].write_text("{garbage")  # the newer file is damaged
    s2 = SecondsIndex(tmp_path, now=0.0, persist_every=5)
    assert s2.value(0.0) > served
    assert s2.resumed_unclean


def test_seconds_index_all_files_corrupt_starts_and_flags(tmp_path):
    (tmp_path / "seconds_index.a.json").write_text("[1,")
    s = SecondsIndex(tmp_path, now=0.0)
    assert s.value(0.0) >= 1 and s.resumed_unclean


def readings(v: str):
    return {E1: Reading.from_text(E1, v, "kWh"), Obis(1, 0, 2, 8, 0): None}


def test_profile_captures_once_per_period_and_persists(tmp_path):
    p = ProfileBuffer(tmp_path, period=900, depth=4)
    t0 = 1_700_000_100.0
    assert p.capture(t0, 10, readings("1")) is not None
    assert p.capture(t0 + 60, 70, readings("2")) is None  # same period
    e = p.capture(t0 + 900, 910, readings("3"))
    assert e is not None and e.time == int(t0 + 900) // 900 * 900
    assert [v.obis for v in e.values] == [E1]  # 2.8.0 had no value
    p2 = ProfileBuffer(tmp_path, period=900, depth=4)
    assert list(p2.entries) == list(p.entries)


def test_profile_is_bounded(tmp_path):
    p = ProfileBuffer(tmp_path, period=900, depth=3)
    for i in range(10):
        p.capture(1_700_000_000.0 + 900 * i, i, readings(str(i)))
    assert len(p.entries) == 3
    assert [e.values[0].value for e in p.entries] == [7, 8, 9]
    p2 = ProfileBuffer(tmp_path, period=900, depth=2)  # smaller depth after a config change
    assert [e.sec_index for e in p2.entries] == [8, 9]
    assert len(json.loads((tmp_path / "profile.json").read_text())["entries"]) == 3


def test_profile_select(tmp_path):
    p = ProfileBuffer(tmp_path, period=900, depth=10)
    for i in range(5):
        p.capture(900.0 * (i + 1), 100 + i, readings(str(i)))
    assert [e.time for e in p.select(1800, 3600)] == [1800, 2700, 3600]
    assert [e.sec_index for e in p.select(102, None, by_index=True)] == [102, 103, 104]
    assert len(p.select(limit=2)) == 2


def test_profile_corrupt_file_starts_empty(tmp_path):
    (tmp_path / "profile.json").write_text('{"period": 900, "entries": [{"t": "x"}]}')
    assert not ProfileBuffer(tmp_path).entries
    (tmp_path / "profile.json").write_text("{")
    assert not ProfileBuffer(tmp_path).entries
