"""TLS cases, the meter as TLS server (LMN-STACK.md 4, BSI TR-03116-3), named by the IDs of the LMN server
cases in BSI's test kit (TaSK). Each case's reference says, in BAB's words, what the case checks. Full
handshakes use the software gateway's TLS client (:class:`~bab.tls.gateway_client.GatewayTlsContext`, with its
test knobs for suites, groups and versions); everything a stock client will not send (old versions,
compression, foreign suites and groups, garbage, a tampered record) is a raw record crafted by
:mod:`.tls_hello`."""

from __future__ import annotations

from typing import Any

from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.sml.messages import GetProcParameterRes
from bab.sml.stream import FileDecoded
from bab.tls import keys
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.hdlc_layer import TlsClientLayer

from .case import CaseSkipped, case, check
from .common import ensure_registered
from .sml_cases import SmlFilesClient, bodies, get_pp
from .tls_hello import OTHER_GROUPS, OTHER_SUITES, TR_GROUPS, TR_SUITES, RawTlsClient, ServerFlight, client_hello

G = "TLS"


def tls_creds(s) -> tuple[bytes, bytes, bytes] | None:  # type: ignore[no-untyped-def]
    """(gateway key PEM, gateway certificate PEM, pinned meter certificate) from the options or the pairing."""
    o = s.options
    if o.gateway_key_pem and o.gateway_cert_pem and o.meter_cert_pem:
        return o.gateway_key_pem, o.gateway_cert_pem, o.meter_cert_pem
    sec = s.notes.get("security")
    if sec is not None and s.server_id is not None:
        cert = sec.meter_certificate(s.server_id)
        if cert is not None:
            key, gw_cert = sec.credentials()
            return key, gw_cert, cert
    return None


def _need(s):  # type: ignore[no-untyped-def]
    creds = tls_creds(s)
    if creds is None:
        raise CaseSkipped("no TLS credentials: pair the meter (--master-key) or give --gateway-key, --gateway-cert "
                          "and --meter-cert")
    return creds


def tls_client_for(s, inner, **kw: Any) -> TlsClientLayer | None:  # type: ignore[no-untyped-def]
    creds = tls_creds(s)
    if creds is None:
        return None
    key, cert, meter = creds
    ctx = GatewayTlsContext(key_pem=key, cert_pem=cert, peer_cert_pem=meter, **kw)
    return TlsClientLayer(ctx.new_connection(session=kw.pop("session", None)), inner)


def _read_request(s) -> SmlFilesClient:  # type: ignore[no-untyped-def]
    from bab.cosem.base_meter import ENERGY_IMPORT
    from bab.cosem.objects import CosemClass

    from .common import sml_request

    return SmlFilesClient([sml_request(s.server_id, [get_pp(ENERGY_IMPORT, CosemClass.ADVANCED_EXT_REGISTER,
                                                            (2, 3))], b"TLS1")])


def handshake(s, rec, *, key: bytes | None = None, cert: bytes | None = None, session=None,  # type: ignore[no-untyped-def]
              tamper: bool = False, **kw: Any):
    """A full conversation on selector 1: TLS with the software gateway's client, an SML read inside.
    Returns (layer, inner, outcome event)."""
    gw_key, gw_cert, meter = _need(s)
    address = ensure_registered(s)
    if key is None and not kw:  # the suite's own client: one context, so that sessions can be resumed
        ctx = s.notes.get("tls_context")
        if ctx is None or ctx.peer_cert_der != keys.certificate_der(meter):
            ctx = s.notes["tls_context"] = GatewayTlsContext(key_pem=gw_key, cert_pem=gw_cert, peer_cert_pem=meter)
    else:
        ctx = GatewayTlsContext(key_pem=key or gw_key, cert_pem=cert, peer_cert_pem=meter, **kw)
    inner = _read_request(s)
    layer = TlsClientLayer(ctx.new_connection(session=session), inner)
    conv = _Tamper(layer) if tamper else layer
    outcome = s.tester.converse(address, Selector.TLS_SML_COSEM, conv, timeout=40.0)
    rec.figure("outcome", getattr(outcome, "reason", None) or "done")
    info = getattr(layer.tls, "info", None)
    if info is not None:
        rec.figure("negotiated", {"version": info.version, "suite": info.cipher_suite,
                                  "group": getattr(info.group, "value", info.group),
                                  "session_reused": info.session_reused})
    if layer.error is not None:
        rec.figure("client_error", str(layer.error))
        rec.figure("alert", layer.error.alert)
    return layer, inner, outcome


class _Tamper:
    """Wraps a TLS client layer and flips one byte of its first application-data record."""

    def __init__(self, layer: TlsClientLayer) -> None:
        self.layer = layer
        self.flipped = False

    def data_to_send(self, max_size: int) -> bytes:
        data = self.layer.data_to_send(max_size)
        if data and not self.flipped and data[0] == 23 and self.layer.established:
            b = bytearray(data)
            b[-1] ^= 0x01
            self.flipped = True
            return bytes(b)
        return data

    def data_received(self, data: bytes) -> None:
        self.layer.data_received(data)

    def is_done(self) -> bool:
        return self.layer.is_done()

    def connection_lost(self, reason: str | None) -> None:
        self.layer.connection_lost(reason)


def raw(s, rec, records: list[bytes], note: str) -> ServerFlight:  # type: ignore[no-untyped-def]
    """Send raw records on selector 1 and read the meter's answer."""
    address = ensure_registered(s)
    client = RawTlsClient(records)
    for r in records:
        rec.frame(s.tester.now, "tx", r[:256], note)
    outcome = s.tester.converse(address, Selector.TLS_SML_COSEM, client, timeout=30.0)
    flight = client.flight()
    if isinstance(outcome, ev.ExchangeFailed) and outcome.reason == "refused (DM)" and not client.received:
        raise CaseSkipped("the meter does not serve TLS (selector 1 refused with DM): pair it first")
    rec.frame(s.tester.now, "rx", bytes(client.received[:256]), flight.summary())
    return flight


def _refused(flight: ServerFlight, alerts: tuple[str, ...], what: str) -> None:
    check(flight.server_hello is None, f"{what}: the meter answered with a ServerHello ({flight.summary()})")
    if flight.alert is not None:
        check(flight.alert in alerts, f"{what}: refused with alert {flight.alert}, expected {' or '.join(alerts)}")


@case("TLS_B2_GP_01_T", "TLS 1.2 with mutual authentication and a TR suite; application data flows",
      "TaSK TLS_B2_GP_01_T: a handshake with a TR-03116-3 conformant client completes (TLS 1.2, a TR suite and "
      "group, both certificates checked) and application data passes; LMN-STACK.md 4", group=G, needs=("tls",),
      catches=("tls_abort", "tls_wrong_cert"))
def gp01(s, rec) -> None:  # type: ignore[no-untyped-def]
    layer, inner, outcome = handshake(s, rec)
    check(layer.established, f"the handshake did not complete: {layer.error or getattr(outcome, 'reason', '')}")
    check(inner.answers and isinstance(inner.answers[0], FileDecoded), "no SML answer file inside TLS")
    check(bodies(inner.answers[0].file, GetProcParameterRes), "the SML answer inside TLS carries no value")
    info = layer.tls.info
    check(info.version == "TLSv1.2", f"negotiated {info.version}")
    check(info.cipher_suite in TR_SUITES.values(), f"negotiated suite {info.cipher_suite} is not a TR suite")


@case("TLS_B2_GP_02", "TLS versions below 1.2 are refused",
      "TaSK TLS_B2_GP_02: a ClientHello offering only TLS 1.0 or 1.1 gets no ServerHello but a protocol_version "
      "(or handshake_failure) alert; RFC 5246 E.1", group=G)
def gp02(s, rec) -> None:  # type: ignore[no-untyped-def]
    for version in (0x0301, 0x0302):
        f = raw(s, rec, [client_hello(version=version)], f"ClientHello version {version:04x}")
        _refused(f, ("protocol_version", "handshake_failure"), f"TLS {version:04x}")
        rec.figure(f"answer_{version:04x}", f.summary())


@case("TLS_B2_GP_03_T", "each TR-03116-3 suite alone is accepted",
      "TaSK TLS_B2_GP_03_T: for every suite the TR prescribes, a client offering just that suite gets it in the "
      "ServerHello", group=G)
def gp03(s, rec) -> None:  # type: ignore[no-untyped-def]
    got = {}
    for code, name in TR_SUITES.items():
        f = raw(s, rec, [client_hello(suites=(code,))], name)
        got[name] = f.summary()
        check(f.suite == code, f"offering only {name}: {f.summary()}")
    rec.figure("suites", got)


@case("TLS_B2_GP_04", "suites outside the TR are refused",
      "TaSK TLS_B2_GP_04: a client offering only suites the TR does not allow (CBC-SHA1, ChaCha20, RSA key "
      "exchange, ECDHE-RSA) gets a handshake_failure alert, no ServerHello", group=G)
def gp04(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(suites=tuple(OTHER_SUITES))], "ClientHello with non-TR suites")
    _refused(f, ("handshake_failure", "insufficient_security"), "non-TR suites")
    rec.figure("answer", f.summary())


@case("TLS_B2_GP_05_T", "each TR group alone is used for ECDHE",
      "TaSK TLS_B2_GP_05_T: for every elliptic curve the TR allows (brainpoolP256r1/384r1/512r1, P-256, P-384), a "
      "client offering just that group gets it in the ServerKeyExchange", group=G)
def gp05(s, rec) -> None:  # type: ignore[no-untyped-def]
    got = {}
    for code, name in TR_GROUPS.items():
        f = raw(s, rec, [client_hello(groups=(code,))], name)
        got[name] = f.key_exchange_group
        check(f.key_exchange_group == code, f"offering only {name}: {f.summary()}")
    rec.figure("groups", got)


@case("TLS_B2_GP_08", "groups outside the TR are refused",
      "TaSK TLS_B2_GP_08: a client offering only curves outside the TR (X25519, X448, P-521) gets no ServerHello "
      "but a handshake_failure alert", group=G)
def gp08(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(groups=tuple(OTHER_GROUPS))], "ClientHello with non-TR groups")
    _refused(f, ("handshake_failure", "insufficient_security", "illegal_parameter"), "non-TR groups")
    rec.figure("answer", f.summary())


@case("TLS_B2_FR_01_T", "the meter presents its pinned ECDSA certificate on a TR curve",
      "TaSK TLS_B2_FR_01_T (optional): the server's Certificate message carries the certificate the gateway holds "
      "for it (from the pairing), with an EC key on a TR curve", group=G)
def fr01(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello()], "ClientHello (TR parameters)")
    check(f.certificates, f"no Certificate message ({f.summary()})")
    cert = keys.load_certificate(f.certificates[0])
    curve = getattr(cert.public_key(), "curve", None)
    rec.figure("curve", getattr(curve, "name", None))
    check(curve is not None and curve.name in {"brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256r1",
                                               "secp384r1"}, f"certificate key {curve} is not on a TR curve")
    creds = tls_creds(s)
    if creds is not None:
        check(keys.certificate_der(creds[2]) == f.certificates[0], "the meter presents another certificate than "
              "the one pinned for it")


@case("TLS_B2_FR_02_T", "a client without certificate is refused",
      "TaSK TLS_B2_FR_02_T: the server requires client authentication; a client sending no certificate gets a "
      "fatal alert (handshake_failure) and no session", group=G, needs=("tls",))
def fr02(s, rec) -> None:  # type: ignore[no-untyped-def]
    gw_key, _, _ = _need(s)
    layer, _inner, _ = handshake(s, rec, key=gw_key, cert=None)
    check(not layer.established, "the handshake completed without a client certificate")


@case("TLS_B2_FR_03", "a client certificate other than the pinned one is refused",
      "TaSK TLS_B2_FR_03: a client authenticating with a certificate the server does not trust (not the pinned "
      "gateway certificate) gets a fatal alert (bad_certificate)", group=G, needs=("tls",))
def fr03(s, rec) -> None:  # type: ignore[no-untyped-def]
    key, cert = keys.generate_identity("NOT-THE-GATEWAY", keys.Curve.BRAINPOOL_P256R1)
    layer, _inner, _ = handshake(s, rec, key=key, cert=cert)
    check(not layer.established, "the handshake completed with an unknown client certificate")


@case("TLS_B2_FR_05", "no TLS compression",
      "TaSK TLS_B2_FR_05: a client offering DEFLATE and null gets null compression; one offering only DEFLATE is "
      "refused", group=G)
def fr05(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(compression=(1, 0))], "ClientHello with DEFLATE, null")
    check(f.server_hello is not None and f.compression == 0, f"DEFLATE+null: {f.summary()}, compression "
          f"{f.compression}")
    f = raw(s, rec, [client_hello(compression=(1,))], "ClientHello with DEFLATE only")
    _refused(f, ("handshake_failure", "decode_error", "illegal_parameter"), "DEFLATE only")
    rec.figure("deflate_only", f.summary())


@case("TLS_B2_FR_09", "a TLS 1.3-only client is refused",
      "TaSK TLS_B2_FR_09: TLS 1.2 only: a ClientHello whose supported_versions lists only TLS 1.3 gets "
      "protocol_version, not a TLS 1.2 or 1.3 ServerHello", group=G)
def fr09(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(supported_versions=(0x0304,))], "ClientHello TLS 1.3 only")
    _refused(f, ("protocol_version", "handshake_failure"), "TLS 1.3 only")
    rec.figure("answer", f.summary())


@case("TLS_B2_FR_10", "max_fragment_length 512 negotiated and kept",
      "TaSK TLS_B2_FR_10 (optional): a client asking for max_fragment_length 512 (RFC 6066) gets it confirmed "
      "and no record from the server is longer; LMN-STACK.md 4 (MFL 512)", group=G)
def fr10(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(max_fragment_length=1)], "ClientHello with max_fragment_length 512")
    check(f.server_hello is not None, f"no ServerHello: {f.summary()}")
    rec.figure("largest_record", f.largest_record)
    check(f.extensions.get(1) == b"\x01", "the ServerHello does not confirm max_fragment_length 512")
    check(f.largest_record <= 512, f"a record of {f.largest_record} bytes exceeds 512")


@case("TLS_B2_FR_11", "secure renegotiation indicated",
      "TaSK TLS_B2_FR_11: renegotiation only per RFC 5746: a ClientHello with TLS_EMPTY_RENEGOTIATION_INFO_SCSV "
      "gets an empty renegotiation_info extension in the ServerHello", group=G)
def fr11(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(suites=(*TR_SUITES, 0x00FF))], "ClientHello with the renegotiation SCSV")
    check(f.server_hello is not None, f"no ServerHello: {f.summary()}")
    rec.figure("server_extensions", sorted(f.extensions))
    check(f.extensions.get(0xFF01) == b"\x00", "no empty renegotiation_info in the ServerHello")


@case("TLS_B2_FR_12", "session resumption",
      "TaSK TLS_B2_FR_12: a client offering the session of its last handshake gets an abbreviated handshake",
      group=G, needs=("tls",))
def fr12(s, rec) -> None:  # type: ignore[no-untyped-def]
    first, _, _ = handshake(s, rec)
    check(first.established and first.tls.session is not None, "the first handshake did not complete")
    second, _, _ = handshake(s, rec, session=first.tls.session)
    check(second.established, f"the resumed handshake failed: {second.error}")
    check(second.tls.info.session_reused, "the meter made a full handshake instead of resuming")


@case("TLS_B2_FR_13", "garbage instead of a ClientHello: a fatal alert, then TLS works again",
      "TaSK TLS_B2_FR_13: malformed handshake input (a record that is not a ClientHello, bytes that are no "
      "record) ends the connection with a fatal alert; the server stays usable", group=G)
def fr13(s, rec) -> None:  # type: ignore[no-untyped-def]
    junk = [bytes.fromhex("1703030010") + bytes(16), bytes.fromhex("16030100040e000000"), b"\x80\x2e\x01garbage!"]
    answers = []
    for r in junk:
        f = raw(s, rec, [r], "malformed")
        answers.append(f.summary())
        check(f.server_hello is None, f"malformed input {r[:6].hex()} answered with a ServerHello")
    rec.figure("answers", answers)
    f = raw(s, rec, [client_hello()], "ClientHello after the garbage")
    check(f.server_hello is not None, f"after the malformed input a correct ClientHello got {f.summary()}")


@case("TLS_B2_FR_18", "a tampered record ends the connection",
      "TaSK TLS_B2_FR_18: an application-data record whose MAC/tag does not verify is not processed; the server "
      "ends the connection (bad_record_mac)", group=G, needs=("tls",))
def fr18(s, rec) -> None:  # type: ignore[no-untyped-def]
    layer, inner, outcome = handshake(s, rec, tamper=True)
    check(layer.established, "the handshake did not complete")
    check(not inner.answers, "the meter answered the request of a tampered record")
    check(isinstance(outcome, ev.ExchangeFailed), "the connection ended cleanly after a tampered record")
