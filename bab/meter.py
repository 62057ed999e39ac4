"""One presented meter at run time: its LMN station, its driver, its values and the services per selector.

The services are the upper layers of the HDLC connections (LMN-STACK.md section 1): selector 3 plain
SML/COSEM (while unpaired), selector 1 TLS + SML/COSEM, selector 6 SYM pairing. Each protocol layer registers
a factory here; a selector without a factory, or whose factory says no, is answered with DM.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from bab.config import LmnConfig, MeterConfig
from bab.cosem.base_meter import BaseMeterModel
from bab.hdlc import events as ev
from bab.hdlc.secondary import MeterStation
from bab.hdlc.upper import ServerLayer
from bab.persist import Writer, atomic_write, read_json
from bab.security import MeterSecurity
from bab.sim.catalogue import Fault
from bab.sim.faults import FaultSet
from bab.sim.hdlc import FaultyStation, faulty_layers
from bab.sim.sml import faulty_sml
from bab.sml.server import sml_service
from bab.tls.hdlc_layer import shared_executor
from bab.values import ValueStore
from legacy_drivers.api import Driver, DriverContext, driver_class

log = logging.getLogger("bab.meter")

ServiceFactory = Callable[[], ServerLayer | None]


class MeterRuntime:
    def __init__(self, config: MeterConfig, lmn: LmnConfig, state_dir: Path, *,
                 clock: Callable[[], float], rng: random.Random | None = None,
                 siblings: Callable[[], list[MeterStation]] | None = None,
                 executor: Executor | None = None, writer: Writer = atomic_write) -> None:
        self.config = config
        self.meter_id = str(config.id)
        self.server_id = config.id.server_id
        self.state_dir = state_dir / "meters" / self.meter_id
        self.values = ValueStore(self.meter_id, clock=clock)
        self.services: dict[int, ServiceFactory] = {}
        self.counters: dict[str, int] = {}  # error counters for `bab status` (driver, TLS, SYM failures)
        self._link_file = self.state_dir / "link.json"
        link_state = self._load_link_state()
        self._saved_address: int | None = link_state.get("address")
        # The lab meter's faults (bab.sim): wrappers at the layer boundaries, inactive until a fault is on.
        self.faults = FaultSet(self.meter_id, clock=clock,
                               rng=random.Random(f"{lmn.random_seed}:{self.meter_id}")
                               if lmn.random_seed is not None else random.Random(),
                               faults=[Fault.from_mapping(f) for f in config.faults])
        self.station = MeterStation(
            self.server_id, faulty_layers(self._layer_for, self.faults), lmn.timing, rng=rng,
            preferred_address=link_state.get("address"), siblings=siblings,
        )
        self.endpoint = FaultyStation(self.station, self.faults)  # what the link node drives
        self.driver: Driver = driver_class(config.driver_type)(
            config.driver_options, DriverContext(self.meter_id, str(self.state_dir / "driver")))
        # A driver may declare that its energy registers may go backwards (the simulated meter's `monotonic:
        # false`, for gateway tests); by default a decrease is flagged and the old value kept.
        self.values.monotonic = bool(getattr(self.driver, "monotonic", True))
        # The COSEM model of this meter and its SML server per connection.
        self.writer = writer  # the daemon passes a WriteBehind: no fsync on the event loop that times the slots
        self.sml = sml_service(BaseMeterModel.for_runtime(self, profile_period=config.profile_period,
                                                          profile_depth=config.profile_depth, writer=writer))
        # Security decides, at every SNRM, which selectors are served: plain SML/COSEM (3) while unpaired,
        # TLS + SML/COSEM (1) once a gateway certificate is known, SYM pairing (6) while a master key waits.
        self.security = MeterSecurity(self.state_dir, self.server_id, self.meter_id, config.tls,
                                      counters=self.counters, executor=executor or shared_executor(),
                                      sym_profile=config.sym_profile(), clock=clock)
        self.services.update(self.security.services(faulty_sml(self.sml, self.faults, self.server_id)))
        self.sml.model.crypto_reset_hook = self._crypto_reset

    def _crypto_reset(self) -> bool:
        """COSEM 1-0:94.49.0*7 = TRUE: only over the authenticated channel (an established TLS session)."""
        if not self.security.tls_up:
            log.warning("%s: crypto-reset refused outside TLS", self.meter_id,
                        extra={"meter_id": self.meter_id, "layer": "cosem"})
            return False
        self.security.crypto_reset()
        log.info("%s: crypto-reset: back to the initial key, pairing forgotten", self.meter_id,
                 extra={"meter_id": self.meter_id, "layer": "sym"})
        return True

    def _load_link_state(self) -> dict:
        try:
            state = read_json(self._link_file, default={})
        except ValueError as exc:
            log.error("%s: %s; starting without a remembered address", self.meter_id, exc)
            return {}
        addr = state.get("address") if isinstance(state, dict) else None
        return {"address": addr} if isinstance(addr, int) and 2 <= addr <= 0x7E else {}

    def _layer_for(self, selector: int) -> ServerLayer | None:
        factory = self.services.get(selector)
        return factory() if factory is not None else None

    def handle_events(self) -> None:
        """Log the station's state changes and persist the address when it changes."""
        for e in self.station.next_events():
            extra = {"meter_id": self.meter_id, "layer": "hdlc"}
            if isinstance(e, ev.Registered):
                log.info("%s: registered at LMN address %#04x", self.meter_id, e.address, extra=extra)
                self._save_address(e.address)
            elif isinstance(e, ev.Unregistered):
                log.info("%s: unregistered: %s", self.meter_id, e.reason, extra=extra)
            elif isinstance(e, ev.AddressChosen):
                log.debug("%s: offering address %#04x in slot %d", self.meter_id, e.address, e.slot, extra=extra)
                self._save_address(e.address)  # so that a restart before the confirmation offers it again
            elif isinstance(e, ev.Connected):
                log.debug("%s: connected on selector %d", self.meter_id, e.selector, extra=extra)
            elif isinstance(e, ev.Disconnected):
                log.debug("%s: selector %d closed: %s", self.meter_id, e.selector, e.reason, extra=extra)
            elif isinstance(e, ev.Refused):
                log.debug("%s: refused selector %d (DM)", self.meter_id, e.selector, extra=extra)
            elif isinstance(e, ev.SlotMissed):
                log.warning("%s: broadcast reply missed its slot by %.1f ms", self.meter_id, e.late_by * 1e3,
                            extra=extra)
            elif isinstance(e, ev.SlotLate):
                log.warning("%s: broadcast reply %.1f ms after its slot's reply window, sent in the guard time",
                            self.meter_id, e.late_by * 1e3, extra=extra)

    def _save_address(self, address: int) -> None:
        if address == self._saved_address:
            return
        self._saved_address = address
        try:
            self.writer(self._link_file, json.dumps({"address": address}).encode() + b"\n", 0o600)
        except OSError as exc:
            log.error("%s: cannot save LMN address to %s: %s", self.meter_id, self._link_file, exc)
