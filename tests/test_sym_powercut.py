"""Power cut at every step of a SYM pairing (LMN-STACK.md §5): the stored state is always either fully
paired or fully unpaired, and a real SIGKILL loop against the atomic state write."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sym_support import METER_ID, MK, gw_cert, meter_creds, own_cert, paired_ok

from bab.sym import (
    PairingFailed,
    PairingState,
    PersistentSymMeter,
    SaveState,
    SymGateway,
    SymMeter,
    SymStore,
)

REPO = Path(__file__).resolve().parents[1]


def _check_all_or_nothing(state: PairingState, route_a: bool) -> None:
    if state.paired:
        assert state.peer_certificate == gw_cert()
        if route_a:
            creds = meter_creds()
            assert (state.own_certificate, state.own_private_key) == (creds.certificate, creds.private_key)
        else:
            assert state.own_certificate is None and state.own_private_key is None
    else:
        assert state == PairingState(MK, counter=state.counter)


def _pair_until_cut(store: SymStore, cut_at: int, route_a: bool) -> bool:
    """Run a pairing the way PersistentSymMeter does, but abandon everything at cut point ``cut_at``.

    Cut points: before each save (2*i) and after each save but before the answer goes out (2*i+1).
    Returns True when the pairing ran to the end without reaching the cut point.
    """
    meter = SymMeter(store.require(), METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds() if route_a else None)
    gw.start()
    point = 0
    while (req := gw.data_to_send()):
        meter.receive(req)
        while (ev := meter.next_event()) is not None:
            if isinstance(ev, SaveState):
                if point == cut_at:
                    return False  # power cut before the write
                point += 1
                store.save(ev.state)
                if point == cut_at:
                    return False  # power cut after the write, answer never sent
                point += 1
                meter.state_saved()
        gw.receive(meter.data_to_send())
    paired_ok(gw.events())
    return True


@pytest.mark.parametrize("route_a", [True, False], ids=["route-a", "route-b"])
def test_power_cut_at_every_step(tmp_path: Path, route_a: bool) -> None:
    cut = 0
    outcomes = []
    while True:
        store = SymStore(tmp_path / f"cut{cut}.json")
        store.set_master_key(MK)
        finished = _pair_until_cut(store, cut, route_a)
        state = SymStore(store.path).require()  # "reboot": reload from disk
        _check_all_or_nothing(state, route_a)
        outcomes.append(state.paired)
        if finished:
            break
        # after the reboot: an unpaired meter can be paired from scratch, a paired one refuses
        link = PersistentSymMeter(SymStore(store.path), METER_ID, own_certificate=own_cert())
        gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds() if route_a else None)
        gw.start()
        while (req := gw.data_to_send()):
            gw.receive(link.handle(req))
        if state.paired:
            assert gw.events() == [PairingFailed("refused_by_meter")]
            assert link.meter.stats["already_paired"] == 1
        else:
            paired_ok(gw.events())
        _check_all_or_nothing(SymStore(store.path).require(), route_a)
        cut += 1
    # 4 state writes (SYNC writes nothing) x 2 cut points; only the cut right after the COMMIT write (and
    # the uncut run) leave the meter paired
    assert cut == 8
    assert outcomes == [False] * 7 + [True, True]


_CHILD = r"""
import json, sys
from bab.sym import PairingState, SymStore
from test_sym_support import MK
m = {k: bytes.fromhex(v) for k, v in json.load(open(sys.argv[2])).items()}
store = SymStore(sys.argv[1])
i = 0
while True:
    i += 1
    if i % 2:
        st = PairingState(MK, counter=i)
    else:
        st = PairingState(MK, counter=i, paired=True, peer_certificate=m["gw"] * 4,
                          own_certificate=m["cert"], own_private_key=m["key"])
    store.save(st)
    if i == 1:
        print("ready", flush=True)
"""


def test_sigkill_while_writing_state(tmp_path: Path) -> None:
    path = tmp_path / "sym.json"
    material = tmp_path / "material.json"
    creds = meter_creds()
    material.write_text(json.dumps(
        {"gw": gw_cert().hex(), "cert": creds.certificate.hex(), "key": creds.private_key.hex()}
    ))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    rnd = random.Random(4711)
    seen = set()
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(material)], stdout=subprocess.PIPE, env=env, cwd=tmp_path
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(rnd.uniform(0, 0.03))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        state = SymStore(path).require()  # parses and passes all invariants
        if state.paired:
            assert state.peer_certificate == gw_cert() * 4
            assert state.own_private_key == meter_creds().private_key
        else:
            assert state == PairingState(MK, counter=state.counter)
        assert path.stat().st_mode & 0o777 == 0o600
        seen.add(state.paired)
    print("states seen after SIGKILL:", seen)
    assert seen  # at least one observation; usually both states are seen
