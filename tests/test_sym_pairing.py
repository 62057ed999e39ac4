"""Full SYM pairings meter <-> gateway in memory (LMN-STACK.md §5): both certificate routes, profile options,
crypto-reset and re-pairing, and a second (toy) profile proving the profile boundary."""

from __future__ import annotations

import dataclasses

import pytest
from test_sym_support import (
    METER_ID,
    MK,
    ack_saves,
    gw_cert,
    make_cert,
    meter_creds,
    notice,
    own_cert,
    paired_ok,
    run_pairing,
)

from bab.sym import (
    AlgorithmList,
    Credentials,
    MessageDropped,
    PairingCompleted,
    PairingFailed,
    PairingState,
    PairingStep,
    PersistentSymMeter,
    Profile2015,
    SaveState,
    SymGateway,
    SymMeter,
    SymStore,
)
from bab.sym.crypto import aes_cmac


def _completed(events: list) -> PairingCompleted:
    done = [e for e in events if isinstance(e, PairingCompleted)]
    assert len(done) == 1, events
    return done[0]


@pytest.mark.parametrize(
    "profile",
    [Profile2015(), Profile2015(mac_length=8), Profile2015(emh_bug=True)],
    ids=["2015", "2015-mac8", "2015-emh"],
)
def test_route_a_injected_key(profile: Profile2015) -> None:
    creds = meter_creds()
    meter = SymMeter(PairingState(MK), METER_ID, profile=profile)
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=creds, profile=profile)
    m_ev, g_ev = run_pairing(meter, gw)
    done = paired_ok(g_ev)
    assert done.meter_cert_der == creds.certificate
    assert done.algorithms == AlgorithmList()
    assert done.max_fragment_length == 512
    ev = _completed(m_ev)
    assert (ev.gateway_cert_der, ev.meter_cert_der, ev.meter_key_der) == (
        gw_cert(), creds.certificate, creds.private_key
    )
    st = meter.state
    assert st.paired and st.peer_certificate == gw_cert()
    assert st.own_certificate == creds.certificate and st.own_private_key == creds.private_key
    assert meter.stats.total() == 0


@pytest.mark.parametrize("profile", [Profile2015(), Profile2015(emh_bug=True)], ids=["2015", "2015-emh"])
def test_route_b_meter_keeps_own_key(profile: Profile2015) -> None:
    meter = SymMeter(PairingState(MK), METER_ID, profile=profile, own_certificate=own_cert(),
                     algorithms=AlgorithmList((0xC02B,), (0x001A,)), max_fragment_length=1024)
    gw = SymGateway(MK, METER_ID, gw_cert(), profile=profile)
    m_ev, g_ev = run_pairing(meter, gw)
    done = paired_ok(g_ev)
    assert done.meter_cert_der == own_cert()
    assert done.algorithms == AlgorithmList((0xC02B,), (0x001A,))
    assert done.max_fragment_length == 1024
    ev = _completed(m_ev)
    assert ev.meter_cert_der == own_cert() and ev.meter_key_der is None
    assert meter.state.paired and meter.state.own_certificate is None and meter.state.own_private_key is None


def test_profiles_must_match() -> None:
    meter = SymMeter(PairingState(MK), METER_ID, profile=Profile2015(emh_bug=True), own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert())
    m_ev, g_ev = run_pairing(meter, gw)
    # the meter cannot authenticate the SYNC and answers the rejection notice: the gateway fails at once
    assert g_ev == [PairingFailed("refused_by_meter")] and gw.done
    assert [e.reason for e in m_ev if isinstance(e, MessageDropped)] == ["bad_mac"]
    assert meter.state == PairingState(MK)


def test_route_b_without_own_certificate_fails_cleanly() -> None:
    meter = SymMeter(PairingState(MK), METER_ID)
    gw = SymGateway(MK, METER_ID, gw_cert())
    m_ev, g_ev = run_pairing(meter, gw)
    assert PairingFailed("no_own_certificate") in m_ev
    assert meter.stats["no_own_certificate"] == 1
    assert not meter.state.paired and PairingFailed("refused_by_meter") in g_ev


def test_injection_can_be_disabled() -> None:
    meter = SymMeter(PairingState(MK), METER_ID, accept_injected_key=False, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds())
    m_ev, _ = run_pairing(meter, gw)
    assert PairingFailed("injection_refused") in m_ev
    assert not meter.state.paired


def test_counter_protocol_and_save_before_answer() -> None:
    meter = SymMeter(PairingState(MK, counter=100), METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), start_counter=3)
    gw.start()
    meter.receive(gw.data_to_send())
    assert meter.events() == []  # SYNC persists nothing
    answer = meter.data_to_send()
    assert answer[0] == 0x81 and int.from_bytes(answer[5:9], "big") == 101  # high-water + 1, whatever the request's
    gw.receive(answer)
    req = gw.data_to_send()
    assert req[0] == 0x02 and int.from_bytes(req[5:9], "big") == 102
    meter.receive(req)
    ev = meter.next_event()
    assert isinstance(ev, SaveState) and ev.state.counter == 102
    assert meter.data_to_send() == b""  # held back until the save is acknowledged
    assert meter.state.counter == 100
    meter.state_saved()
    ans = meter.data_to_send()
    assert ans[0] == 0x82 and ans[5:9] == req[5:9]  # answers echo the request counter
    assert meter.state.counter == 102


def test_sync_always_restarts_with_a_fresh_counter() -> None:
    """The reference's SYNC is always the same 25 bytes (CNT 0xFFFFFFFF, no data; LMN-STACK.md 13), so the meter
    accepts every SYNC, answers it above everything it has used, and a later request of the abandoned run is
    stale. Nothing is persisted by a SYNC."""
    meter = SymMeter(PairingState(MK, counter=50), METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert())
    gw.start()
    sync = gw.data_to_send()
    assert int.from_bytes(sync[5:9], "big") == 0xFFFFFFFF and len(sync) == 25
    meter.receive(sync)
    gw.receive(meter.data_to_send())
    req2 = gw.data_to_send()
    assert int.from_bytes(req2[5:9], "big") == 52  # answer 51 + 1
    meter.receive(req2)
    ack_saves(meter)
    gw.receive(meter.data_to_send())
    meter.receive(sync)  # the same SYNC again in the middle of the pairing: a restart
    again = meter.data_to_send()
    assert again[0] == 0x81 and int.from_bytes(again[5:9], "big") == 53
    assert PairingFailed("restarted") in meter.events()
    meter.receive(gw.data_to_send())  # the abandoned run's next request (counter 53) is stale now
    assert meter.data_to_send() == notice(53) and meter.stats["replayed_counter"] == 1
    assert meter.state.counter == 52  # only the accepted ALGORITHMS request was persisted
    gw2 = SymGateway(MK, METER_ID, gw_cert())  # a gateway starting again pairs at once
    gw2.start()
    while (req := gw2.data_to_send()):
        meter.receive(req)
        ack_saves(meter)
        gw2.receive(meter.data_to_send())
    paired_ok(gw2.events())


def test_messages_split_and_joined_are_reassembled() -> None:
    meter = SymMeter(PairingState(MK), METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds())
    gw.start()
    for _ in range(10):
        req = gw.data_to_send()
        if not req:
            break
        for i in range(0, len(req), 7):  # 7-byte fragments
            meter.receive(req[i : i + 7])
            ack_saves(meter)
        out = meter.data_to_send()
        gw.receive(out[:3])
        gw.receive(out[3:])
    paired_ok(gw.events())
    assert meter.state.paired


def test_persistent_link_pairs_and_persists(tmp_path) -> None:
    store = SymStore(tmp_path / "sym.json")
    store.set_master_key(MK)
    link = PersistentSymMeter(store, METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert())
    gw.start()
    while (req := gw.data_to_send()):
        gw.receive(link.handle(req))
    paired_ok(gw.events())
    assert any(isinstance(e, PairingCompleted) for e in link.events())
    st = store.load()
    assert st is not None and st.paired and st.peer_certificate == gw_cert()
    assert (tmp_path / "sym.json").stat().st_mode & 0o777 == 0o600


def test_crypto_reset_then_repair_with_new_gateway(tmp_path) -> None:
    store = SymStore(tmp_path / "sym.json")
    store.set_master_key(MK)
    link = PersistentSymMeter(store, METER_ID, own_certificate=own_cert())
    gw1 = SymGateway(MK, METER_ID, gw_cert(), meter_credentials=meter_creds())
    gw1.start()
    while (req := gw1.data_to_send()):
        gw1.receive(link.handle(req))
    paired_ok(gw1.events())
    first = store.require()
    assert first.paired and first.own_private_key is not None

    # re-pairing while paired is refused, nothing changes
    before = (tmp_path / "sym.json").read_bytes()
    new_gw_cert = make_cert("gateway-2")[0]
    gw2 = SymGateway(MK, METER_ID, new_gw_cert)
    gw2.start()
    assert link.handle(gw2.data_to_send()) == notice(0xFFFFFFFF)
    assert MessageDropped("already_paired", 0x01, 0xFFFFFFFF) in link.events()
    assert (tmp_path / "sym.json").read_bytes() == before

    # crypto-reset: one atomic write back to MK, material wiped, counter kept
    link.crypto_reset()
    reset = store.require()
    assert reset == PairingState(MK, counter=first.counter)
    assert not link.meter.paired

    gw3 = SymGateway(MK, METER_ID, new_gw_cert)  # route (b) this time
    gw3.start()
    while (req := gw3.data_to_send()):
        gw3.receive(link.handle(req))
    assert paired_ok(gw3.events()).meter_cert_der == own_cert()
    final = store.require()
    assert final.paired and final.peer_certificate == new_gw_cert
    assert final.own_private_key is None and final.counter > first.counter


def test_store_crypto_reset_and_new_meter_object(tmp_path) -> None:
    """A crypto-reset done on the store (e.g. by the SML layer) takes effect for a newly built meter."""
    store = SymStore(tmp_path / "s.json")
    store.set_master_key(MK)
    link = PersistentSymMeter(store, METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert())
    gw.start()
    while (req := gw.data_to_send()):
        gw.receive(link.handle(req))
    assert store.require().paired
    store.crypto_reset()
    link = PersistentSymMeter(store, METER_ID, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, make_cert("gateway-3")[0])
    gw.start()
    while (req := gw.data_to_send()):
        gw.receive(link.handle(req))
    assert store.require().peer_certificate == make_cert("gateway-3")[0]


class ToyKeyAgreementProfile(Profile2015):
    """A second profile built only through the SymProfile boundary: an extra KEY_AGREEMENT step (like the
    FNN z1 -> M' variant, but with a made-up derivation) on top of the 2015 message format."""

    flow = (
        PairingStep.SYNC,
        PairingStep.KEY_AGREEMENT,
        PairingStep.ALGORITHMS,
        PairingStep.CREDENTIALS,
        PairingStep.PEER_CERTIFICATE,
        PairingStep.COMMIT,
    )
    _codes = {PairingStep.KEY_AGREEMENT: 0x06}

    def request_code(self, step: PairingStep) -> int:
        return self._codes.get(step) or super().request_code(step)

    def step_of(self, command: int) -> PairingStep | None:
        return PairingStep.KEY_AGREEMENT if command == 0x06 else super().step_of(command)

    def session_key(self, master_key: bytes, profile_data: dict[str, str]) -> bytes:
        return bytes.fromhex(profile_data["m_prime"]) if "m_prime" in profile_data else master_key

    def meter_key_agreement(self, key: bytes, meter_id: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
        return b"", {"m_prime": aes_cmac(key, b"toy" + data).hex()}

    def gateway_key_agreement_request(self, key: bytes, meter_id: bytes, random: bytes) -> bytes:
        return random

    def gateway_key_agreement_answer(self, key: bytes, meter_id: bytes, random: bytes, data: bytes) -> dict:
        self.decode_empty(data)
        return {"m_prime": aes_cmac(key, b"toy" + random).hex()}


def test_second_profile_plugs_in_without_engine_changes() -> None:
    prof = ToyKeyAgreementProfile()
    z1 = bytes(range(16))
    meter = SymMeter(PairingState(MK), METER_ID, profile=prof, own_certificate=own_cert())
    gw = SymGateway(MK, METER_ID, gw_cert(), profile=prof, key_agreement_random=z1)
    m_ev, g_ev = run_pairing(meter, gw)
    done = paired_ok(g_ev)
    m_prime = aes_cmac(MK, b"toy" + z1).hex()
    assert done.profile_data == {"m_prime": m_prime}
    assert meter.state.profile_data == {"m_prime": m_prime}
    _completed(m_ev)
    # crypto-reset wipes the profile data with the rest
    assert meter.state.crypto_reset().profile_data == {}
    # 2015 has no key agreement: the hook says so instead of pretending
    with pytest.raises(NotImplementedError):
        Profile2015().meter_key_agreement(MK, METER_ID, b"")


def test_gateway_validates_its_inputs() -> None:
    cert, key = make_cert("meter-injected")
    other_key = make_cert("someone-else")[1]
    with pytest.raises(ValueError):
        SymGateway(MK[:15], METER_ID, gw_cert())
    with pytest.raises(ValueError):
        SymGateway(MK, METER_ID, gw_cert(), meter_credentials=Credentials(cert, None))
    with pytest.raises(Exception) as ei:
        SymGateway(MK, METER_ID, gw_cert(), meter_credentials=Credentials(cert, other_key))
    assert getattr(ei.value, "reason", None) == "key_mismatch"


def test_events_and_state_repr_hide_key_material() -> None:
    creds = meter_creds()
    st = PairingState(MK, paired=True, peer_certificate=gw_cert(), own_certificate=creds.certificate,
                      own_private_key=creds.private_key)
    text = repr(st) + repr(PairingCompleted(gw_cert(), creds.certificate, creds.private_key))
    assert MK.hex() not in text and "own_private_key" not in text
    assert dataclasses.replace(st, counter=5).counter == 5
