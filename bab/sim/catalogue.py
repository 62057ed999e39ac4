"""The fault catalogue: every fault kind the lab meter can inject, with its parameters.

A fault is switched on per meter with a *kind*, the kind's parameters, and two common settings:

* ``probability`` (0..1, default 1): the chance that one opportunity (a frame, a reply, an SML file, a TLS
  flight, a SYM answer, a poll while busy) is hit;
* ``count`` (default unlimited): how many times the fault is injected before it switches itself off.

The parameters are declared with :mod:`bab.schema` types, so a fault in the YAML configuration
(``meters[].faults``), in a scenario file or in a run-time command is validated by the same code and a bad one
is refused with the file, line and key (commands: the key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from bab.obis import Obis
from bab.schema import Bool, Custom, Float, Int, Map, Nullable, Str, Type, load_yaml
from bab.sml.attention import AttentionCode

#: The boundary each kind is injected at (a wrapper checks only its own layer's faults).
FRAMES = "frames"  # frames out of the HDLC station
LINK = "link"  # the upper layer the station gets for a selector (DM, RNR)
SML = "sml"  # SML files out of the SML server
TLS = "tls"  # TLS records out of the meter's TLS layer
SYM = "sym"  # SYM messages out of the SYM layer


def _attention_code(value: Any) -> bytes:
    """An attention number: a name (``MEASURING_POINT_UNREACHABLE``), ``FE07`` or all 12 hex digits."""
    text = str(value).strip().upper().replace(" ", "")
    if text in AttentionCode.__members__:
        return AttentionCode[text].to_bytes()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not an attention code: {value!r}") from None
    if len(raw) == 2:
        raw = b"\x81\x81\xc7\xc7" + raw
    if len(raw) != 6:
        raise ValueError(f"not an attention code: {value!r}")
    return raw


def _server_id(value: Any) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise ValueError(f"not a hex server ID: {value!r}") from None
    if not 1 <= len(raw) <= 14:
        raise ValueError("a server ID has 1 to 14 bytes")
    return raw


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: its name, the boundary it acts at, what it does and its parameters."""

    name: str
    layer: str
    doc: str
    params: Mapping[str, Type] = field(default_factory=dict)
    #: the gateway requirement this fault tests (for the lab guide and ``bab sim show``)
    tests: str = ""


_KINDS = (
    FaultKind("silent", FRAMES, "the meter sends nothing at all (the gateway's presence check drops it)",
              tests="a silent participant is dropped after its missed presence checks"),
    FaultKind("drop_replies", FRAMES, "each reply (slot or unicast) is not sent, with the probability",
              tests="reply timeout and retransmission of the last frame"),
    FaultKind("late_replies", FRAMES, "replies leave `ms` late: slot replies out of their window, unicast late",
              {"ms": Float(doc="delay in milliseconds", min=0.1, max=60000.0)},
              tests="slot window and unicast reply timeout"),
    FaultKind("wrong_slot", FRAMES, "presence-check and allocation replies leave `slots` slots after their own",
              {"slots": Int(doc="slots to shift by", default=1, min=1, max=62)},
              tests="the gateway checks the slot a reply arrives in"),
    FaultKind("bad_fcs", FRAMES, "the frame check sequence of sent frames is wrong",
              tests="frames with a bad FCS are dropped, counted and retried"),
    FaultKind("bad_hcs", FRAMES, "the header check sequence of sent frames with an information field is wrong",
              tests="frames with a bad HCS are dropped early, counted and retried"),
    FaultKind("address_collision", FRAMES, "an address-allocation reply offers an address the gateway's list holds",
              tests="an address conflict is detected and the meter is not registered under it"),
    FaultKind("dm", LINK, "a connection (SNRM) on `selector` (null: any) is refused with DM",
              {"selector": Nullable(Int(min=0, max=127), doc="protocol selector (null: every one)", default=None)},
              tests="DM handling: the gateway gives up that connection and keeps the meter"),
    FaultKind("rnr", LINK, "the meter is busy for `seconds` after the fault is switched on: polls get RNR",
              {"seconds": Float(doc="busy time in seconds", min=0.01, max=86400.0)},
              tests="RNR back-off and the conversation timeout"),
    FaultKind("sequence_error", FRAMES, "sent I frames carry a wrong N(S) (one ahead)",
              tests="an out-of-sequence I frame is discarded and recovered by retransmission"),
    FaultKind("attention", SML, "the answer for `object` is replaced by an SML attention with `code`",
              {"object": Custom(convert=lambda v: Obis.parse(str(v)), what="an OBIS code such as '1-0:1.8.0'",
                                doc="the object whose GetProcParameter answer is replaced"),
               "code": Custom(convert=_attention_code, what="an attention code (FE07, a name, or 12 hex digits)",
                              doc="attention number", default=lambda: AttentionCode.MEASURING_POINT_UNREACHABLE
                              .to_bytes())},
              tests="attention numbers are reported per object"),
    FaultKind("bad_sml_crc", SML, "the SML transport CRC of answer files is wrong",
              tests="an SML file with a bad checksum is rejected"),
    FaultKind("wrong_server_id", SML, "answers carry `server_id` (default: the meter's with the last byte inverted)",
              {"server_id": Nullable(Custom(convert=_server_id, what="a server ID in hex"),
                                     doc="the server ID to answer with", default=None)},
              tests="answers from another server ID are refused"),
    FaultKind("truncated_sml", SML, "answer files are cut after `fraction` of their bytes (the rest never comes)",
              {"fraction": Float(doc="share of the file that is sent", default=0.5, min=0.0, max=0.99)},
              tests="an incomplete SML file ends in a timeout, not in a value"),
    FaultKind("tls_abort", TLS, "the meter closes the connection (DM) instead of its first handshake flight",
              {"alert": Bool(doc="send a fatal handshake_failure alert before closing", default=False)},
              tests="a handshake aborted by the meter fails cleanly and is retried"),
    FaultKind("tls_wrong_cert", TLS, "the meter presents another certificate than the one the gateway pinned",
              {"cert_file": Nullable(Str(), doc="PEM certificate to present (null: a freshly generated one)",
                                     default=None)},
              tests="the pinned meter certificate is enforced: the handshake fails"),
    FaultKind("sym_bad_mac", SYM, "the MAC of the meter's SYM answers is wrong",
              tests="a SYM answer that fails its MAC check ends the pairing"),
)

KINDS: dict[str, FaultKind] = {k.name: k for k in _KINDS}

#: One fault as the YAML configuration, scenario files and commands write it.
FAULT = Map(
    doc="a fault injected by the lab meter (docs/simulator.md); the kind's parameters go beside `kind`",
    fields={
        "kind": Str(doc="the fault kind", choices=tuple(KINDS)),
        "probability": Float(doc="chance that one opportunity is hit", default=1.0, min=0.0, max=1.0),
        "count": Nullable(Int(min=1), doc="injections before the fault switches itself off (null: unlimited)",
                          default=None),
    },
    discriminator="kind",
    variants=lambda kind: dict(KINDS[kind].params) if kind in KINDS else None,
    variant_hint=lambda: "kinds: " + ", ".join(KINDS),
)


@dataclass
class Fault:
    """An active fault of one meter (see the module docstring for probability and count)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    probability: float = 1.0
    count: int | None = None  # injections left (None: unlimited)
    since: float = 0.0  # when it was switched on (the meter's clock)
    injected: int = 0

    @property
    def layer(self) -> str:
        return KINDS[self.kind].layer

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Fault:
        """From a validated :data:`FAULT` mapping."""
        params = {k: v for k, v in raw.items() if k not in ("kind", "probability", "count")}
        return cls(raw["kind"], params, raw["probability"], raw["count"])

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (``bab sim show``, ``bab status``)."""
        params = {k: (str(v) if isinstance(v, Obis) else v.hex() if isinstance(v, bytes) else v)
                  for k, v in self.params.items()}
        return {"kind": self.kind, "params": params, "probability": self.probability, "count": self.count,
                "injected": self.injected}


def parse_fault(kind: str, params: Mapping[str, Any], source: str = "<command>") -> Fault:
    """Validate a fault given as a kind and parameters (a command); raises :class:`bab.schema.ConfigError`."""
    doc = {"kind": kind, **params}
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
    return Fault.from_mapping(load_yaml(text, FAULT, source))


def reference() -> str:
    """The fault kinds as a Markdown table (``docs/simulator.md`` quotes it; a test keeps them equal)."""
    lines = ["| kind | boundary | what it does | parameters | tests the gateway's |", "|---|---|---|---|---|"]
    for k in _KINDS:
        params = ", ".join(f"`{n}`" for n in k.params) or "-"
        lines.append(f"| `{k.name}` | {k.layer} | {k.doc} | {params} | {k.tests} |")
    return "\n".join(lines)


__all__ = ["FAULT", "FRAMES", "KINDS", "LINK", "SML", "SYM", "TLS", "Fault", "FaultKind", "parse_fault", "reference"]
