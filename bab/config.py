"""BAB's configuration: one YAML file, validated on load (errors name file, line and key).

The schema below is the single source of truth: :func:`load` validates with it and ``docs/configuration.md``
is generated from it (``python -m bab.config --reference``). Driver options are validated by the schema the
driver plugin declares (:attr:`legacy_drivers.api.Driver.options_schema`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bab.hdlc.timing import GatewayTiming, MeterTiming, SlotTiming
from bab.mapping import ReadingMap
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.schema import Bool, ConfigError, Custom, DictOf, Float, Int, ListOf, Map, Nullable, Str, Type, load_yaml
from bab.security import TLS, TlsOptions
from bab.sim.catalogue import FAULT
from bab.sym.profile2015 import Profile2015
from legacy_drivers.api import DriverNotFound, available_drivers


def _driver_options(type_name: str) -> dict[str, Type] | None:
    try:
        return dict(available_drivers()[type_name].options_schema)
    except KeyError:
        return None


def _meter_id(value: Any) -> MeterId:
    return MeterId.parse(str(value))


def _obis(value: Any) -> Obis:
    return Obis.parse(str(value))


def _factor(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        f = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"not a number: {value!r}") from None
    if not f.is_finite() or f <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return f


def _obis_sum(value: Any) -> tuple[Obis, ...]:
    return tuple(Obis.parse(part) for part in str(value).split("+"))


TIMING = Map(
    doc="HDLC slot grid and timeouts (defaults: the reference values of LMN-STACK.md 3.5)",
    default=dict,
    fields={
        "slot_period": Float(doc="seconds per broadcast time slot", default=0.010, min=0.001, max=1.0),
        "slot_count": Int(doc="slots a meter picks from when answering an address allocation", default=32,
                          min=1, max=63),
        "reply_offset": Float(doc="seconds from slot start to the reply's first byte", default=0.0005, min=0.0),
        "reply_window": Float(doc="seconds from slot start by which the reply must be complete", default=0.005,
                              min=0.0005),
        "turnaround": Float(doc="seconds before a unicast reply", default=0.0, min=0.0, max=0.5),
        "inactivity_timeout": Nullable(Float(min=1.0), doc="seconds without a gateway frame before the meter "
                                       "falls back to unregistered (null: never)", default=None),
    },
)

LMN = Map(
    doc="the wired LMN port towards the gateway",
    fields={
        "port": Str(doc="a device path or any pyserial URL (socket://host:port, rfc2217://, loop://)",
                    example="/dev/ttyAMA0"),
        "baudrate": Int(doc="line speed; the LMN uses 921600", default=921600, min=300),
        "rs485": Bool(doc="enable the kernel's RS-485 mode (TIOCSRS485) for a UART without auto-direction",
                      default=False),
        "timing": TIMING,
        "random_seed": Nullable(Int(), doc="seed of the address and slot choices, for reproducible test sessions "
                                "(null: random, as in the field)", default=None),
    },
)

DRIVER = Map(
    doc="the legacy meter behind this LMN meter; `type` names an installed driver plugin",
    fields={"type": Str(doc="simulated | d0 | edl | s0 | mbus | an installed plugin")},
    discriminator="type",
    variants=_driver_options,
    variant_hint=lambda: "installed drivers: " + ", ".join(sorted(available_drivers())),
)

SYM = Map(
    doc="the SYM pairing (selector 6) this meter speaks; profile 2015 as the reference gateway sends it",
    default=dict,
    fields={
        "emh_bug": Bool(doc="the 2015 EMH firmware variant (the reference gateway's EMHBUG=1): swapped key codes, "
                            "zero padding", default=False),
    },
)


def _check_meter(meter: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """The driver's own check of its options against the meter ID (e.g. the medium digit of an M-Bus meter)."""
    options = dict(meter["driver"])
    cls = available_drivers().get(options.get("type", ""))
    check = getattr(cls, "check", None)
    if check is None:
        return None
    problem = check(options, str(meter["id"]))
    if problem is None:
        return None
    key, message = problem
    return (("id",) if key == "id" else ("driver", key)), message


METER = Map(
    doc="one LMN participant presented to the gateway",
    check=_check_meter,
    fields={
        "id": Custom(convert=_meter_id, what="a DIN 43863-5 meter ID such as '1BAB0012345678'",
                     doc="DIN 43863-5 meter ID; the 10-byte SML server ID is derived from it"),
        "driver": DRIVER,
        "tls": TLS,
        "sym": SYM,
        "profile": Map(doc="the load profile served by GetProfileList (a persisted ring buffer)", default=dict,
                       fields={
                           "period": Int(doc="seconds between captures of the registers", default=900, min=60),
                           "depth": Int(doc="captures kept (672 = 7 days of 15 minutes)", default=672, min=1,
                                        max=100000),
                       }),
        "map": DictOf(key=Custom(convert=_obis, what="an OBIS code"),
                      value=Custom(convert=_obis_sum, what="an OBIS code or a sum 'A + B'"),
                      doc="LMN object <- legacy value(s); defaults: 1.8.0/2.8.0 from the tariff sum, 16.7.0 from "
                          "1.7.0 or the phase sum (bab/mapping.py)", default=dict),
        "factor": DictOf(key=Custom(convert=_obis, what="an OBIS code"),
                         value=Custom(convert=_factor, what="a positive number"),
                         doc="exact multiplier of a served value (e.g. the CT ratio of a transformer meter)",
                         default=dict),
        "serve": Nullable(ListOf(Custom(convert=_obis, what="an OBIS code")),
                          doc="the OBIS codes served (null: everything the driver delivers)", default=None),
        "faults": ListOf(FAULT, doc="faults the lab meter injects from the start, e.g. `[{kind: bad_fcs, "
                         "probability: 0.2}]` (docs/simulator.md)", default=list, unique="kind"),
    },
)

def _check_http(http: dict[str, Any]) -> tuple[tuple[str, ...], str] | None:
    from bab.web.security import ListenError, is_loopback, parse_listen

    if http["listen"] is None:
        return None
    try:
        host, _ = parse_listen(http["listen"])
    except ListenError as exc:
        return ("listen",), str(exc)
    if not is_loopback(host) and http["token_file"] is None:
        return ("token_file",), f"listening on {host} (not loopback) needs an access token file"
    return None


HTTP = Map(
    doc="the web console and HTTP API (docs/http-api.md); off unless `listen` is set; needs aiohttp (bab[http])",
    default=dict,
    check=_check_http,
    fields={
        "listen": Nullable(Str(), doc="HOST:PORT to serve on, e.g. 127.0.0.1:8080 (null: no web console)",
                           default=None),
        "token_file": Nullable(Str(), doc="file holding the access token (16+ characters); required unless "
                               "`listen` is a loopback address; then every API request needs it", default=None),
    },
)


SCHEMA = Map(
    fields={
        "lmn": LMN,
        "state_dir": Str(doc="persistent state (addresses, keys, counters)", default="/var/lib/bab"),
        "status_socket": Str(doc="unix socket of `bab status`", default="/run/bab/status.sock"),
        "log_level": Str(doc="logging threshold", default="info",
                         choices=("debug", "info", "warning", "error")),
        "meters": ListOf(METER, doc="the meters this BAB presents; each is its own LMN participant",
                         min_items=1, unique="id"),
        "http": HTTP,
    },
)


@dataclass(frozen=True)
class MeterConfig:
    id: MeterId
    driver_type: str
    driver_options: dict[str, Any]
    mapping: ReadingMap = field(default_factory=ReadingMap)
    tls: TlsOptions = field(default_factory=TlsOptions)
    profile_period: int = 900
    profile_depth: int = 672
    sym_emh_bug: bool = False
    faults: tuple[dict[str, Any], ...] = ()  # validated bab.sim.catalogue.FAULT mappings

    def sym_profile(self) -> Profile2015:
        """The SYM profile of this meter (``sym`` in the YAML)."""
        return Profile2015(emh_bug=self.sym_emh_bug)


@dataclass(frozen=True)
class LmnConfig:
    port: str
    baudrate: int = 921600
    rs485: bool = False
    timing: MeterTiming = field(default_factory=MeterTiming)
    random_seed: int | None = None

    def gateway_timing(self, **overrides: Any) -> GatewayTiming:
        """Gateway timing on the same slot grid (for the software gateway and the demo)."""
        return GatewayTiming(slots=self.timing.slots, **overrides)


@dataclass(frozen=True)
class HttpConfig:
    listen: str | None = None
    token_file: str | None = None


@dataclass(frozen=True)
class Config:
    lmn: LmnConfig
    meters: list[MeterConfig]
    state_dir: Path = Path("/var/lib/bab")
    status_socket: Path = Path("/run/bab/status.sock")
    log_level: str = "info"
    source: str = "<config>"
    http: HttpConfig = field(default_factory=HttpConfig)


def from_mapping(raw: dict[str, Any], source: str) -> Config:
    t = raw["lmn"]["timing"]
    timing = MeterTiming(
        slots=SlotTiming(t["slot_period"], t["slot_count"], t["reply_offset"], t["reply_window"]),
        turnaround=t["turnaround"], inactivity_timeout=t["inactivity_timeout"],
    )
    lmn = LmnConfig(raw["lmn"]["port"], raw["lmn"]["baudrate"], raw["lmn"]["rs485"], timing, raw["lmn"]["random_seed"])
    meters = []
    for m in raw["meters"]:
        opts = dict(m["driver"])
        serve = frozenset(m["serve"]) if m["serve"] is not None else None
        meters.append(MeterConfig(m["id"], opts.pop("type"), opts, ReadingMap(m["map"], serve, m["factor"]),
                                  TlsOptions.from_mapping(m["tls"]), m["profile"]["period"], m["profile"]["depth"],
                                  m["sym"]["emh_bug"], tuple(m["faults"])))
    http = HttpConfig(raw["http"]["listen"], raw["http"]["token_file"])
    return Config(lmn, meters, Path(raw["state_dir"]), Path(raw["status_socket"]), raw["log_level"], source, http)


def loads(text: str, source: str = "<config>") -> Config:
    """Validate YAML text; raises ConfigError."""
    return from_mapping(load_yaml(text, SCHEMA, source), source)


def load(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError (also for an unreadable file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", file=str(path)) from None
    return loads(text, str(path))


#: The embedded default of ``bab demo``: one simulated meter on an in-memory bus.
DEMO_CONFIG = """\
lmn:
  port: "virtual://demo"
  timing: {}
state_dir: /tmp/bab-demo
meters:
  - id: "1BAB0012345678"
    driver:
      type: simulated
      registers: {"1-0:1.8.0": 12345.678, "1-0:2.8.0": 0.0, "1-0:16.7.0": 432.1}
      advance: true
"""


def reference() -> str:
    """The configuration reference in Markdown, generated from :data:`SCHEMA` and the installed drivers."""
    lines = ["# Configuration reference", "",
             "Generated from the schema that validates the file (`python -m bab.config --reference`).", ""]

    def walk(t: Type, path: str, depth: int) -> None:
        if isinstance(t, Map):
            for key, ft in t.fields.items():
                p = f"{path}.{key}" if path else key
                lines.append(f"{'  ' * depth}- `{p}`: {ft.doc or ''} ({_default_text(ft)})")
                walk(ft, p, depth + 1)
        elif isinstance(t, ListOf):
            walk(t.item, path + "[]", depth)
        elif isinstance(t, Nullable):
            walk(t.inner, path, depth)

    walk(SCHEMA, "", 0)
    lines += ["", "## Driver options", ""]
    for name, cls in sorted(available_drivers().items()):
        lines.append(f"### `type: {name}`")
        lines.append("")
        for key, ft in cls.options_schema.items():
            lines.append(f"- `{key}`: {ft.doc} ({_default_text(ft)})")
        lines.append("")
    return "\n".join(lines)


def _default_text(t: Type) -> str:
    from bab.schema import REQUIRED

    if t.default is REQUIRED:
        return f"required; {t.expected()}"
    if isinstance(t, Map):
        return "optional"
    d = t.default_value()
    if isinstance(d, dict):
        d = "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
    elif d is None:
        d = "null"
    elif isinstance(d, bool):
        d = str(d).lower()
    else:
        d = repr(d)
    return f"{t.expected()}; default {d}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--reference"]:
        print(reference())
    else:
        print("usage: python -m bab.config --reference", file=sys.stderr)
        sys.exit(2)

__all__ = ["Config", "ConfigError", "DriverNotFound", "MeterConfig", "LmnConfig", "load", "loads", "DEMO_CONFIG"]
