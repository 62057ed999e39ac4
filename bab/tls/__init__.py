"""BAB's LMN TLS layer (LMN-STACK.md section 4, spec TLS-WOLFSSL.md): TLS 1.2 per BSI TR-03116-3, sans-I/O.

* :class:`MeterTlsContext` / :class:`MeterTlsServer` (:mod:`bab.tls.meter_server`): the meter side, a TLS
  server on wolfSSL through BAB's cffi binding (build it with ``python -m bab.tls.build_wolfssl``).
* :class:`GatewayTlsContext` / :class:`GatewayTlsClient` (:mod:`bab.tls.gateway_client`): the gateway side, a
  TLS client on Python's ssl (OpenSSL), used by BAB's software gateway.
* :mod:`bab.tls.keys`: ECDSA keys and self-signed certificates on the five LMN curves.
* :mod:`bab.tls.policy`: the shared policy (suites, groups, MFL, session lifetime, :class:`ValidityPolicy`).
* :mod:`bab.tls.errors`: :class:`TlsError` and its named subclasses with a :class:`TlsFailure` reason;
  :class:`TlsUnavailable` when the wolfSSL binding is missing.

Both connection objects take TLS bytes in (``receive_bytes``) and give whole TLS records out
(``records_to_send``: one record per HDLC I-frame); no I/O, no threads.
"""

from __future__ import annotations

from bab.tls.errors import (
    TlsCertificateError,
    TlsError,
    TlsFailure,
    TlsHandshakeError,
    TlsNegotiationError,
    TlsPeerAlert,
    TlsRecordError,
    TlsStateError,
    TlsUnavailable,
)
from bab.tls.policy import ValidityPolicy

__all__ = [
    "GatewayTlsClient",
    "GatewayTlsContext",
    "MeterTlsContext",
    "MeterTlsServer",
    "TlsCertificateError",
    "TlsError",
    "TlsFailure",
    "TlsHandshakeError",
    "TlsNegotiationError",
    "TlsPeerAlert",
    "TlsRecordError",
    "TlsSessionInfo",
    "TlsStateError",
    "TlsUnavailable",
    "ValidityPolicy",
]


def __getattr__(name: str) -> object:
    # lazy: importing bab.tls must not need the wolfSSL binding (TlsUnavailable is raised on use)
    if name in ("MeterTlsContext", "MeterTlsServer", "TlsSessionInfo"):
        from bab.tls import meter_server

        return getattr(meter_server, name)
    if name in ("GatewayTlsContext", "GatewayTlsClient"):
        from bab.tls import gateway_client

        return getattr(gateway_client, name)
    raise AttributeError(name)
