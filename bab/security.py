"""The security state of one presented meter, and which HDLC selectors it serves (LMN-STACK.md 1, 4, 5).

:class:`MeterSecurity` owns, per meter, everything that decides how the gateway may talk to it:

* the meter's own TLS identity (key + self-signed certificate): from the YAML ``tls.key_file``/``cert_file``
  (provisioned elsewhere), else the key injected by a SYM pairing (route a), else a key generated on first use
  into ``<meter state dir>/tls/key.pem`` (0600, atomic) + ``cert.pem`` on the configured curve;
* the gateway certificate it pins: the one received by SYM pairing (paired meter) wins; else the YAML
  ``tls.gateway_cert_file``; else one imported with ``bab keys import-gateway`` (``tls/gateway.pem``);
* the SYM state (master key MK, paired flag, counter) in ``<meter state dir>/sym/<server-id>.json``.

Services (evaluated at every SNRM, so pairing and crypto-reset take effect at the next connection):

* selector 3 (plain SML/COSEM): only while not paired and no gateway certificate is known. Once TLS is
  required it is refused with DM (LMN-STACK.md 0.18: "after pairing the meter only accepts parameter access
  over TLS");
* selector 1 (TLS + SML/COSEM): when a gateway certificate is known;
* selector 6 (SYM pairing): when a master key is provisioned and the meter is not paired (re-pairing while
  paired is refused until a crypto-reset).

Certificate dates: :class:`~bab.tls.policy.ValidityPolicy`, default ``ignore`` (BAB's choice: the meter may
have no trustworthy clock, and the peer is authenticated by the exact-DER pin, not by dates). ``system-clock``
for a device with NTP; ``given-time`` with a ``time_source`` (e.g. the time the gateway last set over SML).

Counters are kept in the dict passed as ``counters`` (``MeterRuntime.counters``): ``tls_failures``,
``sym_failures``, ``tls_sessions``, ``pairings``, ``crypto_resets``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from bab.hdlc.frame import Selector
from bab.hdlc.upper import ServerLayer
from bab.persist import atomic_write
from bab.schema import Int, Map, Nullable, Str
from bab.sym.events import PairingCompleted
from bab.sym.hdlc_layer import SymServerLayer
from bab.sym.link import PersistentSymMeter
from bab.sym.master_key import set_master_key
from bab.sym.profile import SymProfile
from bab.sym.profile2015 import Profile2015
from bab.sym.state import PairingState
from bab.sym.store import SymStore, sym_state_path
from bab.tls import keys
from bab.tls.errors import TlsError
from bab.tls.keys import Curve
from bab.tls.policy import SESSION_LIFETIME_S, ValidityPolicy

log = logging.getLogger("bab.security")

ServiceFactory = Callable[[], ServerLayer | None]
InnerFactory = Callable[[], ServerLayer | None]

#: The ``tls`` section of one meter in the YAML configuration (add to ``bab.config.METER`` as ``"tls": TLS``).
TLS = Map(
    doc="TLS material of this meter (optional; without it BAB generates its own key and learns the gateway "
        "certificate by SYM pairing or `bab keys import-gateway`)",
    default=dict,
    fields={
        "key_file": Nullable(Str(), doc="PEM private key of this meter (mode 0600), provisioned elsewhere",
                             default=None),
        "cert_file": Nullable(Str(), doc="PEM certificate belonging to key_file", default=None),
        "gateway_cert_file": Nullable(Str(), doc="PEM certificate of the gateway to pin (TLS is then required)",
                                      default=None),
        "curve": Str(doc="curve of a key BAB generates itself", default=Curve.BRAINPOOL_P256R1.value,
                     choices=tuple(c.value for c in Curve)),
        "validity": Str(doc="how the pinned gateway certificate's dates are checked: ignore (the meter has no "
                        "trusted clock; the pin authenticates), system-clock, given-time",
                        default=ValidityPolicy.IGNORE.value, choices=tuple(v.value for v in ValidityPolicy)),
        "session_lifetime": Int(doc="TLS session lifetime in seconds (TR-03116-3 LMN: 744 h): a session older "
                                "than this is not resumed, and a connection older than this is closed",
                                default=SESSION_LIFETIME_S, min=1),
    },
)


@dataclass(frozen=True)
class TlsOptions:
    """The validated ``tls`` section of one meter."""

    key_file: Path | None = None
    cert_file: Path | None = None
    gateway_cert_file: Path | None = None
    curve: Curve = Curve.BRAINPOOL_P256R1
    validity: ValidityPolicy = ValidityPolicy.IGNORE
    session_lifetime: int = SESSION_LIFETIME_S

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> TlsOptions:
        raw = raw or {}

        def path(key: str) -> Path | None:
            v = raw.get(key)
            return Path(v) if v else None

        return cls(path("key_file"), path("cert_file"), path("gateway_cert_file"),
                   Curve.parse(raw.get("curve") or Curve.BRAINPOOL_P256R1.value),
                   ValidityPolicy(raw.get("validity") or ValidityPolicy.IGNORE.value),
                   int(raw.get("session_lifetime") or SESSION_LIFETIME_S))


class SecurityError(ValueError):
    """Security material that makes BAB refuse to start or refuse an operation (message says why)."""


def meter_state_dir(state_dir: str | os.PathLike[str], meter_id: str) -> Path:
    """A meter's state directory, as :class:`bab.meter.MeterRuntime` uses it."""
    return Path(state_dir) / "meters" / meter_id


def _unsafe_mode(path: Path) -> str | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return (f"{path} holds secret key material but is accessible by group/others (mode {mode:04o}); "
                f"fix it with: chmod 600 {path}")
    return None


class MeterSecurity:
    """Security state and services of one meter (see the module docstring)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        server_id: bytes,
        meter_id: str,
        tls: TlsOptions | None = None,
        *,
        counters: dict[str, int] | None = None,
        executor: Executor | None = None,
        time_source: Callable[[], dt.datetime] | None = None,
        clock: Callable[[], float] | None = None,
        on_change: Callable[[], None] | None = None,
        sym_profile: SymProfile | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.sym_profile = sym_profile if sym_profile is not None else Profile2015()
        self.server_id = bytes(server_id)
        self.meter_id = meter_id
        self.options = tls or TlsOptions()
        if (self.options.key_file is None) != (self.options.cert_file is None):
            raise SecurityError(f"{meter_id}: tls.key_file and tls.cert_file must be given together")
        if self.options.validity is ValidityPolicy.GIVEN_TIME and time_source is None:
            raise SecurityError(f"{meter_id}: tls.validity 'given-time' needs a time source (none is wired)")
        self.counters = counters if counters is not None else {}
        self.executor = executor
        self.time_source = time_source
        self.clock = clock  # the runtime's monotonic clock (virtual in simulations): a TLS connection's age
        self.on_change = on_change
        self.tls_dir = self.state_dir / "tls"
        self.key_path = self.tls_dir / "key.pem"
        self.cert_path = self.tls_dir / "cert.pem"
        self.gateway_cert_path = self.tls_dir / "gateway.pem"
        self.store = SymStore(sym_state_path(self.state_dir, self.server_id))
        self.tls_up = False
        self._state_cache: tuple[tuple[int, int, int] | None, PairingState | None] | None = None
        self._tls_ctx: Any = None
        self._tls_ctx_key: tuple[bytes, bytes, ValidityPolicy] | None = None
        self._sessions: set[bytes] = set()  # TLS session IDs established since the last security change

    # --- state --------------------------------------------------------------------------------------------

    def pairing_state(self) -> PairingState | None:
        """The SYM state (None: no MK provisioned). Re-read when the file changed (e.g. by `bab keys`)."""
        try:
            st = self.store.path.stat()
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if self._state_cache is None or self._state_cache[0] != key:
            state = self.store.load() if key is not None else None
            self._state_cache = (key, state)
        return self._state_cache[1]

    @property
    def paired(self) -> bool:
        state = self.pairing_state()
        return bool(state and state.paired)

    @property
    def master_key_provisioned(self) -> bool:
        return self.pairing_state() is not None

    def gateway_certificate(self) -> tuple[bytes, str] | None:
        """``(DER, source)`` of the pinned gateway certificate, or None (then TLS is not possible)."""
        state = self.pairing_state()
        if state is not None and state.paired and state.peer_certificate:
            return state.peer_certificate, "sym-pairing"
        if self.options.gateway_cert_file is not None:
            return keys.certificate_der(keys.load_certificate_file(self.options.gateway_cert_file)), "config"
        if self.gateway_cert_path.exists():
            return keys.certificate_der(keys.load_certificate_file(self.gateway_cert_path)), "imported"
        return None

    def tls_required(self) -> bool:
        return self.paired or self.gateway_certificate() is not None

    def own_identity(self, *, create: bool = True) -> tuple[bytes, bytes, str] | None:
        """``(key PEM/DER, cert PEM/DER, source)`` of the meter's TLS identity; generated on first use."""
        state = self.pairing_state()
        if state is not None and state.paired and state.own_certificate and state.own_private_key:
            return state.own_private_key, state.own_certificate, "sym-injected"
        if self.options.key_file is not None and self.options.cert_file is not None:
            key = keys.load_private_key_file(self.options.key_file)
            cert = keys.load_certificate_file(self.options.cert_file)
            keys.check_key_matches_certificate(key, cert)
            return key, cert, "config"
        if self.key_path.exists() and self.cert_path.exists():
            return keys.load_private_key_file(self.key_path), keys.load_certificate_file(self.cert_path), "generated"
        if not create:
            return None
        key, cert = self.generate_identity()
        return key, cert, "generated"

    def generate_identity(self, curve: Curve | str | None = None, *, force: bool = False) -> tuple[bytes, bytes]:
        """Generate the meter's own key + self-signed certificate (CN = meter ID) into the state dir.

        Refused while paired (the gateway pinned the current certificate: crypto-reset first) and, without
        ``force``, when one exists. The certificate is written first and the key last, both atomically; a
        crash in between leaves a mismatching pair that the next generation (or ``force``) replaces.
        """
        if self.paired:
            raise SecurityError(f"{self.meter_id}: paired; the gateway pinned the current certificate "
                                "(crypto-reset before generating a new key)")
        if not force and self.key_path.exists():
            raise SecurityError(f"{self.meter_id}: {self.key_path} exists (use --force to replace it)")
        curve = Curve.parse(curve) if isinstance(curve, str) else (curve or self.options.curve)
        key, cert = keys.generate_identity(self.meter_id, curve)
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.tls_dir, 0o700)
        keys.save_certificate(self.cert_path, cert)
        keys.save_private_key(self.key_path, key)
        log.info("%s: generated TLS key on %s, certificate %s", self.meter_id, curve.value,
                 keys.fingerprint_sha256(cert), extra={"meter_id": self.meter_id, "layer": "tls"})
        self.drop_tls_context()
        return key, cert

    def import_gateway_certificate(self, cert: bytes) -> str:
        """Pin a gateway certificate provisioned out of band (``bab keys import-gateway``); returns its
        fingerprint. Refused while paired (the paired gateway's certificate is pinned)."""
        if self.paired:
            raise SecurityError(f"{self.meter_id}: paired with a gateway; crypto-reset before importing another "
                                "gateway certificate")
        info = keys.describe_certificate(cert)  # checks: ECDSA on an LMN curve
        pem = keys.load_certificate(cert).public_bytes(serialization.Encoding.PEM)
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.gateway_cert_path, pem, mode=0o644)
        self.drop_tls_context()
        self._changed()
        return info.fingerprint_sha256

    def set_master_key(self, source: str | os.PathLike[str], stdin: Any = None) -> None:
        """Provision MK from a file or stdin (``-``); refused while paired. Never logs the key."""
        set_master_key(self.store, source, stdin)
        self._state_cache = None
        self._changed()

    def crypto_reset(self) -> None:
        """Kryptoreset (COSEM 1-0:94.49.0*7): back to MK, unpaired; the pinned gateway certificate from pairing
        or import and the TLS context/session cache are dropped. Takes effect at the next SNRM (the caller may
        close the current connection with ``station.disconnect`` after the SML answer went out).

        The meter's own generated key is kept (it is the meter's identity, sent again by the next pairing); a
        YAML-provisioned gateway certificate cannot be wiped by BAB and keeps TLS required.
        """
        state = self.pairing_state()
        if state is not None:
            self.store.crypto_reset()
            self._state_cache = None
        if self.gateway_cert_path.exists():
            self.gateway_cert_path.unlink()
        self.drop_tls_context()
        self.counters["crypto_resets"] = self.counters.get("crypto_resets", 0) + 1
        log.warning("%s: crypto-reset: unpaired, gateway certificate and TLS sessions wiped", self.meter_id,
                    extra={"meter_id": self.meter_id, "layer": "security"})
        self._changed()

    def drop_tls_context(self) -> None:
        """Forget the TLS context and the sessions established with it: the next connection builds a new context
        (new pin, own key). wolfSSL's session cache is process-wide and the binding cannot flush it, so a session
        resumed from before this call is refused by the layer's session filter (and one of another pairing by
        the TLS server's post-handshake pin check)."""
        ctx, self._tls_ctx, self._tls_ctx_key = self._tls_ctx, None, None
        self._sessions.clear()
        if ctx is not None:
            ctx.close()

    # --- services -----------------------------------------------------------------------------------------

    def selectors(self) -> set[int]:
        """The selectors served right now."""
        out: set[int] = set()
        state = self.pairing_state()
        gw = self.gateway_certificate()
        if state is not None and not state.paired:
            out.add(Selector.SYM_HDLC)
        if gw is not None:
            out.add(Selector.TLS_SML_COSEM)
        elif not (state is not None and state.paired):
            out.add(Selector.SML_COSEM)
        return out

    def services(self, inner_factory: InnerFactory) -> dict[int, ServiceFactory]:
        """Factories for :attr:`bab.meter.MeterRuntime.services`; each re-checks the state when called."""
        return {
            Selector.SML_COSEM: lambda: self.layer_for(Selector.SML_COSEM, inner_factory),
            Selector.TLS_SML_COSEM: lambda: self.layer_for(Selector.TLS_SML_COSEM, inner_factory),
            Selector.SYM_HDLC: lambda: self.layer_for(Selector.SYM_HDLC, inner_factory),
        }

    def layer_for(self, selector: int, inner_factory: InnerFactory) -> ServerLayer | None:
        """A fresh upper layer for an SNRM on ``selector``, or None (DM)."""
        extra = {"meter_id": self.meter_id, "layer": "security"}
        try:
            served = self.selectors()
            if selector not in served:
                log.info("%s: refusing selector %d (serving %s)", self.meter_id, selector,
                         ", ".join(str(s) for s in sorted(served)) or "nothing", extra=extra)
                return None
            if selector == Selector.SML_COSEM:
                return inner_factory()
            if selector == Selector.TLS_SML_COSEM:
                return self._tls_layer(inner_factory)
            if selector == Selector.SYM_HDLC:
                return self._sym_layer()
        except Exception as exc:  # broken state or key files: refuse this connection, say why
            log.error("%s: cannot serve selector %d: %s", self.meter_id, selector, exc, extra=extra)
            return None
        return None

    def tls_context(self) -> Any:
        """The :class:`~bab.tls.meter_server.MeterTlsContext` for the current identity and pin (cached)."""
        from bab.tls.meter_server import MeterTlsContext

        gw = self.gateway_certificate()
        if gw is None:
            raise SecurityError(f"{self.meter_id}: no gateway certificate known")
        identity = self.own_identity()
        assert identity is not None
        key, cert, _ = identity
        ctx_key = (keys.certificate_der(cert), gw[0], self.options.validity)
        if self._tls_ctx is None or self._tls_ctx_key != ctx_key:
            self.drop_tls_context()
            self._tls_ctx = MeterTlsContext(key_pem=key, cert_pem=cert, peer_cert_pem=gw[0],
                                            validity=self.options.validity,
                                            session_lifetime_s=self.options.session_lifetime)
            self._tls_ctx_key = ctx_key
        return self._tls_ctx

    def _tls_layer(self, inner_factory: InnerFactory) -> ServerLayer:
        from bab.tls.hdlc_layer import TlsServerLayer

        now = self.time_source() if self.time_source is not None else None
        conn = self.tls_context().new_connection(now=now)
        return TlsServerLayer(conn, inner_factory, executor=self._executor(), on_failure=self._tls_failed,
                              on_established=self._tls_established, on_closed=self._tls_closed,
                              session_filter=self._session_allowed, name=self.meter_id,
                              clock=self.clock, max_age_s=float(self.options.session_lifetime))

    def _executor(self) -> Executor:
        from bab.tls.hdlc_layer import shared_executor

        return self.executor if self.executor is not None else shared_executor()

    def _sym_layer(self) -> ServerLayer:
        identity = self.own_identity()
        assert identity is not None
        own_cert_der = keys.certificate_der(identity[1])
        sym = PersistentSymMeter(self.store, self.server_id, own_certificate=own_cert_der, profile=self.sym_profile)
        return SymServerLayer(sym, on_failure=self._sym_failed, on_paired=self._paired, name=self.meter_id,
                              executor=self._executor())

    # --- callbacks from the layers ------------------------------------------------------------------------

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _tls_failed(self, err: TlsError) -> None:
        self._count("tls_failures")
        self.tls_up = False

    def _session_allowed(self, session_id: bytes | None, reused: bool, by_ticket: bool = False) -> bool:
        if reused and by_ticket:  # a ticket is bound to the TLS context, which a pairing or reset replaces
            return True
        if not reused:
            if session_id:
                self._sessions.add(session_id)
            return True
        return session_id is not None and session_id in self._sessions

    def _tls_established(self, info: object) -> None:
        self._count("tls_sessions")
        self.tls_up = True
        self._changed()

    def _tls_closed(self) -> None:
        if self.tls_up:
            self.tls_up = False
            self._changed()

    def _sym_failed(self, reason: str) -> None:
        self._count("sym_failures")

    def _paired(self, event: PairingCompleted) -> None:
        self._state_cache = None
        self._count("pairings")
        self.drop_tls_context()
        log.info("%s: paired; gateway certificate %s pinned, TLS now required", self.meter_id,
                 keys.fingerprint_sha256(event.gateway_cert_der), extra={"meter_id": self.meter_id, "layer": "sym"})
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # --- inspection ---------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What ``bab keys show`` prints (no secret material)."""
        out: dict[str, Any] = {"meter": self.meter_id, "server_id": self.server_id.hex()}
        try:
            state = self.pairing_state()
        except Exception as exc:
            state = None
            out["sym_error"] = str(exc)
        out["master_key"] = "provisioned" if state is not None else "not provisioned"
        out["paired"] = bool(state and state.paired)
        out["sym_counter"] = state.counter if state is not None else None
        try:
            identity = self.own_identity(create=False)
        except Exception as exc:
            identity = None
            out["own_error"] = str(exc)
        if identity is not None:
            out["own_certificate"] = _cert_dict(identity[1], identity[2])
        try:
            gw = self.gateway_certificate()
        except Exception as exc:
            gw = None
            out["gateway_error"] = str(exc)
        if gw is not None:
            out["gateway_certificate"] = _cert_dict(gw[0], gw[1])
        out["validity_policy"] = self.options.validity.value
        out["selectors"] = sorted(int(s) for s in self.selectors()) if "sym_error" not in out else []
        problems = self.key_file_problems()
        if problems:
            out["problems"] = problems
        return out

    def key_file_problems(self) -> list[str]:
        """Secret files others may read (BAB refuses to start with any of them)."""
        paths = [self.key_path, self.store.path]
        if self.options.key_file is not None:
            paths.append(self.options.key_file)
        return [p for p in (_unsafe_mode(path) for path in paths) if p]


def _cert_dict(cert: bytes, source: str) -> dict[str, Any]:
    info = keys.describe_certificate(cert)
    return {
        "source": source,
        "subject": info.subject_cn,
        "curve": info.curve_name,
        "fingerprint_sha256": info.fingerprint_sha256,
        "not_before": info.not_before.isoformat(),
        "not_after": info.not_after.isoformat(),
    }


def check_key_permissions(securities: list[MeterSecurity]) -> list[str]:
    """All key-file problems of these meters: the daemon refuses to start (exit 78) when this is not empty."""
    out: list[str] = []
    for s in securities:
        out.extend(s.key_file_problems())
    return out


def security_for(config: Any, meter: Any, **kw: Any) -> MeterSecurity:
    """The :class:`MeterSecurity` of one configured meter (``bab.config.Config`` / ``MeterConfig``); the
    meter's optional ``tls`` attribute holds its :class:`TlsOptions`, its optional ``sym_profile()`` its SYM
    profile."""
    meter_id = str(meter.id)
    if hasattr(meter, "sym_profile"):
        kw.setdefault("sym_profile", meter.sym_profile())
    return MeterSecurity(meter_state_dir(config.state_dir, meter_id), meter.id.server_id, meter_id,
                         getattr(meter, "tls", None), **kw)


def startup_problems(config: Any) -> list[str]:
    """Why BAB must not start with this configuration's key material (empty: fine). The daemon logs each line
    and exits with 78 (EX_CONFIG) when there is any."""
    problems: list[str] = []
    from bab.tls import wolfssl_binding
    from bab.tls.errors import TlsUnavailable

    try:
        wolfssl_binding.require()
    except TlsUnavailable as exc:  # a meter without selector 1 cannot be commissioned by any gateway
        problems.append(f"TLS (selector 1) is unavailable: {exc}")
    for meter in config.meters:
        try:
            sec = security_for(config, meter)
        except SecurityError as exc:
            problems.append(str(exc))
            continue
        problems.extend(sec.key_file_problems())
    return problems


__all__ = ["TLS", "MeterSecurity", "SecurityError", "TlsOptions", "check_key_permissions", "meter_state_dir",
           "security_for", "startup_problems"]
