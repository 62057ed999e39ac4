"""Full commissioning over the virtual bus (virtual time): an unregistered meter gets an address, is paired by
SYM on selector 6, is read through TLS on selector 1, is crypto-reset, and is paired again with a new gateway
certificate. Plain SML on selector 3 is refused with DM once TLS is required. Failed pairings (wrong MK, bad
CMAC) change no state and leave the meter pairable."""

from __future__ import annotations

import pytest
from lmn_helpers import RequestClient
from test_tls_hdlc_support import METER_ID, MK, SERVER_ID, Link, reversing

from bab.gateway.security import GatewaySecurity
from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.security import MeterSecurity, TlsOptions
from bab.tls import keys, wolfssl_binding
from bab.tls.errors import TlsFailure
from bab.tls.hdlc_layer import InlineExecutor

pytestmark = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")

OTHER_MK = bytes.fromhex("ffeeddccbbaa99887766554433221100")


class Meter:
    def __init__(self, tmp_path, tls: TlsOptions | None = None, mk: bytes | None = MK) -> None:
        self.counters: dict[str, int] = {}
        self.log: list[bytes] = []
        self.sec = MeterSecurity(tmp_path / "meters" / METER_ID, SERVER_ID, METER_ID, tls, counters=self.counters,
                                 executor=InlineExecutor())
        if mk is not None:
            self.sec.store.set_master_key(mk)
        self.link = Link(lambda sel: self.sec.layer_for(sel, reversing(self.log)))


def plain_read(link: Link, payload: bytes = b"plain") -> tuple[object, RequestClient]:
    client = RequestClient(payload)
    return link.converse(Selector.SML_COSEM, client), client


def tls_read(link: Link, gw: GatewaySecurity, payload: bytes = b"GetProcParameter 1-0:1.8.0"):
    client = RequestClient(payload)
    result = link.converse(Selector.TLS_SML_COSEM, gw.tls_client(SERVER_ID, client))
    return result, client


def pair(link: Link, gw: GatewaySecurity, mk: bytes = MK, wrap=None, max_idle_polls: int = 50):
    results = []
    client = gw.pairing_client(SERVER_ID, mk, on_result=results.append, max_idle_polls=max_idle_polls)
    layer = wrap(client) if wrap is not None else client
    conv = link.converse(Selector.SYM_HDLC, layer)
    assert len(results) == 1
    return conv, results[0]


def test_full_commissioning(tmp_path) -> None:
    m = Meter(tmp_path)
    link, sec = m.link, m.sec
    assert link.station.address is not None  # unregistered -> address (Link registers it)
    assert sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}

    # before pairing: plain SML works, TLS is refused (no gateway certificate known)
    result, client = plain_read(link)
    assert isinstance(result, ev.ConversationDone) and client.answer == b"nialp"
    gw = GatewaySecurity(tmp_path / "gw1")
    result = link.converse(Selector.TLS_SML_COSEM, RequestClient(b"x"))
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"

    # SYM pairing on selector 6 (route a, as the reference gateway does it: the gateway injects a key and a
    # certificate it generated for the meter; the meter uses them for TLS from now on)
    conv, res = pair(link, gw)
    assert isinstance(conv, ev.ConversationDone) and res.ok, res
    own = sec.own_identity(create=False)
    assert own is not None and own[2] == "sym-injected"
    assert res.meter_cert_der == keys.certificate_der(own[1]) == gw.meter_certificate(SERVER_ID)
    assert keys.curve_of(keys.load_certificate(own[1]).public_key()) is gw.curve
    assert sec.paired and sec.gateway_certificate() == (gw.certificate_der(), "sym-pairing")
    assert m.counters["pairings"] == 1

    # TLS is now required: plain SML and re-pairing are refused with DM
    assert sec.selectors() == {Selector.TLS_SML_COSEM}
    result, client = plain_read(link)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)" and client.answer is None
    conv, res = pair(link, gw)
    assert not res.ok and isinstance(conv, ev.ExchangeFailed) and "DM" in conv.reason

    # application read through TLS on selector 1
    result, client = tls_read(link, gw)
    assert isinstance(result, ev.ConversationDone) and client.answer == b"0.8.1:0-1 retemaraPcorPteG"
    assert sec.tls_up is False and m.counters["tls_sessions"] == 1  # closed again after DISC
    result, client = tls_read(link, gw, b"second read, resumed")
    assert isinstance(result, ev.ConversationDone) and client.answer == b"demuser ,daer dnoces"

    # crypto-reset (the COSEM object 1-0:94.49.0*7 calls this): unpaired, back to MK, pin wiped
    sec.crypto_reset()
    assert not sec.paired and sec.gateway_certificate() is None
    assert sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}
    assert sec.pairing_state().master_key == MK
    result, _ = tls_read(link, gw)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    gw.forget_meter(SERVER_ID)

    # re-pairing with a new gateway certificate, route (b) this time: the meter answers its own certificate
    gw2 = GatewaySecurity(tmp_path / "gw2", curve="brainpoolP384r1", inject=False)
    assert gw2.certificate_der() != gw.certificate_der()
    conv, res = pair(link, gw2)
    assert res.ok and sec.gateway_certificate() == (gw2.certificate_der(), "sym-pairing")
    own = sec.own_identity(create=False)
    assert own is not None and own[2] == "generated" and res.meter_cert_der == keys.certificate_der(own[1])
    result, client = tls_read(link, gw2, b"new gateway")
    assert isinstance(result, ev.ConversationDone) and client.answer == b"yawetag wen"

    # the old gateway (still holding the meter's certificate) is refused by the new pin
    gw.store_meter_certificate(SERVER_ID, res.meter_cert_der)
    failures = m.counters.get("tls_failures", 0)
    result, _ = tls_read(link, gw)
    assert isinstance(result, ev.ExchangeFailed)
    assert m.counters["tls_failures"] == failures + 1
    result, client = tls_read(link, gw2, b"still fine")
    assert isinstance(result, ev.ConversationDone) and client.answer == b"enif llits"


def state_bytes(sec: MeterSecurity) -> bytes:
    return sec.store.path.read_bytes()


def test_wrong_master_key_changes_nothing_and_meter_stays_pairable(tmp_path) -> None:
    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    before = state_bytes(m.sec)
    conv, res = pair(m.link, gw, mk=OTHER_MK)
    assert not res.ok and res.reason == "refused_by_meter"  # unauthenticated: only the rejection notice
    assert state_bytes(m.sec) == before and not m.sec.paired
    assert m.counters["sym_failures"] >= 1
    assert gw.meter_certificate(SERVER_ID) is None
    conv, res = pair(m.link, gw)
    assert res.ok and m.sec.paired


class FlipByte:
    """Corrupts one byte of the n-th SYM request the gateway sends (a bad CMAC for the meter)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.count = inner, n, 0

    def data_to_send(self, max_size: int) -> bytes:
        data = self.inner.data_to_send(max_size)
        if data:
            self.count += 1
            if self.count == self.n:
                b = bytearray(data)
                b[-1] ^= 0x01
                return bytes(b)
        return data

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("n", [1, 3, 5])
def test_bad_cmac_changes_nothing_and_meter_stays_pairable(tmp_path, n: int) -> None:
    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    before = m.sec.pairing_state()
    conv, res = pair(m.link, gw, wrap=lambda c: FlipByte(c, n))
    assert not res.ok
    after = m.sec.pairing_state()
    assert not after.paired and after.peer_certificate is None and after.master_key == before.master_key
    assert m.counters["sym_failures"] >= 1
    assert m.sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}
    conv, res = pair(m.link, gw)
    assert res.ok and m.sec.paired


def test_meter_without_master_key_refuses_selector_6(tmp_path) -> None:
    m = Meter(tmp_path, mk=None)
    assert m.sec.selectors() == {Selector.SML_COSEM}
    conv, res = pair(m.link, GatewaySecurity(tmp_path / "gw"))
    assert not res.ok and isinstance(conv, ev.ExchangeFailed) and conv.reason == "refused (DM)"


def test_provisioned_gateway_certificate_requires_tls(tmp_path) -> None:
    """Installs provisioned elsewhere: gateway certificate from a YAML file; plain SML is refused."""
    gw = GatewaySecurity(tmp_path / "gw")
    key, cert = keys.generate_identity(METER_ID, "secp384r1")
    keys.save_private_key(tmp_path / "meter-key.pem", key)
    keys.save_certificate(tmp_path / "meter-cert.pem", cert)
    keys.save_certificate(tmp_path / "gw.pem", gw.credentials()[1])
    opts = TlsOptions(tmp_path / "meter-key.pem", tmp_path / "meter-cert.pem", tmp_path / "gw.pem")
    m = Meter(tmp_path, opts, mk=None)
    assert m.sec.selectors() == {Selector.TLS_SML_COSEM}
    result, client = plain_read(m.link)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    gw.store_meter_certificate(SERVER_ID, cert)  # the gateway side got the meter certificate out of band
    result, client = tls_read(m.link, gw)
    assert isinstance(result, ev.ConversationDone) and client.answer is not None
    assert m.sec.own_identity()[2] == "config"


def test_imported_gateway_certificate_requires_tls_until_crypto_reset(tmp_path) -> None:
    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    m.sec.import_gateway_certificate(gw.credentials()[1])
    assert m.sec.selectors() == {Selector.TLS_SML_COSEM, Selector.SYM_HDLC}
    result, _ = plain_read(m.link)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    gw.store_meter_certificate(SERVER_ID, m.sec.own_identity()[1])
    result, client = tls_read(m.link, gw)
    assert isinstance(result, ev.ConversationDone) and client.answer is not None
    m.sec.crypto_reset()
    assert m.sec.selectors() == {Selector.SML_COSEM, Selector.SYM_HDLC}
    result, client = plain_read(m.link)
    assert isinstance(result, ev.ConversationDone)


def test_software_gateway_crypto_reset_job_forgets_the_meter(tmp_path) -> None:
    """The gateway's crypto-reset conversation (test layer in place of SML SetProcParameter)."""
    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    pair(m.link, gw)

    class ResetRequest(RequestClient):
        def __init__(self) -> None:
            super().__init__(b"SET 1-0:94.49.0*7 TRUE")

    # meter side: the inner server performs the crypto-reset when it sees the request
    def inner():
        from lmn_helpers import ReversingServer

        class ResetServer(ReversingServer):
            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                if self.received and self.received[-1].startswith(b"SET 1-0:94.49.0*7"):
                    m.sec.crypto_reset()

        return ResetServer()

    m.link.station.layers = lambda sel: m.sec.layer_for(sel, inner)
    job = gw.crypto_reset_job(SERVER_ID, ResetRequest, confirm=lambda c: c.answer is not None)
    result = m.link.converse(job.selector, job.layer)
    assert isinstance(result, ev.ConversationDone)
    assert not m.sec.paired and gw.meter_certificate(SERVER_ID) is None
    conv, res = pair(m.link, gw)
    assert res.ok


def test_tls_failure_counts_for_the_meter(tmp_path) -> None:
    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    pair(m.link, gw)
    intruder = GatewaySecurity(tmp_path / "intruder")
    intruder.store_meter_certificate(SERVER_ID, gw.meter_certificate(SERVER_ID))
    result, _ = tls_read(m.link, intruder)
    assert isinstance(result, ev.ExchangeFailed)
    assert m.counters["tls_failures"] == 1
    assert m.link.events and TlsFailure.PEER_ALERT.value in result.reason
    result, client = tls_read(m.link, gw)
    assert isinstance(result, ev.ConversationDone)


def test_default_worker_thread_wiring(tmp_path) -> None:
    """MeterSecurity without an explicit executor: TLS handshake steps and SYM steps run in the shared
    worker thread; pairing and a TLS read work over the link."""
    counters: dict[str, int] = {}
    log: list[bytes] = []
    sec = MeterSecurity(tmp_path / "m", SERVER_ID, METER_ID, counters=counters)
    sec.store.set_master_key(MK)
    link = Link(lambda sel: sec.layer_for(sel, reversing(log)))
    gw = GatewaySecurity(tmp_path / "gw", curve="brainpoolP512r1")
    conv, res = pair(link, gw, max_idle_polls=10**7)  # RNR polls count as idle; many in virtual time
    assert res.ok and sec.paired
    result, client = tls_read(link, gw)
    assert isinstance(result, ev.ConversationDone) and client.answer is not None
    assert counters == {"pairings": 1, "tls_sessions": 1}


def test_system_clock_policy_refuses_an_expired_gateway_certificate(tmp_path) -> None:
    import datetime as dt

    from bab.tls.policy import ValidityPolicy

    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    gk, gc = keys.generate_identity("OLD-SMGW", "secp256r1", not_before=start, validity=dt.timedelta(days=30))
    gw = GatewaySecurity(tmp_path / "gw")
    keys.save_certificate(gw.cert_path, gc)
    keys.save_private_key(gw.key_path, gk)
    results = {}
    for policy in (ValidityPolicy.IGNORE, ValidityPolicy.SYSTEM_CLOCK):
        m = Meter(tmp_path / policy.value, TlsOptions(validity=policy))
        m.sec.import_gateway_certificate(gc)
        gw.store_meter_certificate(SERVER_ID, m.sec.own_identity()[1])
        result, _ = tls_read(m.link, gw)
        results[policy] = (type(result).__name__, m.counters.get("tls_failures", 0))
    assert results == {ValidityPolicy.IGNORE: ("ConversationDone", 0),
                       ValidityPolicy.SYSTEM_CLOCK: ("ExchangeFailed", 1)}


def test_software_gateway_reader_pairs_then_reads_over_tls(tmp_path) -> None:
    """GatewaySecurity.reader in the software gateway: a meter whose MK it holds is paired first (selector 6),
    then read through TLS (selector 1)."""
    import random

    from lmn_helpers import FAST_GATEWAY

    from bab.gateway.app import SoftwareGateway
    from bab.hdlc.secondary import MeterStation
    from bab.hdlc.timing import MeterTiming
    from bab.lmn.bus import VirtualBus
    from bab.lmn.node import LinkNode
    from bab.lmn.simulation import Simulation

    counters: dict[str, int] = {}
    log: list[bytes] = []
    sec = MeterSecurity(tmp_path / "m", SERVER_ID, METER_ID, counters=counters, executor=InlineExecutor())
    sec.store.set_master_key(MK)
    gws = GatewaySecurity(tmp_path / "gw")
    reports: list[str] = []
    sw = SoftwareGateway(FAST_GATEWAY, reader=gws.reader(lambda: RequestClient(b"read 1.8.0"), {SERVER_ID: MK}),
                         poll_interval=1.0, report=reports.append)
    station = MeterStation(SERVER_ID, lambda sel: sec.layer_for(sel, reversing(log)), MeterTiming(),
                           rng=random.Random(3))
    sim = Simulation(VirtualBus())
    sim.add("gw", LinkNode([sw]))
    sim.add("bab", LinkNode([station]))
    sim.at(0.0, lambda: None)  # first step: the software gateway starts broadcasting
    assert sim.run_for(30.0, lambda: sw.polls_done >= 3)
    assert sec.paired and counters["pairings"] == 1 and counters["tls_sessions"] >= 2
    assert log[:2] == [b"read 1.8.0", b"read 1.8.0"]
    assert not any("failed" in r for r in reports), reports


@pytest.mark.parametrize("by", ["session-id", "ticket"])
def test_sessions_resume_within_a_pairing_but_not_across_a_crypto_reset(tmp_path, caplog, by) -> None:
    """After a crypto-reset and a re-pairing with the same gateway certificate, a session from before the
    reset must not be resumed (its keys count as wiped). By session ID: wolfSSL's session cache is
    process-wide, the session filter refuses it. By ticket: the new TLS context's ticket keys cannot open it."""
    import ssl

    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    pair(m.link, gw)
    if by == "session-id":
        gw.tls_context(SERVER_ID).ssl_context.options |= ssl.OP_NO_TICKET
    first = gw.tls_client(SERVER_ID, RequestClient(b"one"))
    assert isinstance(m.link.converse(Selector.TLS_SML_COSEM, first), ev.ConversationDone)
    assert not first.tls.info.session_reused
    second = gw.tls_client(SERVER_ID, RequestClient(b"two"))
    assert isinstance(m.link.converse(Selector.TLS_SML_COSEM, second), ev.ConversationDone)
    assert second.tls.info.session_reused  # resumption within the pairing works
    old_session, old_ctx = second.tls.session, gw.tls_context(SERVER_ID)

    m.sec.crypto_reset()
    conv, res = pair(m.link, gw)
    assert res.ok and gw.meter_certificate(SERVER_ID) == res.meter_cert_der
    from bab.tls.hdlc_layer import TlsClientLayer

    client = RequestClient(b"stale")
    stale = TlsClientLayer(old_ctx.new_connection(session=old_session), client)
    result = m.link.converse(Selector.TLS_SML_COSEM, stale)
    assert isinstance(result, ev.ExchangeFailed) and client.answer is None and m.log.count(b"stale") == 0
    assert old_session.has_ticket == (by == "ticket")
    if by == "session-id":
        assert m.counters["tls_failures"] == 1 and "before the last crypto-reset" in caplog.text
    else:  # a full handshake instead, which the stale client ends: it still pins the meter's old certificate
        assert stale.tls.info is None or not stale.tls.info.session_reused
    result, client = tls_read(m.link, gw, b"fresh")  # a full handshake works
    assert isinstance(result, ev.ConversationDone) and client.answer == b"hserf"


def test_route_a_injected_key_is_used_for_tls(tmp_path) -> None:
    """Route (a): the gateway injects the meter's key + certificate during pairing; TLS then uses them."""
    from bab.sym.profile import Credentials

    m = Meter(tmp_path)
    gw = GatewaySecurity(tmp_path / "gw")
    key_pem, cert_pem = keys.generate_identity(METER_ID, "brainpoolP384r1")
    creds = Credentials(keys.certificate_der(cert_pem), keys.private_key_der(key_pem))
    results = []
    client = gw.pairing_client(SERVER_ID, MK, on_result=results.append, meter_credentials=creds)
    assert isinstance(m.link.converse(Selector.SYM_HDLC, client), ev.ConversationDone)
    assert results[0].ok and results[0].meter_cert_der == creds.certificate
    assert m.sec.own_identity()[2] == "sym-injected"
    result, answer = tls_read(m.link, gw, b"injected")
    assert isinstance(result, ev.ConversationDone) and answer.answer == b"detcejni"
    m.sec.crypto_reset()
    assert m.sec.own_identity()[2] == "generated"  # the injected key is wiped with the pairing
