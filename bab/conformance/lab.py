"""An in-process BAB meter for the suite: the real meter runtime (what ``bab run`` presents: station, COSEM
model, SML server, TLS, SYM and the lab meter's fault wrappers) on a virtual bus in virtual time, with the
tester's node on the same bus. Used by ``bab conformance --port sim:`` and by the tests that prove the suite."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bab import config
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation
from bab.meter import MeterRuntime
from bab.reading import Reading
from bab.sim.catalogue import parse_fault
from bab.tls.hdlc_layer import InlineExecutor

from .link import SimLink
from .tester import Tester

LAB_METER = "1BAB0000000042"
#: The published test master key of the conformance vectors (tests/vectors/conformance/sym/).
TEST_MASTER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
#: The lab meter's TLS session lifetime (``tls.session_lifetime``): short, so that the DURATION cases
#: (TLS_B2_FR_05, TLS_B2_FR_13) wait seconds, not the 744 h of the field.
LAB_SESSION_LIFETIME = 2
#: The cases BAB's meter fails on purpose, and why (docs/conformance.md, "Where BAB fails a case").
BAB_DEVIATIONS = {
    "TLS_B2_FR_02_T": "BAB refuses a ClientHello offering truncated_hmac with CBC suites only: the system wolfSSL "
                      "(5.5.4, Debian) would select it, with no switch to ignore it, and truncate the MACs, which "
                      "TR-03116-3 forbids",
}


class BabLab:
    """BAB as the meter under test (see the module docstring). ``faults``: YAML fault items as in
    ``meters[].faults``, on from the start; :meth:`fault` switches one on later (as SimControl does)."""

    def __init__(self, state_dir: Path, *, master_key: bytes | None = TEST_MASTER_KEY, seed: int = 1,
                 faults: list[dict[str, Any]] | None = None, meter_id: str = LAB_METER,
                 session_lifetime: int = LAB_SESSION_LIFETIME) -> None:
        self.sim = Simulation(VirtualBus())
        fault_yaml = ""
        if faults:
            import json

            fault_yaml = f"    faults: {json.dumps(faults)}\n"
        cfg = config.loads(f"""lmn: {{port: x, random_seed: {seed}}}
state_dir: {state_dir}
meters:
  - id: "{meter_id}"
    driver: {{type: simulated}}
    tls: {{session_lifetime: {session_lifetime}}}
{fault_yaml}""")
        self.meter = MeterRuntime(cfg.meters[0], cfg.lmn, cfg.state_dir, clock=lambda: self.sim.now,
                                  rng=random.Random(seed), executor=InlineExecutor())
        self.meter.values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"),
                                   Reading.from_text("1-0:2.8.0", "0.5", "kWh"),
                                   Reading.from_text("1-0:16.7.0", "7", "W")])
        if master_key is not None:
            self.meter.security.store.set_master_key(master_key)
        self.bab_node = self.sim.add("bab", LinkNode([self.meter.endpoint]))

    @property
    def server_id(self) -> bytes:
        return self.meter.server_id

    def fault(self, kind: str, **params: Any) -> None:
        self.meter.faults.install(parse_fault(kind, params))

    def clear(self, kind: str | None = None) -> None:
        self.meter.faults.clear(kind)

    def tester(self, **kw: Any) -> Tester:
        t = Tester(**kw)
        t.attach(SimLink(self.sim, t.node))
        return t
