"""The LMN link end to end on the virtual bus (virtual time): registration, presence, polling, faults."""

from __future__ import annotations

import random

import pytest
from lmn_helpers import RequestClient, gateway, meter, meter_group

from bab.hdlc import events as ev
from bab.hdlc.frame import GATEWAY_ADDRESS, Frame, Kind, Selector, control_i, control_rr, encode_frame
from bab.hdlc.secondary import StationState
from bab.lmn.bus import VirtualBus
from bab.lmn.node import LinkNode
from bab.lmn.simulation import Simulation


def registered(gw, stations):
    addrs = {p.server_id for p in gw.participants.values()}
    return all(s.state is StationState.REGISTERED and s.server_id in addrs for s in stations)


def test_single_meter_registers_and_is_confirmed():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    m = meter(1, seed=1)
    sim.add("gw", gw_node)
    sim.add("bab", LinkNode([m]))
    assert sim.run_for(5.0, lambda: registered(gw, [m]))
    assert gw.participants[m.address].server_id == m.server_id
    assert 2 <= m.address <= 0x7E
    kinds = [type(e) for e in m.next_events()]
    assert kinds[:2] == [ev.AddressChosen, ev.Registered]


def test_three_meters_in_one_process_and_a_second_process_get_distinct_addresses():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    node_a, group = meter_group(1, 3, seed=5)
    node_b, other = meter_group(10, 1, seed=6)
    sim.add("gw", gw_node)
    sim.add("bab-1", node_a)
    sim.add("bab-2", node_b)
    everyone = group + other
    assert sim.run_for(30.0, lambda: registered(gw, everyone))
    addresses = [s.address for s in everyone]
    assert len(set(addresses)) == 4
    assert sorted(gw.participants) == sorted(addresses)
    # Stable: a minute later nothing has changed (presence checks answered in their slots).
    sim.run_for(60.0)
    assert [s.address for s in everyone] == addresses and registered(gw, everyone)
    assert gw.counters.dropped == 0 and all(s.counters.slot_missed == 0 for s in everyone)


def test_many_meters_resolve_collisions():
    """12 meters answering the same broadcast collide on the bus and still all end up registered."""
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    sim.add("gw", gw_node)
    stations = []
    for i in range(12):  # each its own process: no sibling coordination, so slots can collide
        m = meter(i + 1, seed=i)
        stations.append(m)
        sim.add(f"m{i}", LinkNode([m]))
    assert sim.run_for(120.0, lambda: registered(gw, stations))
    assert len({s.address for s in stations}) == 12


def test_silent_meter_is_dropped_and_reregisters_when_back():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    m1, m2 = meter(1, seed=11), meter(2, seed=12)
    sim.add("gw", gw_node)
    n1 = sim.add("m1", LinkNode([m1]))
    sim.add("m2", LinkNode([m2]))
    assert sim.run_for(20.0, lambda: registered(gw, [m1, m2]))
    gw.next_events()
    sim.set_running(n1, False)
    dropped: list = []
    assert sim.run_for(10.0, lambda: bool(dropped.extend(e for e in gw.next_events()
                                                         if isinstance(e, ev.ParticipantDropped)) or dropped))
    assert dropped[0].server_id == m1.server_id and "silent" in dropped[0].reason
    assert m1.server_id not in {p.server_id for p in gw.participants.values()}
    assert m2.state is StationState.REGISTERED
    old = m1.address
    sim.set_running(n1, True)
    assert sim.run_for(20.0, lambda: registered(gw, [m1, m2]))
    assert m1.address == old  # its old address was still free, so it keeps it


def test_conversations_queued_for_a_dropped_meter_end_with_the_reason():
    """A meter dropped from the list takes its active and its queued conversations with it: each layer is
    told why (a bridge client waiting for its channel would otherwise wait forever)."""
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    m = meter(1, seed=11)
    sim.add("gw", gw_node)
    n = sim.add("m1", LinkNode([m]))
    assert sim.run_for(20.0, lambda: registered(gw, [m]))
    sim.set_running(n, False)
    clients = [RequestClient(b"first"), RequestClient(b"second"), RequestClient(b"third")]
    for c in clients:
        gw.converse(m.address, Selector.SML_COSEM, c)
    assert sim.run_for(20.0, lambda: all(c.result != "pending" for c in clients))
    assert all(c.answer is None and c.result for c in clients)
    assert any("silent" in c.result for c in clients[1:])  # the queued ones name the drop
    failed = [e for e in gw.next_events() if isinstance(e, ev.ExchangeFailed)]
    assert len(failed) == 3 and gw.counters.conversations_failed == 3
    assert not gw.busy_with(m.address)


def test_gateway_restart_is_survived():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    node, stations = meter_group(1, 3, seed=21)
    g = sim.add("gw", gw_node)
    sim.add("bab", node)
    assert sim.run_for(30.0, lambda: registered(gw, stations))
    before = [s.address for s in stations]
    sim.set_running(g, False)
    sim.run_for(5.0)
    gw_node2, gw2 = gateway()
    gw2.start(sim.now)
    sim.add("gw2", gw_node2)
    assert sim.run_for(30.0, lambda: registered(gw2, stations))
    assert [s.address for s in stations] == before
    client = RequestClient(b"after restart")
    gw2.converse(stations[0].address, Selector.SML_COSEM, client)
    assert sim.run_for(5.0, lambda: client.answer is not None)


def test_conversation_multi_frame_both_ways():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway(max_info=100)
    log: list[bytes] = []
    m = meter(1, seed=31, log=log, max_info=90)
    sim.add("gw", gw_node)
    sim.add("bab", LinkNode([m]))
    assert sim.run_for(5.0, lambda: registered(gw, [m]))
    payload = bytes(range(256)) * 5  # 1280 bytes: 13 I frames up, 15 down, sequence numbers wrap mod 8
    client = RequestClient(payload)
    gw.converse(m.address, Selector.SML_COSEM, client)
    assert sim.run_for(10.0, lambda: client.result is None)
    assert log == [payload] and client.answer == payload[::-1]
    assert m.connected_selector is None  # DISC at the end
    assert m.counters.sequence_errors == 0


def test_refused_selector_gets_dm_and_link_stays_usable():
    sim = Simulation(VirtualBus())
    gw_node, gw = gateway()
    m = meter(1, seed=41, serve=(3,))
    sim.add("gw", gw_node)
    sim.add("bab", LinkNode([m]))
    assert sim.run_for(5.0, lambda: registered(gw, [m]))
    refused = RequestClient(b"x")
    gw.converse(m.address, Selector.TLS_SML_COSEM, refused)
    ok = RequestClient(b"hello")
    gw.converse(m.address, Selector.SML_COSEM, ok)
    assert sim.run_for(5.0, lambda: ok.answer is not None)
    assert refused.result == "refused (DM)"
    assert any(isinstance(e, ev.Refused) and e.selector == 1 for e in m.next_events())


def test_unconnected_and_wrong_selector_frames_get_dm():
    m = meter(1, seed=1)
    m.address, m.state = 0x20, StationState.REGISTERED
    rr = Frame(0x20, 3, GATEWAY_ADDRESS, 3, control_rr(0))
    m.frame_received(rr, 1.0)
    (tx,) = m.transmissions_due(1.0)
    assert tx.data == encode_frame(GATEWAY_ADDRESS, 3, 0x20, 3, 0x1F)
    # Frames from anyone but the gateway, and frames for other addresses, are ignored.
    m.frame_received(Frame(0x20, 3, 0x33, 3, control_rr(0)), 1.1)
    m.frame_received(Frame(0x21, 3, GATEWAY_ADDRESS, 3, 0x93), 1.1)
    assert m.transmissions_due(2.0) == []


def test_lost_answer_is_retransmitted_not_duplicated():
    """The gateway repeats an I frame whose answer was lost: the meter resends, the layer sees it once."""
    log: list[bytes] = []
    m = meter(1, seed=1, log=log)
    m.address, m.state = 0x20, StationState.REGISTERED
    m.frame_received(Frame(0x20, 3, 1, 3, 0x93), 0.0)
    (ua,) = m.transmissions_due(0.0)
    assert _decode(ua.data).kind is Kind.UA
    req = Frame(0x20, 3, 1, 3, control_i(0, 0), b"\x00\x03abc")
    m.frame_received(req, 1.0)
    (first,) = m.transmissions_due(1.0)
    m.frame_received(req, 2.0)  # same N(S) again: a retransmission
    (second,) = m.transmissions_due(2.0)
    assert first.data == second.data and log == [b"abc"]
    assert m.counters.duplicates == 1 and m.counters.retransmissions == 1


def test_busy_layer_answers_rnr_then_data():
    m = meter(1, seed=1)
    m.address, m.state = 0x20, StationState.REGISTERED
    m.frame_received(Frame(0x20, 3, 1, 3, 0x93), 0.0)
    m.transmissions_due(0.0)
    m._conn.layer.busy_polls = 2
    m.frame_received(Frame(0x20, 3, 1, 3, control_i(0, 0), b"\x00\x01z"), 1.0)
    kinds = []
    for t in (1.0, 1.1, 1.2):
        if t > 1.0:
            m.frame_received(Frame(0x20, 3, 1, 3, control_rr(1)), t)
        (tx,) = m.transmissions_due(t)
        kinds.append(Frame.kind.fget(_decode(tx.data)))
    assert kinds == [Kind.RNR, Kind.RNR, Kind.I]


def _decode(raw):
    from bab.hdlc.frame import decode_frame

    return decode_frame(raw)


def test_broken_upper_layer_does_not_take_the_station_down():
    class Broken:
        def data_received(self, data):
            raise RuntimeError("boom")

        def data_to_send(self, n):
            return b""

        def is_busy(self):
            return False

        def connection_lost(self):
            pass

    from bab.hdlc.secondary import MeterStation

    m = MeterStation(b"\x0a\x01BAB\x00\x00\x00\x00\x01", lambda s: Broken())
    m.address, m.state = 0x20, StationState.REGISTERED
    m.frame_received(Frame(0x20, 3, 1, 3, 0x93), 0.0)
    m.frame_received(Frame(0x20, 3, 1, 3, control_i(0, 0), b"x"), 0.1)
    out = [_decode(t.data).kind for t in m.transmissions_due(1.0)]
    assert out == [Kind.UA, Kind.DM] and m.counters.layer_errors == 1 and m.connected_selector is None


@pytest.mark.parametrize("seed", [1, 2])
def test_line_noise_never_delivers_corrupted_data_and_link_recovers(seed):
    bus = VirtualBus(rng=random.Random(seed), bit_error_rate=2e-4, drop_rate=2e-4, chunk=17)
    sim = Simulation(bus)
    gw_node, gw = gateway()
    log: list[bytes] = []
    m = meter(1, seed=seed, log=log, max_info=200)
    sim.add("gw", gw_node)
    sim.add("bab", LinkNode([m]))
    assert sim.run_for(60.0, lambda: registered(gw, [m]))
    rng = random.Random(seed)
    sent = []
    for _i in range(40):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        sent.append(payload)
        client = RequestClient(payload)
        if m.address not in gw.participants:
            sim.run_for(30.0, lambda: registered(gw, [m]))
        gw.converse(m.address, Selector.SML_COSEM, client)
        sim.run_for(20.0, lambda c=client: c.result != "pending")
        if client.result is None:
            assert client.answer == payload[::-1]
    # Whatever got through is exactly what was sent: never a corrupted byte, never out of order.
    assert all(msg in sent for msg in log)
    assert bus.counters.noise_bit_flips > 0
    assert sim.nodes[1].node.receiver.counters.bad_fcs + sim.nodes[1].node.receiver.counters.bad_hcs > 0
    # Noise stops: the link serves again.
    bus.bit_error_rate = bus.drop_rate = 0.0
    assert sim.run_for(60.0, lambda: registered(gw, [m]))
    client = RequestClient(b"clean again")
    gw.converse(m.address, Selector.SML_COSEM, client)
    assert sim.run_for(10.0, lambda: client.result is None)
    assert client.answer == b"niaga naelc"


def test_adopts_address_listed_by_gateway_after_losing_state():
    """A meter restarted without its state hears itself listed under an address: it takes that address."""
    from bab.hdlc.record import ParticipantRecord, encode_records

    m = meter(1, seed=51)
    other = ParticipantRecord.for_meter(0x30, 0, b"\x0a\x01XYZ\x00\x00\x00\x00\x07")
    mine = ParticipantRecord.for_meter(0x21, 0, m.server_id)
    alloc = Frame(0x7F, 1, GATEWAY_ADDRESS, 1, 0x13, encode_records([other, mine]))
    m.frame_received(alloc, 1.0)
    assert (m.state, m.address) == (StationState.REGISTERED, 0x21)
    assert m.transmissions_due(2.0) == []  # nothing to answer: it is listed
    # Listed under another address in a presence check: back to unregistered, no answer.
    check = Frame(0x7F, 2, GATEWAY_ADDRESS, 2, 0x13, encode_records([
        ParticipantRecord.for_meter(0x22, 1, m.server_id)]))
    m.frame_received(check, 3.0)
    assert m.state is StationState.UNREGISTERED and m.transmissions_due(4.0) == []


def test_malformed_broadcasts_are_counted_not_answered():
    m = meter(1, seed=52)
    m.frame_received(Frame(0x7F, 1, GATEWAY_ADDRESS, 1, 0x13, b"\x01" * 31), 1.0)
    m.frame_received(Frame(0x7F, 1, 0x33, 1, 0x13, b""), 1.0)  # not from the gateway
    assert m.transmissions_due(5.0) == [] and m.counters.malformed == 1


@pytest.mark.parametrize(("late_ms", "sent", "late", "last"), [
    (0.0, True, False, False), (2.0, True, False, False), (6.0, True, True, False), (9.9, False, False, False),
    (9.9, True, True, True), (14.0, True, True, True), (15.0, False, False, True)])
def test_presence_reply_late_in_its_slot_is_sent_in_the_guard_time(late_ms, sent, late, last):
    """A stalled event loop (seen on a loaded 2-core machine: 4.5 ms) can start a slot reply after its 5 ms reply
    window. Inside its own 10 ms slot it cannot collide with another meter's reply, so it is still sent and
    counted as late (the reference gateway reads the whole listen window and keeps the meter); only a reply that
    would run past its slot is dropped (and counted as missed). The meter in the last listed slot may also use
    the spare slot at the end of the gateway's listen window (seen: a 10.8 ms stall under load)."""
    from bab.hdlc.record import ParticipantRecord, encode_records
    from bab.hdlc.timing import SlotTiming

    m = meter(1, seed=51)
    m.address, m.state = 0x21, StationState.REGISTERED
    slots = SlotTiming()
    record = ParticipantRecord.for_meter(0x21, 3, m.server_id)
    others = [] if last else [ParticipantRecord.for_meter(0x22, 4, b"\x0a\x01XYZ\x00\x00\x00\x00\x07")]
    check = Frame(0x7F, 2, GATEWAY_ADDRESS, 2, 0x13, encode_records([record, *others]))
    m.frame_received(check, 1.0)
    due = 1.0 + 3 * slots.slot_period + slots.reply_offset
    out = m.transmissions_due(due + late_ms / 1000)
    assert bool(out) is sent
    assert (m.counters.slot_late, m.counters.slot_missed) == (int(late), int(not sent))
    events = m.next_events()
    assert any(isinstance(e, ev.SlotLate) for e in events) is late
    assert any(isinstance(e, ev.SlotMissed) for e in events) is (not sent)
