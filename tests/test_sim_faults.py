"""Every fault kind of the lab meter, observed on the wire by BAB's software gateway station (or the wire probe),
and the recovery once the fault is cleared. Virtual bus, virtual time, the real meter runtime."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sim_helpers import MK, Lab, tls_wrapper, tls_yaml

from bab.gateway.security import GatewaySecurity
from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.sml.attention import AttentionCode
from bab.tls import wolfssl_binding

needs_tls = pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")


def energy(result) -> Decimal | None:
    r = result.reading("1-0:1.8.0") if result is not None else None
    return r.decimal if r is not None else None


def read_ok(lab: Lab, selector: int = 3, wrap=lambda inner: inner) -> None:
    result, sml = lab.read(selector, wrap)
    assert isinstance(result, ev.ConversationDone), result
    assert sml.ok and energy(sml) == Decimal("12345678"), sml


def dropped(lab: Lab, timeout: float = 10.0) -> bool:
    return lab.sim.run_for(timeout, lambda: any(isinstance(e, ev.ParticipantDropped) for e in lab.gw_events()))


# --- HDLC -----------------------------------------------------------------------------------------------


def test_silent_meter_is_dropped_by_the_presence_check_and_registers_again_when_cleared(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("silent")
    assert dropped(lab)
    assert lab.faults.injected["silent"] >= 1
    lab.sim.run_for(5.0)
    assert lab.station.address not in lab.gw.participants  # still silent: never registered again
    lab.faults.clear("silent")
    lab.register()
    read_ok(lab)


def test_dropped_replies_make_the_gateway_time_out_and_retransmit(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    before = lab.gw.counters.timeouts
    lab.fault("drop_replies", count=2)
    read_ok(lab)  # two answers lost, both recovered by the gateway's retransmission
    assert lab.gw.counters.timeouts - before == 2 and lab.faults.injected["drop_replies"] == 2
    lab.fault("drop_replies")
    before = lab.gw.counters.timeouts
    result, sml = lab.read()
    assert isinstance(result, ev.ExchangeFailed) and lab.gw.counters.timeouts > before
    lab.faults.clear()
    lab.register()
    read_ok(lab)


def test_late_slot_replies_miss_their_window_and_the_meter_is_dropped(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    unexpected = lab.gw.counters.unexpected
    lab.fault("late_replies", ms=50)
    assert dropped(lab)
    lab.sim.run_for(0.2)
    assert lab.gw.counters.unexpected > unexpected  # the late reply arrived after the gateway stopped listening
    lab.faults.clear("late_replies")
    lab.register()
    lab.sim.run_for(5.0)
    assert lab.probe.replies[-1] == (1, True)


def test_wrong_slot_replies_are_seen_in_the_next_slot_then_in_their_own(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.sim.run_for(3.0)
    assert lab.probe.replies and lab.probe.replies[-1] == (1, True)
    lab.fault("wrong_slot", slots=1)
    n = len(lab.probe.replies)
    lab.sim.run_for(5.0)
    assert lab.probe.replies[n:] and all(slot == 2 for slot, _ in lab.probe.replies[n:])
    lab.faults.clear()
    n = len(lab.probe.replies)
    lab.sim.run_for(5.0)
    assert lab.probe.replies[n:] and all(r == (1, True) for r in lab.probe.replies[n:])


@pytest.mark.parametrize("kind", ["bad_fcs", "bad_hcs"])
def test_frames_with_a_bad_crc_are_dropped_by_the_gateway_receiver(tmp_path, kind):
    lab = Lab(tmp_path)
    lab.register()
    rx = lab.gw_node.receiver.counters
    counter = "bad_fcs" if kind == "bad_fcs" else "bad_hcs"
    before = getattr(rx, counter)
    lab.fault(kind)
    result, sml = lab.read()
    assert isinstance(result, ev.ExchangeFailed) and sml.error
    assert getattr(rx, counter) > before and lab.faults.injected[kind] > 0
    lab.faults.clear(kind)
    lab.register()
    read_ok(lab)


def test_address_collision_is_detected_and_the_meter_registers_once_cleared(tmp_path):
    from lmn_helpers import meter

    from bab.lmn.node import LinkNode

    lab = Lab(tmp_path / "b", meter_yaml="    faults: [{kind: address_collision}]\n")
    lab.sim.set_running(lab.bab_node, False)  # the other meter registers first
    other = meter(7, seed=3)
    lab.sim.add("other", LinkNode([other]))
    assert lab.sim.run_for(20.0, lambda: other.address in lab.gw.participants)
    lab.sim.set_running(lab.bab_node, True)
    lab.sim.run_for(10.0)
    assert lab.gw.counters.address_conflicts > 0 and lab.faults.injected["address_collision"] > 0
    assert not lab.registered()
    lab.faults.clear()
    lab.register()
    assert lab.station.address != other.address and other.address in lab.gw.participants
    read_ok(lab)


def test_dm_refuses_the_selector_until_cleared(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("dm", selector=3)
    result, _ = lab.read()
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)"
    assert lab.registered()  # DM ends the connection, not the registration
    lab.faults.clear("dm")
    read_ok(lab)


def test_rnr_keeps_the_gateway_polling_until_the_busy_time_is_over(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("rnr", seconds=2.0)
    start = lab.sim.now
    read_ok(lab)
    assert lab.sim.now - start >= 2.0
    assert lab.gw.counters.rnr_received > 0 and lab.faults.injected["rnr"] == lab.gw.counters.rnr_received
    assert "rnr" not in lab.faults.active  # timed out by itself
    before = lab.gw.counters.rnr_received
    read_ok(lab)
    assert lab.gw.counters.rnr_received == before


def test_sequence_errors_are_discarded_by_the_gateway_and_recovered_by_retransmission(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("sequence_error", count=2)
    read_ok(lab)
    assert lab.gw.counters.out_of_sequence == 2 and lab.station.counters.retransmissions >= 2
    read_ok(lab)
    assert lab.gw.counters.out_of_sequence == 2


# --- SML ------------------------------------------------------------------------------------------------


def test_attention_answers_the_object_with_the_code(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("attention", object="1-0:1.8.0", code="FE07")
    result, sml = lab.read()
    assert isinstance(result, ev.ConversationDone)
    (att,) = sml.attentions
    assert att.number == AttentionCode.MEASURING_POINT_UNREACHABLE.to_bytes()
    assert att.name[:6] == bytes((1, 0, 1, 8, 0, 255)) and energy(sml) is None
    lab.faults.clear()
    read_ok(lab)


def test_attention_replaces_a_get_list_answer_that_lists_the_object(tmp_path):
    from bab.sml.client import SmlClient

    lab = Lab(tmp_path)
    lab.register()
    lab.fault("attention", object="1-0:1.8.0", code="FE07")
    client = SmlClient.read_objects(lab.station.server_id, [], full_list=True)
    assert isinstance(lab.converse(3, client), ev.ConversationDone)
    (att,) = client.result.attentions
    assert att.number == AttentionCode.MEASURING_POINT_UNREACHABLE.to_bytes() and energy(client.result) is None
    lab.faults.clear()
    client = SmlClient.read_objects(lab.station.server_id, [], full_list=True)
    assert isinstance(lab.converse(3, client), ev.ConversationDone)
    assert client.result.attentions == [] and energy(client.result) == Decimal("12345678")


def test_bad_sml_crc_is_rejected_by_the_gateway_client(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("bad_sml_crc")
    _, sml = lab.read()
    assert sml.error and "undecodable" in sml.error and energy(sml) is None
    lab.faults.clear()
    read_ok(lab)


def test_wrong_server_id_is_refused_by_the_gateway_client(tmp_path):
    lab = Lab(tmp_path)
    lab.register()
    lab.fault("wrong_server_id", server_id="0a01424142000000002b")
    _, sml = lab.read()
    assert sml.error and "server ID 0a01424142000000002b" in sml.error
    lab.faults.clear()
    read_ok(lab)


def test_truncated_sml_ends_in_a_timeout_not_a_value(tmp_path):
    lab = Lab(tmp_path, conversation_timeout=3.0)
    lab.register()
    lab.fault("truncated_sml", fraction=0.5)
    result, sml = lab.read()
    assert isinstance(result, ev.ExchangeFailed) and result.reason == "conversation timed out"
    assert energy(sml) is None
    lab.faults.clear()
    read_ok(lab)


# --- TLS and SYM ----------------------------------------------------------------------------------------


@needs_tls
@pytest.mark.parametrize("alert", [False, True])
def test_tls_abort_fails_the_handshake_then_tls_works_again(tmp_path, alert):
    yaml, ctx = tls_yaml(tmp_path)
    lab = Lab(tmp_path / "state", meter_yaml=yaml)
    lab.register()
    lab.fault("tls_abort", alert=alert)
    layers: list = []
    result, sml = lab.read(Selector.TLS_SML_COSEM, tls_wrapper(ctx, layers))
    assert isinstance(result, ev.ExchangeFailed) and not layers[0].established
    if alert:
        assert layers[0].error is not None and layers[0].error.alert == "handshake_failure"
    else:
        assert result.reason == "refused (DM)"
    lab.faults.clear()
    read_ok(lab, Selector.TLS_SML_COSEM, tls_wrapper(ctx, layers))


@needs_tls
def test_tls_wrong_cert_is_refused_by_the_gateway_pin(tmp_path):
    yaml, ctx = tls_yaml(tmp_path)
    lab = Lab(tmp_path / "state", meter_yaml=yaml)
    lab.register()
    lab.fault("tls_wrong_cert")
    layers: list = []
    result, sml = lab.read(Selector.TLS_SML_COSEM, tls_wrapper(ctx, layers))
    assert isinstance(result, ev.ExchangeFailed) and layers[0].error is not None
    assert not layers[0].established
    assert "certificate" in str(layers[0].error).lower()
    lab.faults.clear()
    read_ok(lab, Selector.TLS_SML_COSEM, tls_wrapper(ctx, layers))


@needs_tls
def test_sym_bad_mac_fails_the_pairing_then_it_pairs(tmp_path):
    lab = Lab(tmp_path / "state")
    lab.meter.security.store.set_master_key(MK)
    lab.register()
    gw = GatewaySecurity(tmp_path / "gw")
    sid = lab.station.server_id
    lab.fault("sym_bad_mac")
    results: list = []
    lab.converse(Selector.SYM_HDLC, gw.pairing_client(sid, MK, on_result=results.append))
    assert not results[0].ok and "mac" in results[0].reason.lower()
    assert not lab.meter.security.paired
    lab.faults.clear()
    results.clear()
    assert isinstance(lab.converse(Selector.SYM_HDLC, gw.pairing_client(sid, MK, on_result=results.append)),
                      ev.ConversationDone)
    assert results[0].ok and lab.meter.security.paired
