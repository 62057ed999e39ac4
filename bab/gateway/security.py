"""The software gateway's side of LMN security (LMN-STACK.md sections 4 and 5).

:class:`GatewaySecurity` keeps, in one directory:

* the gateway's own TLS key and self-signed certificate (``gateway-key.pem`` 0600 / ``gateway-cert.pem``),
  generated on first use;
* per meter, the meter certificate learnt by SYM pairing (``meters/<server-id-hex>.pem``), pinned for TLS.

It builds the client layers of the conversations: SYM pairing on selector 6 from the meter's master key
(:meth:`pairing_job`; on success the meter's certificate is stored). By default it pairs the way the reference
gateway does (LMN-STACK.md section 13): it generates a key and a self-signed certificate for the meter and
injects ``certificate DER || private key DER`` (SEC1) with command 0x03 (route a); the private key is not kept.
Route (b), where the meter answers with a certificate of its own, is BAB's extension (``inject=False``). The SYM
profile may differ per meter (``sym_profiles``, e.g. the EMH firmware variant); application reads wrapped in TLS on
selector 1 (:meth:`tls_job`, any inner :class:`~bab.hdlc.upper.ClientLayer`, e.g. the SML client; the TLS
session is kept per meter for resumption), and a crypto-reset (:meth:`crypto_reset_job`: the inner layer sends
SML SetProcParameter 1-0:94.49.0*7 = TRUE; when the conversation ends cleanly and ``confirm(inner)`` agrees,
the meter's certificate is forgotten). :meth:`reader` combines them into a software-gateway reader.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bab.hdlc.frame import Selector
from bab.hdlc.primary import Participant
from bab.hdlc.upper import ClientLayer
from bab.persist import atomic_write
from bab.sym.gateway import SymGateway
from bab.sym.hdlc_layer import PairingResult, SymPairingClient
from bab.sym.profile import Credentials, SymProfile
from bab.tls import keys
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.hdlc_layer import TlsClientLayer
from bab.tls.keys import Curve
from bab.tls.policy import ValidityPolicy

from .app import PollJob, Reader

log = logging.getLogger("bab.gateway.security")

InnerFactory = Callable[[], ClientLayer]


class _Forgetting:
    """Inner-layer wrapper: after a clean end, calls ``then(inner)``."""

    def __init__(self, inner: ClientLayer, then: Callable[[ClientLayer], None]) -> None:
        self.inner, self.then = inner, then

    def data_to_send(self, max_size: int) -> bytes:
        return self.inner.data_to_send(max_size)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def is_done(self) -> bool:
        return self.inner.is_done()

    def connection_lost(self, reason: str | None) -> None:
        self.inner.connection_lost(reason)
        if reason is None:
            self.then(self.inner)


class GatewaySecurity:
    """Credentials and per-meter pins of the software gateway (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], *, curve: Curve | str = Curve.BRAINPOOL_P256R1,
                 name: str = "BAB-SOFTWARE-GATEWAY", validity: ValidityPolicy = ValidityPolicy.IGNORE,
                 sym_profiles: dict[bytes, SymProfile] | None = None, inject: bool = True) -> None:
        self.directory = Path(directory)
        self.sym_profiles = dict(sym_profiles or {})
        self.inject = inject
        self.curve = Curve.parse(curve) if isinstance(curve, str) else curve
        self.name = name
        self.validity = validity
        self.key_path = self.directory / "gateway-key.pem"
        self.cert_path = self.directory / "gateway-cert.pem"
        self._contexts: dict[bytes, GatewayTlsContext] = {}
        self._sessions: dict[bytes, ssl.SSLSession] = {}
        self._credentials: tuple[bytes, bytes] | None = None

    # --- credentials and pins -----------------------------------------------------------------------------

    def credentials(self) -> tuple[bytes, bytes]:
        """``(key PEM, cert PEM)`` of the gateway, generated on first use."""
        if self._credentials is None:
            if self.key_path.exists() and self.cert_path.exists():
                key = keys.load_private_key_file(self.key_path)
                cert = keys.load_certificate_file(self.cert_path)
            else:
                key, cert = keys.generate_identity(self.name, self.curve)
                keys.save_certificate(self.cert_path, cert)
                keys.save_private_key(self.key_path, key)
                log.info("generated gateway TLS key (%s), certificate %s", self.curve.value,
                         keys.fingerprint_sha256(cert))
            self._credentials = (key, cert)
        return self._credentials

    def certificate_der(self) -> bytes:
        return keys.certificate_der(self.credentials()[1])

    def _meter_path(self, server_id: bytes) -> Path:
        return self.directory / "meters" / f"{server_id.hex()}.pem"

    def meter_certificate(self, server_id: bytes) -> bytes | None:
        """The pinned certificate (DER) of a paired meter, or None."""
        path = self._meter_path(server_id)
        if not path.exists():
            return None
        return keys.certificate_der(keys.load_certificate_file(path))

    def store_meter_certificate(self, server_id: bytes, cert: bytes) -> None:
        pem = keys.load_certificate(cert).public_bytes(serialization.Encoding.PEM)
        atomic_write(self._meter_path(server_id), pem, mode=0o644)
        self._contexts.pop(server_id, None)
        self._sessions.pop(server_id, None)

    def forget_meter(self, server_id: bytes) -> None:
        """Drop a meter's certificate and TLS session (after its crypto-reset)."""
        path = self._meter_path(server_id)
        if path.exists():
            path.unlink()
        self._contexts.pop(server_id, None)
        self._sessions.pop(server_id, None)

    # --- conversations ------------------------------------------------------------------------------------

    def meter_credentials(self, server_id: bytes) -> Credentials:
        """A fresh key and self-signed certificate for a meter (DER; the key in SEC1, as ``openssl ecparam
        -genkey -outform DER`` writes it), on the gateway's curve, to inject with SYM command 0x03."""
        key_pem, cert_pem = keys.generate_identity(f"LMN meter {server_id.hex().upper()}", self.curve)
        return Credentials(keys.certificate_der(cert_pem), keys.private_key_der(key_pem, sec1=True))

    def pairing_client(self, server_id: bytes, master_key: bytes, *,
                       on_result: Callable[[PairingResult], None] | None = None,
                       max_idle_polls: int = 500, meter_credentials: Credentials | None = None,
                       inject: bool | None = None) -> SymPairingClient:
        """A selector-6 client pairing the meter: route (a) by default, injecting ``meter_credentials`` or
        fresh ones (:meth:`meter_credentials`); route (b) with ``inject=False`` (the meter answers with its own
        certificate)."""
        if inject is None:
            inject = self.inject
        if meter_credentials is None and inject:
            meter_credentials = self.meter_credentials(server_id)

        def done(result: PairingResult) -> None:
            if result.ok and result.meter_cert_der is not None:
                self.store_meter_certificate(server_id, result.meter_cert_der)
                log.info("paired meter %s: certificate %s", server_id.hex(),
                         keys.fingerprint_sha256(result.meter_cert_der))
            else:
                log.warning("pairing meter %s failed: %s", server_id.hex(), result.reason)
            if on_result is not None:
                on_result(result)

        gw = SymGateway(master_key, server_id, self.certificate_der(), meter_credentials=meter_credentials,
                        profile=self.sym_profiles.get(server_id))
        return SymPairingClient(gw, on_result=done, max_idle_polls=max_idle_polls)

    def pairing_job(self, server_id: bytes, master_key: bytes, **kw: object) -> PollJob:
        return PollJob(Selector.SYM_HDLC, self.pairing_client(server_id, master_key, **kw))  # type: ignore[arg-type]

    def tls_context(self, server_id: bytes) -> GatewayTlsContext:
        ctx = self._contexts.get(server_id)
        if ctx is None:
            meter_cert = self.meter_certificate(server_id)
            if meter_cert is None:
                raise KeyError(f"meter {server_id.hex()} is not paired with this gateway")
            key, cert = self.credentials()
            ctx = GatewayTlsContext(key_pem=key, cert_pem=cert, peer_cert_pem=meter_cert, validity=self.validity)
            self._contexts[server_id] = ctx
        return ctx

    def tls_client(self, server_id: bytes, inner: ClientLayer) -> TlsClientLayer:
        """A selector-1 client: TLS to the paired meter (resuming its last session) around ``inner``."""
        conn = self.tls_context(server_id).new_connection(session=self._sessions.get(server_id))

        def established(info: object) -> None:
            session = conn.session
            if session is not None:
                self._sessions[server_id] = session

        def closed(reason: str | None) -> None:
            if reason is not None:
                self._sessions.pop(server_id, None)  # do not offer a session the meter refused again

        return TlsClientLayer(conn, inner, on_established=established, on_closed=closed)

    def tls_job(self, server_id: bytes, inner: ClientLayer) -> PollJob:
        return PollJob(Selector.TLS_SML_COSEM, self.tls_client(server_id, inner))

    def crypto_reset_job(self, server_id: bytes, inner_factory: InnerFactory, *,
                         confirm: Callable[[ClientLayer], bool] = lambda inner: True) -> PollJob:
        """Crypto-reset over TLS: ``inner_factory()`` sends SetProcParameter 1-0:94.49.0*7 = TRUE (the SML
        client); after a clean end with ``confirm(inner)`` true the meter's certificate is forgotten."""

        def then(inner: ClientLayer) -> None:
            if confirm(inner):
                log.info("meter %s crypto-reset: certificate forgotten", server_id.hex())
                self.forget_meter(server_id)

        return self.tls_job(server_id, _Forgetting(inner_factory(), then))

    def reader(self, inner_factory: InnerFactory, master_keys: dict[bytes, bytes] | None = None) -> Reader:
        """A software-gateway reader: a paired meter is read over TLS (selector 1); a meter whose MK we hold
        is paired first (selector 6); any other is read in plain (selector 3)."""
        mks = master_keys or {}

        def read(p: Participant) -> PollJob | None:
            sid = p.server_id
            if self.meter_certificate(sid) is not None:
                return self.tls_job(sid, inner_factory())
            if sid in mks:
                return self.pairing_job(sid, mks[sid])
            return PollJob(Selector.SML_COSEM, inner_factory())

        return read


__all__ = ["GatewaySecurity"]
