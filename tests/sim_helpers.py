"""A lab on the virtual bus (virtual time): one real meter runtime (what ``bab run`` presents: station,
COSEM model, SML server, TLS, SYM, the lab meter's fault wrappers) and BAB's software gateway station, plus
a wire probe that times slot replies. Contains no tests itself."""

from __future__ import annotations

import random

from lmn_helpers import FAST_GATEWAY, gateway
from test_tls_hdlc_support import identity

from bab import config
from bab.hdlc import events as ev
from bab.hdlc.frame import BROADCAST_ADDRESS, GATEWAY_ADDRESS, BroadcastService, Frame, Kind
from bab.hdlc.primary import GatewayStation
from bab.hdlc.secondary import StationState, Transmission
from bab.hdlc.timing import wire_time
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation
from bab.meter import MeterRuntime
from bab.reading import Reading
from bab.sim.catalogue import parse_fault
from bab.sml.client import DEFAULT_OBJECTS, SmlClient
from bab.tls import GatewayTlsContext
from bab.tls.hdlc_layer import InlineExecutor, TlsClientLayer

METER = "1BAB0000000042"
MK = bytes.fromhex("00112233445566778899aabbccddeeff")


class WireProbe:
    """A listener on the bus: the slot each presence-check reply started in, and whether inside its window."""

    def __init__(self, slot_period: float = 0.010, reply_window: float = 0.005) -> None:
        self.slot_period, self.reply_window = slot_period, reply_window
        self.check_end: float | None = None
        self.replies: list[tuple[int, bool]] = []  # (slot the reply started in, inside the 5 ms window)

    def frame_received(self, frame: Frame, now: float) -> None:
        if frame.dst == BROADCAST_ADDRESS and frame.dst_selector == BroadcastService.ADDRESS_CHECK:
            self.check_end = now
        elif frame.dst == GATEWAY_ADDRESS and frame.kind is Kind.UI and frame.dst_selector == \
                BroadcastService.ADDRESS_CHECK and self.check_end is not None:
            start = now - wire_time(len(frame.encode()))
            offset = start - self.check_end
            slot = int(offset // self.slot_period)
            self.replies.append((slot, offset - slot * self.slot_period <= self.reply_window))

    def next_deadline(self) -> float | None:
        return None

    def transmissions_due(self, now: float) -> list[Transmission]:
        return []


class Lab:
    """One meter runtime and the software gateway's station on a virtual bus."""

    def __init__(self, tmp_path, *, meter_yaml: str = "", driver: str = "{type: simulated}", seed: int = 1,
                 **gw_kw) -> None:
        self.sim = Simulation(VirtualBus())
        cfg = config.loads(f"""lmn: {{port: x, random_seed: {seed}}}
state_dir: {tmp_path}
meters:
  - id: "{METER}"
    driver: {driver}
{meter_yaml}""")
        self.meter = MeterRuntime(cfg.meters[0], cfg.lmn, cfg.state_dir, clock=lambda: self.sim.now,
                                  rng=random.Random(seed), executor=InlineExecutor())
        self.meter.values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"),
                                   Reading.from_text("1-0:16.7.0", "7", "W")])
        self.gw_node, self.gw = gateway(gw_kw.pop("timing", FAST_GATEWAY), **gw_kw)
        self.probe = WireProbe()
        self.sim.add("gw", self.gw_node)
        self.sim.add("probe", LinkNode([self.probe]))
        self.bab_node = self.sim.add("bab", LinkNode([self.meter.endpoint]))
        self.events: list[object] = []

    @property
    def station(self):
        return self.meter.station

    @property
    def faults(self):
        return self.meter.faults

    def fault(self, kind: str, **params) -> None:
        self.faults.install(parse_fault(kind, params))

    def registered(self) -> bool:
        st = self.station
        return st.state is StationState.REGISTERED and st.address in self.gw.participants

    def register(self, timeout: float = 20.0) -> None:
        assert self.sim.run_for(timeout, self.registered), "meter did not register"

    def gw_events(self) -> list[object]:
        new = self.gw.next_events()
        self.events += new
        return new

    def converse(self, selector: int, layer, timeout: float = 60.0) -> object:
        gw: GatewayStation = self.gw
        gw.converse(self.station.address, selector, layer)
        found: list[object] = []

        def done() -> bool:
            for e in self.gw_events():
                if isinstance(e, ev.ConversationDone | ev.ExchangeFailed) and e.selector == selector:
                    found.append(e)
            return bool(found)

        assert self.sim.run_for(timeout, done), "conversation did not end"
        return found[0]

    def read(self, selector: int = 3, wrap=lambda inner: inner):
        client = SmlClient.read_objects(self.station.server_id, DEFAULT_OBJECTS[:1])
        result = self.converse(selector, wrap(client))
        return result, client.result


def tls_yaml(tmp_path) -> tuple[str, GatewayTlsContext]:
    """A meter with provisioned TLS files, and the gateway context that pins its certificate."""
    mk, mc = identity(METER)
    gk, gc = identity("SMGW")
    files = {}
    for name, data in (("meter.key", mk), ("meter.crt", mc), ("gw.crt", gc)):
        p = tmp_path / name
        p.write_bytes(data)
        p.chmod(0o600)
        files[name] = p
    yaml = (f"    tls: {{key_file: {files['meter.key']}, cert_file: {files['meter.crt']}, "
            f"gateway_cert_file: {files['gw.crt']}}}\n")
    return yaml, GatewayTlsContext(key_pem=gk, cert_pem=gc, peer_cert_pem=mc)


def tls_wrapper(ctx: GatewayTlsContext, out: list):
    def wrap(inner):
        layer = TlsClientLayer(ctx.new_connection(), inner)
        out.append(layer)
        return layer
    return wrap
