"""HDLC cases (LMN-STACK.md section 3): frame format, address allocation and presence check with the slot grid,
connection handling, sequence numbers, retransmission, RNR and bad-CRC frames."""

from __future__ import annotations

from bab.hdlc.frame import (
    BROADCAST_ADDRESS,
    DISC,
    GATEWAY_ADDRESS,
    MAX_METER_ADDRESS,
    MIN_METER_ADDRESS,
    SNRM,
    UI,
    BroadcastService,
    Kind,
    Selector,
    control_i,
    encode_frame,
)
from bab.hdlc.primary import Participant
from bab.hdlc.record import RECORD_SIZE, ParticipantRecord, RecordError, decode_records, encode_records
from bab.hdlc.timing import GatewayTiming, wire_time
from bab.meter_id import MeterId

from .case import CaseFailed, case, check
from .common import (
    RawConnection,
    energy_request,
    ensure_registered,
    fresh_registration,
    open_sml_selector,
    sml_request,
)

G = "HDLC"


def _slot_replies(t, service: int, since: int):  # type: ignore[no-untyped-def]
    return [r for r in t.raw.received[since:] if r.frame.kind is Kind.UI and r.frame.dst_selector == service]


@case("HDLC-REG-01", "registers within N address-allocation broadcasts",
      "LMN-STACK.md 3.5 (address allocation), 3.7 (meter state machine)", group=G, catches=("silent",))
def registration(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    n0 = len(t.raw.received)
    st = t.start_gateway()
    t0 = t.now
    limit = s.options.register_within
    t.wait(limit * t.timing.broadcast_period + 2.0,
           lambda: t.participant(s.options.meter or s.server_id) is not None or st.counters.broadcasts > limit)
    p = t.participant(s.options.meter or s.server_id)
    replies = _slot_replies(t, BroadcastService.ADDRESS_ALLOCATION, n0)
    for r in replies[:4]:
        rec.frame(r.t, "rx", r.raw, "allocation reply")
    rec.figure("allocation_broadcasts", st.counters.broadcasts)
    rec.figure("allocation_replies", len(replies))
    check(p is not None, f"not registered after {st.counters.broadcasts} allocation broadcasts "
          f"({len(replies)} replies, {st.counters.address_conflicts} address conflicts)")
    assert p is not None
    check(st.counters.broadcasts <= limit, f"registered only after {st.counters.broadcasts} allocation broadcasts "
          f"(limit {limit})")
    rec.figure("seconds_to_register", round(p.registered_at - t0, 4))
    rec.figure("address", f"0x{p.address:02x}")
    s.server_id, s.address = p.server_id, p.address


@case("HDLC-REC-01", "participant record of the allocation reply",
      "LMN-STACK.md 3.5 (32-byte participant record), 8 (server ID)", group=G)
def participant_record(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    n0 = len(t.raw.received)
    fresh_registration(s)
    replies = _slot_replies(t, BroadcastService.ADDRESS_ALLOCATION, n0)
    check(replies, "no allocation reply seen")
    r = replies[-1]
    rec.frame(r.t, "rx", r.raw, "allocation reply")
    f = r.frame
    check(f.dst == GATEWAY_ADDRESS, f"reply addressed to 0x{f.dst:02x}, not the gateway (0x01)")
    check(f.src_selector == f.dst_selector == BroadcastService.ADDRESS_ALLOCATION,
          f"reply on selectors {f.src_selector}/{f.dst_selector}, expected 1/1")
    check(len(f.info) == RECORD_SIZE, f"information field of {len(f.info)} bytes, expected one {RECORD_SIZE}-byte "
          "record")
    try:
        (record,) = decode_records(f.info)
    except (RecordError, ValueError) as exc:
        raise CaseFailed(f"record does not decode: {exc}") from None
    check(record.address == f.src, f"record address 0x{record.address:02x} differs from the frame's 0x{f.src:02x}")
    check(MIN_METER_ADDRESS <= f.src <= MAX_METER_ADDRESS, f"address 0x{f.src:02x} outside 0x02..0x7E")
    check(record.slot < t.timing.slots.slot_count, f"slot {record.slot} outside the grid")
    try:
        mid = MeterId.from_server_id(record.server_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CaseFailed(f"server ID {record.server_id.hex()} is not a meter ID: {exc}") from None
    rec.figure("meter_id", str(mid))
    rec.figure("slot", record.slot)
    if s.options.meter:
        check(record.server_id[:10] == s.options.meter[:10], f"server ID {record.server_id.hex()} is not the "
              f"named meter's {s.options.meter.hex()}")


@case("HDLC-ALLOC-01", "never offers an address the allocation list holds",
      "LMN-STACK.md 3.5 (free address chosen by the meter)", group=G, catches=("address_collision",))
def address_free(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    old = ensure_registered(s)
    # A gateway whose list already holds another participant at the meter's own address: it must move.
    timing = GatewayTiming(slots=t.timing.slots, broadcast_period=t.timing.broadcast_period,
                           broadcast_period_empty=t.timing.broadcast_period_empty, check_period=3600.0,
                           reply_timeout=t.timing.reply_timeout, missed_checks=10**6)
    st = t.start_gateway(timing)
    phantom = ParticipantRecord.for_meter(old, 0, bytes.fromhex("0a01434f4e4600000001"))
    st.participants[old] = Participant(old, phantom, t.now, t.now)
    n0 = len(t.raw.received)
    t.wait(4 * timing.broadcast_period + 2.0, lambda: t.participant(s.server_id) is not None)
    offers = [r.frame.src for r in _slot_replies(t, BroadcastService.ADDRESS_ALLOCATION, n0)]
    rec.figure("held_address", f"0x{old:02x}")
    rec.figure("offered", [f"0x{a:02x}" for a in offers])
    rec.figure("address_conflicts", st.counters.address_conflicts)
    check(old not in offers, f"the meter offered address 0x{old:02x}, which the list holds for another meter")
    check(t.participant(s.server_id) is not None, "the meter did not register at a free address")
    fresh_registration(s)


def _checks(t, since_tx: int):  # type: ignore[no-untyped-def]
    """(end of broadcast, records) of the presence checks the station sent."""
    out = []
    for tx in t.gate.sent[since_tx:]:
        if len(tx.data) > 9 and tx.data[3] >> 1 == BROADCAST_ADDRESS and tx.data[4] >> 1 == \
                BroadcastService.ADDRESS_CHECK:
            out.append((tx.at + wire_time(len(tx.data)), decode_records(tx.data[10:-3])))
    return out


def _presence_round(s, rec, checks: int = 3):  # type: ignore[no-untyped-def]
    t = s.tester
    ensure_registered(s)
    t.resume()
    n_rx, n_tx = len(t.raw.received), len(t.gate.sent)
    st = t.station
    target = st.counters.checks + checks
    t.wait(checks * t.timing.check_period + 3.0, lambda: st.counters.checks >= target and st.idle)
    rounds = []
    replies = _slot_replies(t, BroadcastService.ADDRESS_CHECK, n_rx)
    for end, records in _checks(t, n_tx):
        mine = next((r for r in records if r.server_id[:10] == s.server_id[:10]), None)
        if mine is None:
            continue
        listen = (len(records) + 1) * t.timing.slots.slot_period + t.timing.slots.reply_window
        got = [r for r in replies if end <= r.t <= end + listen + 0.05 and r.frame.src == mine.address]
        rounds.append((end, mine, got))
    return rounds


@case("HDLC-PRES-01", "answers every presence check with its record",
      "LMN-STACK.md 3.5 (presence check, selector 2)", group=G, catches=("silent",))
def presence(s, rec) -> None:  # type: ignore[no-untyped-def]
    rounds = _presence_round(s, rec)
    check(rounds, "the meter was not in any presence check (dropped or never registered)")
    answered = 0
    for _end, mine, got in rounds:
        if got:
            r = got[0]
            rec.frame(r.t, "rx", r.raw, "presence reply")
            try:
                (record,) = decode_records(r.frame.info)
            except (RecordError, ValueError) as exc:
                raise CaseFailed(f"presence reply record does not decode: {exc}") from None
            check(record.server_id[:10] == mine.server_id[:10] and record.address == mine.address,
                  "presence reply names another meter or address")
            answered += 1
    rec.figure("checks", len(rounds))
    rec.figure("answered", answered)
    check(answered == len(rounds), f"answered {answered} of {len(rounds)} presence checks")


@case("HDLC-SLOT-01", "slot discipline: replies start and end inside their slot's reply window (measured)",
      "LMN-STACK.md 3.5 (slot grid: 10 ms slots, reply within 5 ms of the slot start)", group=G,
      catches=("wrong_slot", "late_replies"))
def slots(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    g = t.timing.slots
    tol = getattr(t.link, "timing_tolerance", 0.0)
    rounds = _presence_round(s, rec)
    check(rounds, "the meter was not in any presence check")
    starts, ends, bad = [], [], []
    for end, mine, got in rounds:
        if not got:
            bad.append(f"no reply in slot {mine.slot}")
            continue
        r = got[0]
        slot_start = end + mine.slot * g.slot_period
        start_off, end_off = r.start - slot_start, r.t - slot_start
        starts.append(round(start_off * 1000, 3))
        ends.append(round(end_off * 1000, 3))
        rec.frame(r.t, "rx", r.raw, f"slot {mine.slot}: start {start_off * 1000:.3f} ms, end {end_off * 1000:.3f} ms "
                  "after the slot start")
        if start_off < -tol or end_off > g.reply_window + tol:
            bad.append(f"reply in slot {mine.slot} from {start_off * 1000:.3f} to {end_off * 1000:.3f} ms after the "
                       f"slot start (window 0 to {g.reply_window * 1000:g} ms)")
    rec.figure("reply_start_ms", starts)
    rec.figure("reply_end_ms", ends)
    rec.figure("tolerance_ms", tol * 1000)
    check(not bad, "; ".join(bad))


@case("HDLC-MOVE-01", "listed under another address: stops answering there and registers again",
      "LMN-STACK.md 3.5, 3.7 (REGISTERED -> UNREGISTERED on a list that names the meter elsewhere)", group=G)
def moved(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    old = ensure_registered(s)
    other = next(a for a in range(MAX_METER_ADDRESS, MIN_METER_ADDRESS, -1)
                 if a != old and a not in t.station.participants)
    t.pause()
    records = [ParticipantRecord.for_meter(other, 1, s.server_id)]
    frame = encode_frame(BROADCAST_ADDRESS, BroadcastService.ADDRESS_CHECK, GATEWAY_ADDRESS,
                         BroadcastService.ADDRESS_CHECK, UI, encode_records(records))
    t.send(frame, f"presence check listing the meter under 0x{other:02x}")
    got = t.quiet(0.2)
    for r in got[:4]:
        rec.frame(r.t, "rx", r.raw, str(r.frame))
    check(not got, f"the meter answered a check that lists it under 0x{other:02x}: {got[0].frame if got else ''}")
    # It must now count itself unregistered: a gateway that forgot it sees it register again.
    fresh_registration(s)
    rec.figure("old_address", f"0x{old:02x}")
    rec.figure("new_address", f"0x{s.address:02x}")


@case("HDLC-CONN-01", "SNRM -> UA, DISC -> UA, DISC when disconnected -> DM",
      "LMN-STACK.md 3.3, 3.4 (normal response mode: SNRM, UA, DISC, DM)", group=G, catches=("dm", "drop_replies"))
def connect(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    tried = []
    for sel in (Selector.SML_COSEM, Selector.TLS_SML_COSEM, Selector.SYM_HDLC):
        conn = RawConnection(s, sel)
        got = conn.connect()
        tried.append(f"{int(sel)}: {got.frame.kind.value if got else 'no answer'}")
        if got is None or got.frame.kind is not Kind.UA:
            continue
        conn.expect(got, Kind.UA, what=f"SNRM on selector {int(sel)}")
        conn.expect(conn.disconnect(), Kind.UA, what="DISC of an open connection")
        conn.expect(conn.disconnect(), Kind.DM, what="DISC in disconnected mode")
        rec.figure("selector", int(sel))
        rec.figure("snrm_answers", tried)
        return
    rec.figure("snrm_answers", tried)
    raise CaseFailed("no selector accepted a connection: " + ", ".join(tried))


@case("HDLC-DM-01", "DM on an unserved selector and on frames outside a connection",
      "LMN-STACK.md 3.2 (selectors), 3.4 (DM)", group=G)
def dm_unserved(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    conn = RawConnection(s, 0x30)  # no specification assigns selector 48
    conn.expect(conn.connect(), Kind.DM, what="SNRM on the unassigned selector 48")
    idle = RawConnection(s, Selector.SML_COSEM)
    idle.expect(idle.poll(0), Kind.DM, what="RR on selector 3 without a connection")


def _request_frames(conn: RawConnection, s) -> bytes:  # type: ignore[no-untyped-def]
    """A request whose answer spans more than one I frame where the meter frames it so (40 reads of 1.8.0)."""
    return sml_request(s.server_id, energy_request(40))


def _first_i(conn: RawConnection, got, rec, limit: float = 2.0):  # type: ignore[no-untyped-def]
    """Poll until the meter sends its first I frame; returns (frame, RNR count, seconds)."""
    t = conn.t
    t0, rnr = t.now, 0
    while got is None or got.frame.kind is not Kind.I:
        if got is not None and got.frame.kind is Kind.RNR:
            rnr += 1
        if got is not None and got.frame.kind is Kind.DM:
            raise CaseFailed("the meter ended the connection (DM) instead of answering the request")
        if t.now - t0 > limit:
            raise CaseFailed(f"no answer to the request within {limit:g} s of polling ({rnr} RNR)")
        if got is None or got.frame.kind is Kind.RNR:
            t.wait(0.01)
        got = conn.poll()
    return got, rnr, t.now - t0


@case("HDLC-SEQ-01", "N(S)/N(R) in sequence; the last I frame resent when its acknowledgement is lost",
      "LMN-STACK.md 3.4 (I frames, stop-and-wait, retransmission)", group=G, catches=("sequence_error",))
def sequence(s, rec) -> None:  # type: ignore[no-untyped-def]
    conn = open_sml_selector(s)
    got = conn.send_i(_request_frames(conn, s))
    check(got is not None, "no answer to an I frame")
    check(got.frame.kind in (Kind.I, Kind.RR, Kind.RNR), f"I frame answered with {got.frame.kind.value}")
    check(got.frame.nr == 1, f"answer to I N(S)=0 carries N(R)={got.frame.nr}, expected 1")
    first, _, _ = _first_i(conn, got, rec)
    check(first.frame.ns == 0, f"the meter's first I frame has N(S)={first.frame.ns}, expected 0")
    again = conn.poll(0)  # we "lost" it: N(R) stays 0
    check(again is not None and again.frame.kind is Kind.I, "the meter did not resend its I frame when the poll "
          "did not acknowledge it")
    check(again.frame.ns == 0 and again.frame.info == first.frame.info,
          f"the resent frame differs (N(S)={again.frame.ns}, {len(again.frame.info)} bytes)")
    conn.take_i(first)
    nxt = conn.poll()
    check(nxt is not None and nxt.frame.kind in (Kind.I, Kind.RR), "no answer after the acknowledgement")
    if nxt.frame.kind is Kind.I:
        check(nxt.frame.ns == 1, f"second I frame has N(S)={nxt.frame.ns}, expected 1")
        conn.take_i(nxt)
        rec.figure("i_frames", 2)
    conn.expect(conn.disconnect(), Kind.UA, what="DISC")


@case("HDLC-RESP-01", "answers a request promptly (RNR phases bounded)",
      "LMN-STACK.md 3.4 (RR/RNR polling); bound: 2 s of polling", group=G, catches=("rnr",))
def response_time(s, rec) -> None:  # type: ignore[no-untyped-def]
    conn = open_sml_selector(s)
    got = conn.send_i(sml_request(s.server_id, energy_request(1)))
    first, rnr, secs = _first_i(conn, got, rec)
    rec.figure("rnr_answers", rnr)
    rec.figure("seconds_to_answer", round(secs, 4))
    conn.take_i(first)
    conn.poll()
    conn.disconnect()


@case("HDLC-RNR-01", "gateway busy (RNR): the meter withholds I frames until RR",
      "LMN-STACK.md 3.4 (RNR from the primary)", group=G)
def rnr(s, rec) -> None:  # type: ignore[no-untyped-def]
    conn = open_sml_selector(s)
    got = conn.send_i(_request_frames(conn, s))
    first, _, _ = _first_i(conn, got, rec)
    conn.take_i(first)
    for _ in range(2):
        busy = conn.poll(busy=True)
        conn.expect(busy, Kind.RR, Kind.RNR, what="RNR (gateway busy)")
    nxt = conn.poll()
    check(nxt is not None and nxt.frame.kind in (Kind.I, Kind.RR), "no answer to RR after the busy phase")
    if nxt.frame.kind is Kind.I:
        check(nxt.frame.ns == 1, f"after the busy phase the meter sent N(S)={nxt.frame.ns}, expected 1")
        rec.figure("withheld_frame_sent_after_rr", True)
    conn.disconnect()


def _corrupt(frame: bytes, at: int) -> bytes:
    b = bytearray(frame)
    b[at] ^= 0x5A
    return bytes(b)


@case("HDLC-CRC-01", "frames with a bad FCS or HCS are ignored",
      "LMN-STACK.md 3.1 (HCS, FCS: CRC-16/X-25)", group=G)
def bad_crc(s, rec) -> None:  # type: ignore[no-untyped-def]
    ensure_registered(s)
    conn = RawConnection(s, Selector.SML_COSEM)
    got = conn.t.exchange(_corrupt(conn.frame(SNRM), -2), src=s.address, note="SNRM with a bad FCS")
    check(got is None, f"a SNRM with a bad FCS was answered: {got.frame if got else ''}")
    i_frame = conn.frame(control_i(0, 0), sml_request(s.server_id, energy_request(1)))
    got = conn.t.exchange(_corrupt(i_frame, 9), src=s.address, note="I frame with a bad HCS")
    check(got is None, f"an I frame with a bad HCS was answered: {got.frame if got else ''}")
    got = conn.t.exchange(_corrupt(i_frame, -2), src=s.address, note="I frame with a bad FCS")
    check(got is None, f"an I frame with a bad FCS was answered: {got.frame if got else ''}")
    ok = conn.connect()
    check(ok is not None, "no answer to a good SNRM after the bad frames")
    check(ok.frame.kind in (Kind.UA, Kind.DM), f"good SNRM answered with {ok.frame.kind.value}")
    if ok.frame.kind is Kind.UA:
        conn.disconnect()


@case("HDLC-FRM-01", "every frame from the meter is well formed (format, addresses, HCS and FCS)",
      "LMN-STACK.md 3.1 (frame format type 3, CRC-16/X-25, no byte stuffing), 3.2", group=G,
      catches=("bad_fcs", "bad_hcs"))
def frame_format(s, rec) -> None:  # type: ignore[no-untyped-def]
    t = s.tester
    ensure_registered(s)
    rx = t.node.receiver.counters
    before = (rx.bad_fcs, rx.bad_hcs, rx.garbage_bytes)
    n0 = len(t.raw.received)
    _presence_round(s, rec, checks=2)
    conn = RawConnection(s, Selector.SML_COSEM)
    got = conn.connect()
    if got is not None and got.frame.kind is Kind.UA:
        conn.send_i(sml_request(s.server_id, energy_request(1)))
        conn.poll(1)
        conn.send(DISC)
    frames = [r for r in t.raw.received[n0:] if r.frame.src == s.address]
    bad = []
    for r in frames:
        f = r.frame
        if f.dst != GATEWAY_ADDRESS:
            bad.append(f"frame to 0x{f.dst:02x}")
        if f.src_selector != f.dst_selector:
            bad.append(f"selectors {f.src_selector}/{f.dst_selector} differ")
        if f.kind is Kind.UNKNOWN:
            bad.append(f"unknown control field {f.control:02x}")
    after = (rx.bad_fcs, rx.bad_hcs, rx.garbage_bytes)
    rec.figure("frames", len(frames))
    rec.figure("bad_fcs", after[0] - before[0])
    rec.figure("bad_hcs", after[1] - before[1])
    rec.figure("garbage_bytes", after[2] - before[2])
    for r in frames[:6]:
        rec.frame(r.t, "rx", r.raw, str(r.frame))
    check(after[0] == before[0] and after[1] == before[1],
          f"{after[0] - before[0]} frames with a bad FCS and {after[1] - before[1]} with a bad HCS arrived")
    check(frames, "no frame from the meter arrived")
    check(not bad, "; ".join(bad[:5]))
