"""TLS cases, the meter as TLS server with client authentication (LMN-STACK.md 4, BSI TR-03116-3).

The ``TLS_B2_*`` cases are the test cases of BSI's TR-03116-TS module B2 (server, client certificates) that
TaSK's application mapping for the LMN TLS server (``TR-03116-3-SMGW-LMN-SERVER``) selects: every case whose
profiles the mapping makes mandatory, and as optional cases those of its recommended profiles BAB speaks
(ENC_THEN_MAC, EXT_MASTER_SECRET, SESSION_ID, SESSION_TICKET; TLS 1.3 is out of scope). Each one follows the
steps and expected results of the TaSK test-case text (BSI-Bund/TaSK 1.0.1,
``task/data/specification/TestCases/TR-03116-TS/Module_B2``), with the LMN common specification as the ICS:
TLS 1.2, the four TR suites, the five TR groups, ECDSA with SHA-256/384/512, session lifetime 744 h. Where
the LMN has no counterpart of a TaSK step (a DNS name, revocation), the case says what it checks instead.
An alert other than the one TaSK names is accepted as TaSK does (it logs a warning: "check whether the given
alert description is suitable"), and the report notes it.

The ``TLS-*`` cases are BAB's own: a stock client (the software gateway's OpenSSL client) reading SML through
TLS, and checks TaSK's mapping does not select (each group alone, max_fragment_length 512, secure
renegotiation indication, a foreign client certificate, garbage, a tampered record).

Handshakes the TaSK cases need are made by :mod:`.tls_probe`; ClientHellos that are refused before any
handshake state exists are raw records (:mod:`.tls_hello`).
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.sml.messages import GetProcParameterRes
from bab.sml.stream import FileDecoded
from bab.tls import keys
from bab.tls.gateway_client import GatewayTlsContext
from bab.tls.hdlc_layer import TlsClientLayer

from .case import CaseNotApplicable, CaseSkipped, case, check
from .common import energy_request, ensure_registered, sml_request
from .sml_cases import SmlFilesClient, bodies
from .tls_hello import (
    OTHER_GROUPS,
    OTHER_SIGALGS,
    OTHER_SUITES,
    TR_GROUPS,
    TR_SIGALGS,
    TR_SUITES,
    RawTlsClient,
    ServerFlight,
    client_hello,
)
from .tls_probe import CBC_SUITES, ProbeOptions, TlsProbe

G = "TLS"
TASK = "TaSK TR-03116-TS B2"
TR_CURVES = {"brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256r1", "secp384r1"}
_SIG_HASH = {0x0403: "sha256", 0x0503: "sha384", 0x0603: "sha512"}
_ONE_SUITE = (next(iter(TR_SUITES)),)  # "a suite supported according to the ICS"


# --- credentials and the two kinds of client ---------------------------------------------------------------

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
    """A client for one SML file reading 1-0:1.8.0 (inside TLS)."""
    return SmlFilesClient([sml_request(s.server_id, energy_request(), b"TLS1")])


def probe(s, rec, note: str, *, inner: Any = None, timeout: float = 40.0,  # type: ignore[no-untyped-def]
          **options: Any) -> TlsProbe:
    """One connection on selector 1 with the TLS probe (client certificate: the gateway's, unless ``options``
    say otherwise); its records go into the evidence."""
    gw_key, gw_cert, _ = _need(s)
    address = ensure_registered(s)
    options.setdefault("key_pem", gw_key)
    options.setdefault("cert_der", keys.certificate_der(gw_cert))
    p = TlsProbe(ProbeOptions(**options), inner)
    outcome = s.tester.converse(address, Selector.TLS_SML_COSEM, p, timeout=timeout)
    if isinstance(outcome, ev.ExchangeFailed) and outcome.reason == "refused (DM)" and p.bytes_sent == 0:
        raise CaseSkipped("the meter does not serve TLS (selector 1 refused with DM): pair it first")
    for direction, record in p.wire:
        rec.frame(s.tester.now, direction, record[:256], note)
    rec.figure(note, p.summary())
    return p


def _established(p: TlsProbe, what: str) -> None:
    """TaSK's positive outcome: the ClientHello accepted, client authentication requested, the channel up."""
    check(p.server_hello is not None, f"{what}: the meter did not accept the ClientHello ({p.summary()})")
    check(p.certificate_request is not None or p.resumed,
          f"{what}: the meter did not request client authentication (no CertificateRequest)")
    check(p.established, f"{what}: the handshake did not complete ({p.summary()})")


def raw(s, rec, records: list[bytes], note: str) -> ServerFlight:  # type: ignore[no-untyped-def]
    """Send raw records on selector 1 and read the meter's answer."""
    address = ensure_registered(s)
    client = RawTlsClient(records)
    for r in records:
        rec.frame(s.tester.now, "tx", r[:256], note)
    outcome = s.tester.converse(address, Selector.TLS_SML_COSEM, client, timeout=30.0)
    flight = client.flight()
    if (isinstance(outcome, ev.ExchangeFailed) and outcome.reason == "refused (DM)"
            and len(client.records) == len(records)):  # SNRM refused: nothing was sent
        raise CaseSkipped("the meter does not serve TLS (selector 1 refused with DM): pair it first")
    rec.frame(s.tester.now, "rx", bytes(client.received[:256]), flight.summary())
    return flight


def _alert_note(rec, what: str, got: str | None, expected: str) -> None:  # type: ignore[no-untyped-def]
    if got != expected:
        notes = rec.figures.setdefault("alert_notes", [])
        notes.append(f"{what}: alert {got}, TaSK names {expected} \"or another suitable error description\" "
                     "(TaSK: a warning)")


def _refused(rec, flight: ServerFlight, expected: str, what: str) -> None:  # type: ignore[no-untyped-def]
    """TaSK's negative outcome for a ClientHello: an alert (``expected`` or another), no channel."""
    check(flight.server_hello is None, f"{what}: the meter answered with a ServerHello ({flight.summary()})")
    check(flight.alert is not None, f"{what}: the meter sent no alert ({flight.summary()})")
    _alert_note(rec, what, flight.alert, expected)


def _hello_refused(s, rec, hello: bytes, expected: str, what: str) -> None:  # type: ignore[no-untyped-def]
    """One ClientHello the meter must refuse: an alert (``expected`` or another), no ServerHello."""
    f = raw(s, rec, [hello], f"ClientHello with {what}")
    rec.figure("answer", f.summary())
    _refused(rec, f, expected, what)


def _probe_refused(rec, p: TlsProbe, expected: str, what: str) -> None:  # type: ignore[no-untyped-def]
    check(not p.established, f"{what}: the handshake completed")
    check(p.alert is not None, f"{what}: the meter sent no alert ({p.summary()})")
    _alert_note(rec, what, p.alert, expected)


def _lifetime(s, rec, extra: float) -> float:  # type: ignore[no-untyped-def]
    """The declared session lifetime, if waiting it out (plus ``extra``) fits the operator's limit."""
    life = s.options.tls_session_lifetime
    rec.figure("session_lifetime_s", life)
    if life + extra > s.options.max_wait:
        raise CaseSkipped(f"waiting out the session lifetime of {life:g} s exceeds --max-wait {s.options.max_wait:g}"
                          " s (for a meter configured with a shorter lifetime, give --tls-session-lifetime)")
    s.tester.deadline = max(s.tester.deadline, s.tester.now + life + extra + 60.0)
    return life


# --- TaSK B2 General Parameters --------------------------------------------------------------------------

@case("TLS_B2_GP_01_T", "a TLS connection with each TR suite, client certificate requested",
      f"{TASK} TLS_B2_GP_01_T: for each suite of the ICS, a ClientHello offering only it (TLS 1.2, all ICS "
      "signature algorithms) is accepted, a client certificate is requested, and with the valid client chain "
      "the channel is established; LMN-STACK.md 4", group=G, needs=("tls",), catches=("tls_abort",))
def gp01(s, rec) -> None:  # type: ignore[no-untyped-def]
    for code, name in TR_SUITES.items():
        p = probe(s, rec, name, suites=(code,))
        _established(p, name)
        check(p.suite == code, f"{name}: the meter chose {p.suite:04x}")


@case("TLS_B2_GP_02", "only suites outside the ICS: refused",
      f"{TASK} TLS_B2_GP_02: a ClientHello (TLS 1.2, valid curves) offering only suites the ICS does not list "
      "(CBC-SHA1, ChaCha20, RSA key exchange, ECDHE-RSA) gets a handshake_failure alert, no channel", group=G)
def gp02(s, rec) -> None:  # type: ignore[no-untyped-def]
    _hello_refused(s, rec, client_hello(suites=tuple(OTHER_SUITES)), "handshake_failure", "non-ICS suites")


@case("TLS_B2_GP_03_T", "each ICS signature algorithm alone: accepted and used",
      f"{TASK} TLS_B2_GP_03_T: for each signature algorithm of the ICS (ECDSA with SHA-256, -384, -512), a "
      "ClientHello whose signature_algorithms lists only it is accepted, client authentication is requested and "
      "the channel is established; the ServerKeyExchange is signed with it. TaSK also checks the certificate's "
      "own signature against each one; a meter has one certificate, so its ICS can list only that "
      "certificate's algorithm: the case checks the certificate is signed with one of the three and reports "
      "which", group=G, needs=("tls",))
def gp03(s, rec) -> None:  # type: ignore[no-untyped-def]
    used = {}
    cert_alg = None
    for alg in TR_SIGALGS:
        name = f"ecdsa_{_SIG_HASH[alg]}"
        p = probe(s, rec, name, sigalgs=(alg,))
        _established(p, name)
        used[name] = p.ske_sigalg
        check(p.ske_sigalg == alg, f"{name}: ServerKeyExchange signed with {p.ske_sigalg}")
        if p.certificates:
            cert_alg = keys.load_certificate(p.certificates[0]).signature_hash_algorithm
    rec.figure("server_key_exchange_sigalgs", {k: f"{v:04x}" if v else None for k, v in used.items()})
    hash_name = getattr(cert_alg, "name", None)
    rec.figure("certificate_signature", f"ecdsa-with-{hash_name}" if hash_name else None)
    check(hash_name in ("sha256", "sha384", "sha512"), f"the meter certificate is signed with {hash_name}, not ECDSA "
          "with SHA-256/384/512")


@case("TLS_B2_GP_04", "an ICS suite with only curves outside the ICS: refused",
      f"{TASK} TLS_B2_GP_04: a ClientHello offering an ECC suite of the ICS but only elliptic curves outside it "
      "(X25519, X448, secp521r1) gets a handshake_failure alert, no channel", group=G)
def gp04(s, rec) -> None:  # type: ignore[no-untyped-def]
    _hello_refused(s, rec, client_hello(suites=_ONE_SUITE, groups=tuple(OTHER_GROUPS)), "handshake_failure",
                   "non-ICS curves")


@case("TLS_B2_GP_05_T", "no downgrade to a version outside the ICS",
      f"{TASK} TLS_B2_GP_05_T: for each version the ICS does not list (SSL 3.0, TLS 1.0, TLS 1.1, and TLS 1.3: "
      "the LMN makes it optional and BAB's ICS leaves it out), a ClientHello offering it with an ICS suite gets "
      "a protocol_version alert, no connection", group=G)
def gp05(s, rec) -> None:  # type: ignore[no-untyped-def]
    hellos = {"SSL 3.0": client_hello(version=0x0300, record_version=0x0300),
              "TLS 1.0": client_hello(version=0x0301), "TLS 1.1": client_hello(version=0x0302),
              "TLS 1.3": client_hello(supported_versions=(0x0304,), extra=b"\x00\x33\x00\x02\x00\x00")}
    answers = {}
    for name, hello in hellos.items():
        f = raw(s, rec, [hello], f"ClientHello {name}")
        answers[name] = f.summary()
        _refused(rec, f, "protocol_version", name)
    rec.figure("answers", answers)


@case("TLS_B2_GP_08", "only signature algorithms outside the application: refused",
      f"{TASK} TLS_B2_GP_08: a TLS 1.2 ClientHello with an ICS suite whose signature_algorithms lists only "
      "algorithms the LMN does not allow (ECDSA with SHA-1 or SHA-224, RSA) gets a handshake_failure alert, "
      "no channel", group=G)
def gp08(s, rec) -> None:  # type: ignore[no-untyped-def]
    _hello_refused(s, rec, client_hello(suites=_ONE_SUITE, sigalgs=tuple(OTHER_SIGALGS)), "handshake_failure",
                   "non-LMN signature algorithms")


# --- TaSK B2 Further Requirements ------------------------------------------------------------------------

@case("TLS_B2_FR_01_T", "encrypt_then_mac used when offered (CBC suites)",
      f"{TASK} TLS_B2_FR_01_T (optional, ENC_THEN_MAC): for each CBC suite of the ICS, a ClientHello with the "
      "encrypt_then_mac extension gets it selected, and the channel works with RFC 7366 records", group=G,
      needs=("tls",), optional="ENC_THEN_MAC")
def fr01(s, rec) -> None:  # type: ignore[no-untyped-def]
    for code in CBC_SUITES:
        name = TR_SUITES[code]
        p = probe(s, rec, name, suites=(code,), encrypt_then_mac=True, inner=_read_request(s))
        if p.established and 22 not in p.server_extensions:
            raise CaseNotApplicable(f"{name}: the meter does not select encrypt_then_mac")
        _established(p, name)
        check(22 in p.server_extensions, f"{name}: encrypt_then_mac not selected")
        check(p.app_data, f"{name}: no application data came back through the encrypt-then-MAC channel")


@case("TLS_B2_FR_02_T", "truncated_hmac is not selected",
      f"{TASK} TLS_B2_FR_02_T: for each CBC suite of the ICS, a ClientHello with the truncated_hmac extension "
      "is accepted, the extension is not selected, and the channel is established", group=G, needs=("tls",))
def fr02(s, rec) -> None:  # type: ignore[no-untyped-def]
    for code in CBC_SUITES:
        name = TR_SUITES[code]
        p = probe(s, rec, name, suites=(code,), truncated_hmac=True)
        check(4 not in p.server_extensions, f"{name}: the meter selected truncated_hmac")
        _established(p, name)


@case("TLS_B2_FR_03", "the server certificate: signature correct, valid now",
      f"{TASK} TLS_B2_FR_03: the meter requests client authentication and sends a certificate whose signature "
      "is correct and which is valid now; the channel is established. The LMN has no DNS names and no "
      "revocation service: instead the certificate must carry an EC key on a TR curve and, where the tester "
      "knows it, be the one pinned for the meter", group=G, needs=("tls",), catches=("tls_wrong_cert",))
def fr03(s, rec) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    p = probe(s, rec, "handshake")
    _established(p, "handshake")
    check(p.certificates, "the meter sent no certificate")
    cert = keys.load_certificate(p.certificates[0])
    issuer_key = None
    for der in p.certificates[1:] + [p.certificates[0]]:
        candidate = keys.load_certificate(der)
        if candidate.subject == cert.issuer:
            issuer_key = candidate.public_key()
            break
    creds = tls_creds(s)
    if issuer_key is None and creds is not None and keys.load_certificate(creds[1]).subject == cert.issuer:
        issuer_key = keys.load_certificate(creds[1]).public_key()  # route a: the gateway issued it
    check(issuer_key is not None, f"the issuer of the meter certificate ({cert.issuer.rfc4514_string()}) is not in "
          "its chain: its signature cannot be checked")
    try:
        assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
        assert cert.signature_hash_algorithm is not None
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except (InvalidSignature, AssertionError):
        check(False, "the signature of the meter certificate does not verify")
    not_before, not_after = keys.validity(cert)
    now = dt.datetime.now(dt.UTC)
    rec.figure("validity", [not_before.isoformat(), not_after.isoformat()])
    check(not_before <= now <= not_after, f"the meter certificate is not valid now ({not_before} to {not_after})")
    curve = getattr(cert.public_key(), "curve", None)
    rec.figure("curve", getattr(curve, "name", None))
    check(curve is not None and curve.name in TR_CURVES, f"the certificate key ({curve}) is not on a TR curve")
    if creds is not None:
        check(keys.certificate_der(creds[2]) == p.certificates[0], "the meter presents another certificate than "
              "the one pinned for it")


@case("TLS_B2_FR_05", "a session older than the lifetime is not resumed",
      f"{TASK} TLS_B2_FR_05 (DURATION): after a full handshake the tester waits longer than the session "
      "lifetime (ICS: 744 h; --tls-session-lifetime) and offers the old session ID: the meter answers with a "
      "new session ID and a full handshake, and the channel is established. The wait is held on the bus clock "
      "and on the wall clock (a meter's TLS library may use either)", group=G, needs=("tls",), budget=90.0)
def fr05(s, rec) -> None:  # type: ignore[no-untyped-def]
    _need(s)
    life = _lifetime(s, rec, 5.0)
    first = probe(s, rec, "first handshake")
    _established(first, "first handshake")
    session = first.session()
    check(session is not None and session.session_id, "the meter's ServerHello carried no session ID")
    wall = time.monotonic()
    s.tester.wait(life + 5.0)
    remaining = life + 1.5 - (time.monotonic() - wall)
    if remaining > 0:
        time.sleep(remaining)
    second = probe(s, rec, "after the lifetime", resume=session, inner=_read_request(s))
    _established(second, "after the lifetime")
    check(second.app_data, f"no application data after the new handshake ({second.summary()})")
    check(not second.resumed and second.server_session_id != session.session_id,
          "the meter resumed a session older than the session lifetime")
    check(second.certificates, "no full handshake after the lifetime (no Certificate)")


@case("TLS_B2_FR_09", "a renegotiation attempt is ignored or refused",
      f"{TASK} TLS_B2_FR_09 (NO_RENEGOTIATION): on an established channel the tester sends a new ClientHello; "
      "the meter ignores it or answers with a no_renegotiation alert (or another suitable alert), and does not "
      "renegotiate", group=G, needs=("tls",))
def fr09(s, rec) -> None:  # type: ignore[no-untyped-def]
    p = probe(s, rec, "renegotiation", renegotiate=True, inner=_read_request(s), patience=100)
    _established(p, "handshake")
    rec.figure("answer_to_renegotiation", p.renegotiation_answer)
    check(p.renegotiation_answer is not None and not p.renegotiation_answer.startswith("renegotiated"),
          f"the meter renegotiated ({p.renegotiation_answer})")
    if p.renegotiation_answer.startswith("alert"):
        _alert_note(rec, "renegotiation", p.renegotiation_answer.split()[-1], "no_renegotiation")


@case("TLS_B2_FR_10", "extended_master_secret selected when offered",
      f"{TASK} TLS_B2_FR_10 (optional, EXT_MASTER_SECRET): a ClientHello with the extended_master_secret "
      "extension gets it selected, and the channel works with the RFC 7627 master secret", group=G,
      needs=("tls",), optional="EXT_MASTER_SECRET")
def fr10(s, rec) -> None:  # type: ignore[no-untyped-def]
    p = probe(s, rec, "extended_master_secret offered", extended_master_secret=True, inner=_read_request(s))
    if p.established and 23 not in p.server_extensions:
        raise CaseNotApplicable("the meter does not select extended_master_secret")
    _established(p, "extended_master_secret offered")
    check(23 in p.server_extensions, "extended_master_secret not selected")
    check(p.app_data, f"no application data through the channel ({p.summary()})")


@case("TLS_B2_FR_11", "a client certificate with an invalid signature is refused",
      f"{TASK} TLS_B2_FR_11: the client supplies a certificate whose signature is invalid (the gateway "
      "certificate with one signature byte changed): the meter refuses it with bad_certificate (or another "
      "suitable alert), no connection", group=G, needs=("tls",))
def fr11(s, rec) -> None:  # type: ignore[no-untyped-def]
    _, gw_cert, _ = _need(s)
    broken = bytearray(keys.certificate_der(gw_cert))
    broken[-1] ^= 0x01  # the last byte of the signature value
    p = probe(s, rec, "invalid signature", cert_der=bytes(broken))
    _probe_refused(rec, p, "bad_certificate", "a certificate with an invalid signature")


@case("TLS_B2_FR_12", "compression is not selected",
      f"{TASK} TLS_B2_FR_12 (NO_COMPRESSION): a ClientHello offering DEFLATE (and null) is accepted, DEFLATE is "
      "not selected, and the channel is established", group=G, needs=("tls",))
def fr12(s, rec) -> None:  # type: ignore[no-untyped-def]
    p = probe(s, rec, "DEFLATE offered", compression=(1, 0))
    check(p.server_hello is None or p.compression == 0, f"the meter selected compression {p.compression}")
    _established(p, "DEFLATE offered")


@case("TLS_B2_FR_13", "a connection is not kept beyond the lifetime",
      f"{TASK} TLS_B2_FR_13 (DURATION): the tester keeps an established connection open beyond the session "
      "lifetime (ICS: 744 h; --tls-session-lifetime): the meter closes it before the lifetime plus 5 s has "
      "passed", group=G, needs=("tls",), budget=90.0)
def fr13(s, rec) -> None:  # type: ignore[no-untyped-def]
    _need(s)
    life = _lifetime(s, rec, 5.0)
    start = s.tester.now
    p = probe(s, rec, "held open", hold=True, timeout=life + 35.0)
    took = s.tester.now - start
    rec.figure("closed_after_s", round(took, 3))
    _established(p, "handshake")
    check(p.closed_by_peer, f"the meter did not close the connection ({p.summary()})")
    check(took <= life + 5.0, f"the meter closed the connection only after {took:.1f} s (lifetime {life:g} s)")
    rec.figure("close_notify", any(d == "close_notify" for _, d in p.alerts))


@case("TLS_B2_FR_15", "session resumption by session ID within the lifetime",
      f"{TASK} TLS_B2_FR_15 (optional, SESSION_ID): after a full handshake the tester reconnects at once with "
      "the session ID: the meter resumes the session (abbreviated handshake) and the channel is established",
      group=G, needs=("tls",), optional="SESSION_ID")
def fr15(s, rec) -> None:  # type: ignore[no-untyped-def]
    first = probe(s, rec, "first handshake")
    _established(first, "first handshake")
    session = first.session()
    if session is None or not session.session_id:
        raise CaseNotApplicable("the meter gives no session ID")
    second = probe(s, rec, "resumption", resume=session, inner=_read_request(s))
    if second.established and not second.resumed:
        raise CaseNotApplicable("the meter made a full handshake instead of resuming")
    _established(second, "resumption")
    check(second.resumed, "the session was not resumed")
    check(second.app_data, f"no application data through the resumed session ({second.summary()})")


@case("TLS_B2_FR_16", "session resumption by session ticket within the lifetime",
      f"{TASK} TLS_B2_FR_16 (optional, SESSION_TICKET): a ClientHello indicating session-ticket support gets a "
      "valid ticket in a NewSessionTicket message; reconnecting at once with it, the meter resumes the session "
      "and the channel is established", group=G, needs=("tls",), optional="SESSION_TICKET")
def fr16(s, rec) -> None:  # type: ignore[no-untyped-def]
    first = probe(s, rec, "first handshake", session_ticket=True)
    _established(first, "first handshake")
    session = first.session()
    if session is None or not first.ticket:
        raise CaseNotApplicable("the meter issues no session ticket (no NewSessionTicket)")
    rec.figure("ticket_lifetime_hint_s", first.ticket_lifetime_hint)
    second = probe(s, rec, "resumption", session_ticket=True, resume=session, inner=_read_request(s))
    _established(second, "resumption")
    check(second.resumed, "the meter did not resume the session from its ticket")
    check(second.app_data, f"no application data through the session resumed from the ticket ({second.summary()})")


@case("TLS_B2_FR_18", "a client without certificate is refused",
      f"{TASK} TLS_B2_FR_18: the meter requests client authentication and sends its certificate; the client "
      "answers with an empty Certificate message: the meter refuses with bad_certificate (or another suitable "
      "alert; RFC 5246 7.4.6 names handshake_failure), no channel", group=G, needs=("tls",))
def fr18(s, rec) -> None:  # type: ignore[no-untyped-def]
    p = probe(s, rec, "empty Certificate", key_pem=None, cert_der=None)
    check(p.certificate_request is not None, "the meter did not request client authentication")
    check(p.certificates, "the meter sent no certificate")
    _probe_refused(rec, p, "bad_certificate", "an empty client Certificate")


# --- BAB's own TLS cases ---------------------------------------------------------------------------------

def handshake(s, rec, *, key: bytes | None = None, cert: bytes | None = None, session=None,  # type: ignore[no-untyped-def]
              tamper: bool = False, **kw: Any):
    """A full conversation on selector 1 with the software gateway's (OpenSSL) client, an SML read inside.
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


@case("TLS-APP-01", "SML through TLS with a stock client (OpenSSL)",
      "BAB: the software gateway's OpenSSL client (TLS 1.2, TR suites and groups, both certificates pinned) "
      "completes a handshake and reads 1-0:1.8.0 inside TLS; LMN-STACK.md 4, 6", group=G, needs=("tls",),
      catches=("tls_abort", "tls_wrong_cert"))
def app01(s, rec) -> None:  # type: ignore[no-untyped-def]
    layer, inner, outcome = handshake(s, rec)
    check(layer.established, f"the handshake did not complete: {layer.error or getattr(outcome, 'reason', '')}")
    check(inner.answers and isinstance(inner.answers[0], FileDecoded), "no SML answer file inside TLS")
    check(bodies(inner.answers[0].file, GetProcParameterRes), "the SML answer inside TLS carries no value")
    info = layer.tls.info
    check(info.version == "TLSv1.2", f"negotiated {info.version}")
    check(info.cipher_suite in TR_SUITES.values(), f"negotiated suite {info.cipher_suite} is not a TR suite")


@case("TLS-GRP-01", "each TR group alone is used for ECDHE",
      "BAB: for every curve of the ICS (brainpoolP256r1/384r1/512r1, secp256r1, secp384r1), a ClientHello "
      "offering just that group gets it in the ServerKeyExchange (the LMN's counterpart of TaSK's GP_07_T, "
      "which the LMN mapping does not select)", group=G)
def grp01(s, rec) -> None:  # type: ignore[no-untyped-def]
    got = {}
    for code, name in TR_GROUPS.items():
        f = raw(s, rec, [client_hello(groups=(code,))], name)
        got[name] = f.key_exchange_group
        check(f.key_exchange_group == code, f"offering only {name}: {f.summary()}")
    rec.figure("groups", got)


@case("TLS-MFL-01", "max_fragment_length 512 negotiated and kept",
      "BAB: a client asking for max_fragment_length 512 (RFC 6066, as the reference gateway does) gets it "
      "confirmed and no record from the server is longer; LMN-STACK.md 4", group=G)
def mfl01(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(max_fragment_length=1)], "ClientHello with max_fragment_length 512")
    check(f.server_hello is not None, f"no ServerHello: {f.summary()}")
    rec.figure("largest_record", f.largest_record)
    check(f.extensions.get(1) == b"\x01", "the ServerHello does not confirm max_fragment_length 512")
    check(f.largest_record <= 512, f"a record of {f.largest_record} bytes exceeds 512")


@case("TLS-RI-01", "secure renegotiation indicated",
      "BAB: a ClientHello with TLS_EMPTY_RENEGOTIATION_INFO_SCSV gets an empty renegotiation_info extension in "
      "the ServerHello (RFC 5746 3.6)", group=G)
def ri01(s, rec) -> None:  # type: ignore[no-untyped-def]
    f = raw(s, rec, [client_hello(suites=(*TR_SUITES, 0x00FF))], "ClientHello with the renegotiation SCSV")
    check(f.server_hello is not None, f"no ServerHello: {f.summary()}")
    rec.figure("server_extensions", sorted(f.extensions))
    check(f.extensions.get(0xFF01) == b"\x00", "no empty renegotiation_info in the ServerHello")


@case("TLS-PIN-01", "a client certificate other than the pinned one is refused",
      "BAB: a client authenticating with a valid certificate that is not the gateway certificate the meter "
      "pinned at pairing gets a fatal alert, no session; LMN-STACK.md 4 (certificates)", group=G, needs=("tls",))
def pin01(s, rec) -> None:  # type: ignore[no-untyped-def]
    key, cert = keys.generate_identity("NOT-THE-GATEWAY", keys.Curve.BRAINPOOL_P256R1)
    p = probe(s, rec, "foreign client certificate", key_pem=key, cert_der=keys.certificate_der(cert))
    _probe_refused(rec, p, "bad_certificate", "a foreign client certificate")


@case("TLS-BAD-01", "garbage instead of a ClientHello: a fatal alert, then TLS works again",
      "BAB: malformed handshake input (a record that is not a ClientHello, bytes that are no record) ends the "
      "connection with a fatal alert; the meter stays usable", group=G)
def bad01(s, rec) -> None:  # type: ignore[no-untyped-def]
    junk = [bytes.fromhex("1703030010") + bytes(16), bytes.fromhex("16030100040e000000"), b"\x80\x2e\x01garbage!"]
    answers = []
    for r in junk:
        f = raw(s, rec, [r], "malformed")
        answers.append(f.summary())
        check(f.server_hello is None, f"malformed input {r[:6].hex()} answered with a ServerHello")
    rec.figure("answers", answers)
    f = raw(s, rec, [client_hello()], "ClientHello after the garbage")
    check(f.server_hello is not None, f"after the malformed input a correct ClientHello got {f.summary()}")


@case("TLS-MAC-01", "a tampered record ends the connection",
      "BAB: an application-data record whose authentication tag does not verify is not processed; the meter "
      "ends the connection (RFC 5246 6.2.3: bad_record_mac)", group=G, needs=("tls",))
def mac01(s, rec) -> None:  # type: ignore[no-untyped-def]
    layer, inner, outcome = handshake(s, rec, tamper=True)
    check(layer.established, "the handshake did not complete")
    check(not inner.answers, "the meter answered the request of a tampered record")
    check(isinstance(outcome, ev.ExchangeFailed), "the connection ended cleanly after a tampered record")
