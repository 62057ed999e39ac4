"""The conformance suite's TLS probe (bab/conformance/tls_probe.py, pure Python on `cryptography`) against
BAB's meter-side TLS server (wolfSSL): two independent implementations that must agree on every TR suite,
group and signature algorithm, encrypt-then-MAC, extended master secret and resumption; the server's answers to
what TaSK's cases send (truncated_hmac, DEFLATE, renegotiation, no or a broken client certificate); the
probe's own checks (a tampered server record or a wrong Finished is caught); and the ClientHello summary's
last-extension fix the probe found."""

from __future__ import annotations

import pytest
from lmn_helpers import ReversingServer, frame_message

from bab.conformance.tls_hello import TR_GROUPS, TR_SIGALGS, TR_SUITES, build_client_hello
from bab.conformance.tls_probe import CBC_SUITES, ProbeOptions, TlsProbe
from bab.tls import keys, wolfssl_binding
from bab.tls.hdlc_layer import InlineExecutor, TlsLayerClosed, TlsServerLayer
from bab.tls.keys import Curve
from bab.tls.meter_server import MeterTlsContext
from bab.tls.records import parse_client_hello

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")


class Ping:
    """Inner client layer: one length-prefixed request (the ReversingServer's framing), done once the whole
    answer is in; ``got`` is the answer's payload."""

    def __init__(self, data: bytes = b"ping") -> None:
        self.out, self.raw = bytearray(frame_message(data)), b""

    def data_to_send(self, max_size: int) -> bytes:
        chunk = bytes(self.out[:max_size])
        del self.out[:max_size]
        return chunk

    @property
    def got(self) -> bytes:
        return self.raw[2:]

    def data_received(self, data: bytes) -> None:
        self.raw += data

    def is_done(self) -> bool:
        return len(self.raw) >= 2 and len(self.raw) >= 2 + int.from_bytes(self.raw[:2], "big")

    def connection_lost(self, reason: str | None) -> None:
        pass


def run(probe: TlsProbe, server: TlsServerLayer, *, tamper_server: bool = False, rounds: int = 400) -> TlsProbe:
    """Stop-and-wait exchange as the stations do it (I frames of 2036 bytes)."""
    flipped = False
    for _ in range(rounds):
        if probe.is_done():
            return probe
        data = probe.data_to_send(2036)
        try:
            if data:
                server.data_received(data)
            answer = server.data_to_send(2036)
        except TlsLayerClosed:
            probe.connection_lost("DM")
            return probe
        if answer and tamper_server and not flipped and answer[0] == 23:  # the first application-data record
            answer = answer[:-1] + bytes([answer[-1] ^ 1])
            flipped = True
        if answer:
            probe.data_received(answer)
    raise AssertionError("exchange did not finish")


@pytest.fixture(scope="module")
def lab():
    """(meter context, gateway key, gateway certificate DER): a brainpool meter, a P-256 gateway."""
    mk, mc = keys.generate_identity("1BAB0000000042", Curve.BRAINPOOL_P256R1)
    gk, gc = keys.generate_identity("SMGW", Curve.SECP256R1)
    return MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc), gk, keys.certificate_der(gc)


def _probe(lab, inner=None, **kw) -> tuple[TlsProbe, TlsServerLayer]:
    sctx, gk, gc = lab
    kw.setdefault("key_pem", gk)
    kw.setdefault("cert_der", gc)
    p = TlsProbe(ProbeOptions(**kw), inner)
    server = TlsServerLayer(sctx.new_connection(), ReversingServer, executor=InlineExecutor())
    return run(p, server), server


@pytest.mark.parametrize("suite", list(TR_SUITES))
@pytest.mark.parametrize("extras", [{}, {"encrypt_then_mac": True}, {"extended_master_secret": True}])
def test_every_suite_with_and_without_etm_and_ems_carries_data(lab, suite, extras):
    inner = Ping(b"x" * 700)
    p, server = _probe(lab, inner, suites=(suite,), **extras)
    assert p.established and server.established, p.summary()
    assert p.suite == suite and inner.got == b"x" * 700  # the ReversingServer's answer, decrypted by the probe
    assert p.certificate_request is not None and p.certificate_request["sigalgs"]
    assert (22 in p.server_extensions) == (extras.get("encrypt_then_mac", False) and suite in CBC_SUITES)
    assert (23 in p.server_extensions) == extras.get("extended_master_secret", False)


@pytest.mark.parametrize("group", list(TR_GROUPS))
def test_every_group(lab, group):
    p, _ = _probe(lab, Ping(), groups=(group,))
    assert p.established and p.ske_group == group


@pytest.mark.parametrize("alg", TR_SIGALGS)
def test_every_signature_algorithm_signs_the_key_exchange(lab, alg):
    p, _ = _probe(lab, Ping(), sigalgs=(alg,))
    assert p.established and p.ske_sigalg == alg


def test_resumption_by_session_id_is_abbreviated(lab):
    first, _ = _probe(lab, Ping(), extended_master_secret=True)
    session = first.session()
    assert session is not None and session.session_id and session.ems
    inner = Ping(b"again")
    second, _ = _probe(lab, inner, resume=session, extended_master_secret=True)
    assert second.resumed and second.established and not second.certificates and inner.got == b"niaga"


def test_truncated_hmac_is_refused_by_the_meter(lab):
    """wolfSSL would select it (no switch to ignore it); BAB refuses the ClientHello instead."""
    p, server = _probe(lab, suites=(CBC_SUITES[0],), truncated_hmac=True)
    assert not p.established and p.alert == "handshake_failure" and 4 not in p.server_extensions
    assert server.error is not None and "truncated_hmac" in server.error.detail


def test_truncated_hmac_with_a_gcm_suite_on_offer_is_served_on_gcm(lab):
    """The extension is echoed (wolfSSL cannot help it) but the suite is AEAD: no MAC to truncate."""
    inner = Ping(b"gcm only")
    p, _ = _probe(lab, inner, suites=(0xC023, 0xC024, 0xC02B), truncated_hmac=True, accept_truncated_hmac=True)
    assert p.established and p.suite == 0xC02B and 4 in p.server_extensions and inner.got == b"ylno mcg"


def test_only_signature_algorithms_outside_the_lmn_are_refused(lab):
    from bab.conformance.tls_hello import OTHER_SIGALGS
    from bab.tls.errors import TlsFailure

    p, server = _probe(lab, sigalgs=tuple(OTHER_SIGALGS))
    assert not p.established and p.alert == "handshake_failure"
    assert server.error is not None and server.error.reason is TlsFailure.NO_SHARED_CIPHER


def test_deflate_offered_null_chosen(lab):
    p, _ = _probe(lab, Ping(), compression=(1, 0))
    assert p.established and p.compression == 0


def test_renegotiation_is_refused_with_an_alert(lab):
    p, _ = _probe(lab, Ping(), renegotiate=True, patience=20)
    assert p.established and p.renegotiation_answer == "alert fatal unexpected_message"


@pytest.mark.parametrize("broken", ["empty", "bad signature", "foreign"])
def test_client_certificates_the_meter_refuses(lab, broken):
    der = lab[2]
    if broken == "empty":
        kw = {"key_pem": None, "cert_der": None}
    elif broken == "bad signature":
        kw = {"cert_der": der[:-1] + bytes([der[-1] ^ 1])}
    else:
        key, cert = keys.generate_identity("OTHER", Curve.SECP256R1)
        kw = {"key_pem": key, "cert_der": keys.certificate_der(cert)}
    p, _ = _probe(lab, Ping(), **kw)
    assert not p.established and p.alert in ("bad_certificate", "handshake_failure"), p.summary()


@pytest.mark.parametrize("suite", [0xC02B, 0xC023])
def test_the_probe_catches_a_tampered_server_record(lab, suite):
    sctx, gk, gc = lab
    inner = Ping()
    p = TlsProbe(ProbeOptions(key_pem=gk, cert_der=gc, suites=(suite,)), inner)
    server = TlsServerLayer(sctx.new_connection(), ReversingServer, executor=InlineExecutor())
    run(p, server, tamper_server=True)
    assert p.established and not inner.got and p.error, p.summary()
    assert "does not authenticate" in p.error or "padding" in p.error


def test_the_probe_catches_a_wrong_finished(lab, monkeypatch):
    import bab.conformance.tls_probe as tp

    real = tp.prf

    def wrong(secret, label, seed, length, hash_name):
        out = real(secret, label, seed, length, hash_name)
        return bytes(12) if label == b"server finished" else out

    monkeypatch.setattr(tp, "prf", wrong)
    p, _ = _probe(lab, Ping())
    assert not p.established and p.error == "the server's Finished does not verify"


def test_the_connection_ends_after_the_session_lifetime(lab):
    """TlsServerLayer on a clock: past max_age_s the meter sends close_notify, then ends the connection."""
    sctx, gk, gc = lab
    now = [100.0]
    server = TlsServerLayer(sctx.new_connection(), ReversingServer, executor=InlineExecutor(),
                            clock=lambda: now[0], max_age_s=60.0)
    p = TlsProbe(ProbeOptions(key_pem=gk, cert_der=gc, hold=True))
    for _ in range(50):
        data = p.data_to_send(2036)
        if data:
            server.data_received(data)
        answer = server.data_to_send(2036)
        if answer:
            p.data_received(answer)
    assert p.established and not p.closed_by_peer and server.established_at == 100.0
    now[0] = 159.0
    assert server.data_to_send(2036) == b"" and not server.expired
    now[0] = 160.0
    p.data_received(server.data_to_send(2036))
    assert server.expired and ("warning", "close_notify") in p.alerts and p.closed_by_peer
    with pytest.raises(TlsLayerClosed):
        server.data_to_send(2036)


@pytest.mark.parametrize("last", [(4, b""), (1, b"\x01"), (10, b"\x00\x02\x00\x17")])
def test_the_client_hello_summary_reads_the_last_extension(last):
    """The extensions block's end was computed 2 bytes short: a last extension of <= 2 bytes was lost."""
    body = build_client_hello(client_random=bytes(32), groups=(), sigalgs=TR_SIGALGS, extensions=[last])
    record = b"\x16\x03\x03" + (len(body) + 4).to_bytes(2, "big") + b"\x01" + len(body).to_bytes(3, "big") + body
    hello = parse_client_hello(record)
    assert hello is not None
    code = last[0]
    if code == 4:
        assert hello.truncated_hmac
    elif code == 1:
        assert hello.max_fragment_length == 1
    else:
        assert hello.groups == [23]


def _ticket_session(lab, **kw):
    first, _ = _probe(lab, Ping(), session_ticket=True, **kw)
    assert first.established and first.ticket and first.ticket_lifetime_hint
    return first.session()


def test_session_tickets_are_issued_again_and_again_and_resume(lab):
    """BAB's own ticket callback: wolfSSL 5.5.4's default one failed the second ticket of a 744 h context."""
    for _ in range(3):
        session = _ticket_session(lab)
        assert not session.session_id  # wolfSSL sends no session ID with a ticket
        inner = Ping(b"ticket")
        again, _ = _probe(lab, inner, session_ticket=True, resume=session)
        assert again.resumed and again.established and inner.got == b"tekcit"


@pytest.mark.parametrize("spoil", ["ticket", "key name", "other context"])
def test_a_spoilt_or_foreign_ticket_gets_a_full_handshake(lab, spoil):
    import dataclasses

    session = _ticket_session(lab)
    t = bytearray(session.ticket)
    if spoil == "ticket":
        t[-40] ^= 1  # inside the encrypted state
    elif spoil == "key name":
        t[15] ^= 1  # the issue time in the key name (authenticated)
    session = dataclasses.replace(session, ticket=bytes(t))
    if spoil == "other context":
        mk, mc = keys.generate_identity("1BAB0000000042", Curve.BRAINPOOL_P256R1)
        gk, gc = lab[1], lab[2]
        lab = (MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=gc), gk, gc)
    inner = Ping()
    p, _ = _probe(lab, inner, session_ticket=True, resume=session)
    assert p.established and not p.resumed and p.certificates and inner.got == b"gnip"


def test_a_ticket_older_than_the_session_lifetime_gets_a_full_handshake(lab):
    import time

    mk, mc = keys.generate_identity("1BAB0000000042", Curve.SECP256R1)
    short = (MeterTlsContext(key_pem=mk, cert_pem=mc, peer_cert_pem=lab[2], session_lifetime_s=1), lab[1], lab[2])
    session = _ticket_session(short)
    again, _ = _probe(short, Ping(), session_ticket=True, resume=session)
    assert again.resumed
    time.sleep(2.2)
    late, _ = _probe(short, Ping(), session_ticket=True, resume=session)
    assert late.established and not late.resumed


@pytest.mark.parametrize("size", [1, 32, 48, 174, 175, 206])
def test_a_garbage_ticket_gets_a_full_handshake(lab, size):
    from bab.conformance.tls_probe import ProbeSession

    junk = ProbeSession(b"\x01" * 32, bytes(48), 0xC02B, False, bytes((i * 37) & 0xFF for i in range(size)))
    p, _ = _probe(lab, Ping(), session_ticket=True, resume=junk)
    assert p.established and not p.resumed


def test_an_oversized_ticket_is_refused_by_wolfssl(lab):
    """wolfSSL refuses a ticket longer than its ticket buffer (206 bytes at most here) outright, with no full
    handshake: a clear error, no crash."""
    from bab.conformance.tls_probe import ProbeSession

    junk = ProbeSession(b"\x01" * 32, bytes(48), 0xC02B, False, bytes(207))
    p, server = _probe(lab, Ping(), session_ticket=True, resume=junk)
    assert not p.established and p.alert == "handshake_failure"
    assert server.error is not None and "ticket" in server.error.detail.lower()


def test_the_probe_survives_mutated_server_flights(lab):
    """Whatever a meter sends, the probe ends with an error (and its alert) or gives up waiting; never an
    exception, never an established channel."""
    import random

    sctx, gk, gc = lab
    rng = random.Random(7)
    outcomes = {"error": 0, "alert": 0, "waiting": 0, "established": 0}
    for _ in range(150):
        p = TlsProbe(ProbeOptions(key_pem=gk, cert_der=gc), Ping())
        server = sctx.new_connection()
        server.receive_bytes(p.data_to_send(4000))
        flight = bytearray(b"".join(server.records_to_send()))
        for _ in range(rng.randint(1, 4)):
            flight[rng.randrange(len(flight))] = rng.randrange(256)
        p.data_received(bytes(flight[: rng.randint(1, len(flight))] if rng.random() < 0.2 else flight))
        if p.error:
            outcomes["error"] += 1
            assert p.is_done() is False or p.data_to_send(4000) == b""  # the alert goes out first
        elif p.alerts:
            outcomes["alert"] += 1
        elif p.established:
            outcomes["established"] += 1
        else:  # a length was hit: it waits for more, and gives up after its patience
            outcomes["waiting"] += 1
            for _ in range(p.o.patience + 2):
                p.data_to_send(4000)
            assert p.is_done() and not p.established
    assert outcomes["established"] == 0 and outcomes["error"] > 75, outcomes
