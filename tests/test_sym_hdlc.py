"""SYM as the HDLC upper layer of selector 6 (virtual bus, virtual time): pairing over the link, messages split
over several I-frames, abandoned pairings, counted failures, and the gateway-side client's outcomes."""

from __future__ import annotations

import pytest
from test_sym_support import gw_cert, make_cert
from test_tls_hdlc_support import MK, SERVER_ID, Link

from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.sym import PersistentSymMeter, Profile2015, SymGateway, SymStore
from bab.sym.hdlc_layer import PairingResult, SymPairingClient, SymServerLayer

SYM = Selector.SYM_HDLC


class MeterSide:
    def __init__(self, tmp_path, profile: Profile2015 | None = None) -> None:
        self.profile = profile
        self.store = SymStore(tmp_path / "sym.json")
        self.store.set_master_key(MK)
        self.failures: list[str] = []
        self.paired: list[object] = []
        self.layers: list[SymServerLayer] = []

    def layer(self, selector: int):
        if selector != SYM:
            return None
        sym = PersistentSymMeter(self.store, SERVER_ID, own_certificate=make_cert("meter-own")[0],
                                 profile=self.profile)
        layer = SymServerLayer(sym, on_failure=self.failures.append, on_paired=self.paired.append, name="m")
        self.layers.append(layer)
        return layer


class Chunked:
    """Sends the pairing client's messages in pieces of ``size`` bytes (several I-frames per message)."""

    def __init__(self, inner: SymPairingClient, size: int) -> None:
        self.inner, self.size = inner, size

    def data_to_send(self, max_size: int) -> bytes:
        return self.inner.data_to_send(min(max_size, self.size))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def client(mk: bytes = MK, **kw) -> SymPairingClient:
    return SymPairingClient(SymGateway(mk, SERVER_ID, gw_cert()), **kw)


@pytest.mark.parametrize("chunk", [2036, 50, 7])
def test_pairing_over_the_link(tmp_path, chunk: int) -> None:
    meter = MeterSide(tmp_path)
    link = Link(meter.layer)
    c = client()
    result = link.converse(SYM, Chunked(c, chunk))
    assert isinstance(result, ev.ConversationDone)
    assert c.result.ok and c.result.meter_cert_der == make_cert("meter-own")[0]
    state = meter.store.load()
    assert state.paired and state.peer_certificate == gw_cert()
    assert len(meter.paired) == 1 and meter.failures == []


def test_abandoned_pairing_is_counted_and_changes_nothing_persistent(tmp_path) -> None:
    meter = MeterSide(tmp_path)
    link = Link(meter.layer)
    c = client()

    class Quit:
        def __init__(self) -> None:
            self.sent = 0

        def data_to_send(self, max_size: int) -> bytes:
            data = c.data_to_send(max_size)
            self.sent += bool(data)
            return data

        def data_received(self, data: bytes) -> None:
            c.data_received(data)

        def is_done(self) -> bool:
            return self.sent >= 2 and not c._out  # leave after the second request

        def connection_lost(self, reason) -> None:
            c.connection_lost(reason)

    result = link.converse(SYM, Quit())
    assert isinstance(result, ev.ConversationDone)
    assert not meter.store.load().paired
    assert meter.failures == ["pairing abandoned"]
    assert c.result is not None and not c.result.ok
    # still pairable
    c2 = client()
    link.converse(SYM, c2)
    assert c2.result.ok and meter.store.load().paired


def test_wrong_master_key_ends_at_once_with_the_rejection_notice(tmp_path) -> None:
    """A request the meter cannot authenticate gets the rejection notice instead of an answer, so the gateway's
    pairing fails at once instead of polling (the reference gateway would poll RR until it crashes)."""
    meter = MeterSide(tmp_path)
    link = Link(meter.layer)
    results: list[PairingResult] = []
    c = client(bytes(range(16)), on_result=results.append)
    result = link.converse(SYM, c)
    assert isinstance(result, ev.ConversationDone)  # the gateway ends the conversation with DISC
    assert results == [c.result] and c.result.reason == "refused_by_meter"
    assert meter.failures == ["bad_mac"]
    assert link.gw.counters.timeouts == 0
    assert not meter.store.load().paired
    c2 = client()  # the right MK pairs afterwards
    assert isinstance(link.converse(SYM, c2), ev.ConversationDone) and c2.result.ok


class NoNotice(Profile2015):
    """A profile without a rejection notice: the HDLC layer must end the connection with DM instead."""

    def rejection_notice(self, counter: int) -> None:  # type: ignore[override]
        return None


def test_without_a_rejection_notice_the_layer_answers_dm(tmp_path) -> None:
    meter = MeterSide(tmp_path, profile=NoNotice())
    link = Link(meter.layer)
    c = client(bytes(range(16)))
    result = link.converse(SYM, c)
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    assert c.result.reason == "refused (DM)" and link.station.counters.layer_closes == 1
    c2 = client()
    assert isinstance(link.converse(SYM, c2), ev.ConversationDone) and c2.result.ok


def test_silent_meter_times_out_on_idle_polls(tmp_path) -> None:
    """A meter that swallows the request and answers RR forever: the client gives up after its idle polls."""

    class Silent:
        def data_received(self, data: bytes) -> None:
            pass

        def data_to_send(self, max_size: int) -> bytes:
            return b""

        def is_busy(self) -> bool:
            return False

        def connection_lost(self) -> None:
            pass

    link = Link(lambda sel: Silent() if sel == SYM else None)
    c = client(max_idle_polls=20)
    result = link.converse(SYM, c)
    assert isinstance(result, ev.ConversationDone)  # the gateway gave up and left with DISC
    assert c.result.reason == "timeout"
    assert link.gw.counters.timeouts == 0  # the meter answered every poll (RR)


def test_refused_selector_reports_dm(tmp_path) -> None:
    link = Link(lambda sel: None)
    c = client()
    result = link.converse(SYM, c)
    assert isinstance(result, ev.ExchangeFailed)
    assert c.result == PairingResult(False, "refused (DM)")


def test_server_layer_after_connection_lost_ignores_input(tmp_path) -> None:
    meter = MeterSide(tmp_path)
    layer = meter.layer(SYM)
    layer.connection_lost()
    layer.connection_lost()  # idempotent
    gw = SymGateway(MK, SERVER_ID, gw_cert())
    gw.start()
    layer.data_received(gw.data_to_send())
    assert layer.data_to_send(2036) == b"" and not layer.is_busy()


def test_threaded_steps_answer_rnr_while_the_state_is_written(tmp_path) -> None:
    """A slow state write (SD card) runs in the worker; the station answers RNR meanwhile."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    meter = MeterSide(tmp_path)
    save = meter.store.save

    def slow_save(state) -> None:
        time.sleep(0.01)
        save(state)

    meter.store.save = slow_save
    with ThreadPoolExecutor(1) as pool:
        def layer(selector: int):
            made = meter.layer(selector)
            if made is not None:
                made.executor = pool
            return made

        link = Link(layer)
        c = client(max_idle_polls=10**7)  # polls answered RNR count as idle; in virtual time they are many
        result = link.converse(SYM, c)
    assert isinstance(result, ev.ConversationDone) and c.result.ok
    assert meter.store.load().paired and link.station.counters.rnr_sent > 0
