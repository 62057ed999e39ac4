"""The virtual RS-485 bus model: everyone hears everyone, overlaps are garbled, noise is applied."""

from __future__ import annotations

import random

from bab.hdlc.frame import Frame, control_rr
from bab.hdlc.receiver import FrameReceiver
from bab.lmn.bus import VirtualBus


def test_all_other_ports_hear_a_transmission_in_chunks_at_line_speed():
    bus = VirtualBus(chunk=4)
    a, b, c = bus.attach("a"), bus.attach("b"), bus.attach("c")
    end = a.transmit(b"0123456789", 1.0)
    assert abs(end - (1.0 + 10 * 10 / 921600)) < 1e-12
    got = bus.deliveries_due(end)
    assert {p.name for p, _, _ in got} == {"b", "c"}
    assert b"".join(d for p, d, _ in got if p is b) == b"0123456789"
    assert [len(d) for p, d, _ in got if p is c] == [4, 4, 2]
    assert all(t <= end for _, _, t in got)


def test_overlapping_transmissions_are_garbled_so_receivers_drop_them():
    bus = VirtualBus(rng=random.Random(1))
    a, b, listener = bus.attach("a"), bus.attach("b"), bus.attach("gw")
    fa = Frame(1, 1, 0x20, 1, control_rr(0)).encode()
    fb = Frame(1, 1, 0x21, 1, control_rr(0)).encode()
    a.transmit(fa, 0.0)
    b.transmit(fb, 0.00005)  # starts while a is still sending
    rx = FrameReceiver()
    frames = []
    for port, data, t in bus.deliveries_due(1.0):
        if port is listener:
            frames += rx.feed(data, t)
    assert frames == [] and bus.counters.collisions == 1 and bus.counters.bytes_garbled > 0


def test_back_to_back_transmissions_do_not_collide():
    bus = VirtualBus()
    a, b, listener = bus.attach("a"), bus.attach("b"), bus.attach("gw")
    fa = Frame(1, 1, 0x20, 1, control_rr(0)).encode()
    a.transmit(fa, 0.0)
    end = a.transmit(fa, 0.0)  # the same port queues behind its own transmission
    b.transmit(fa, end)
    rx = FrameReceiver()
    frames = [f for port, d, t in bus.deliveries_due(1.0) if port is listener for f in rx.feed(d, t)]
    assert len(frames) == 3 and bus.counters.collisions == 0


def test_unplugged_port_neither_hears_nor_is_heard():
    bus = VirtualBus()
    a, b = bus.attach("a"), bus.attach("b")
    b.listening = False
    a.transmit(b"x", 0.0)
    b.transmit(b"y", 0.0)
    assert bus.deliveries_due(1.0) == []
