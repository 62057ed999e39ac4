"""Helpers the cases share: getting the meter registered, a raw HDLC connection driven frame by frame, the SML
request files the suite sends."""

from __future__ import annotations

from bab.cosem.base_meter import ENERGY_IMPORT
from bab.cosem.objects import CosemClass, ObjectName
from bab.hdlc.frame import (
    DISC,
    GATEWAY_ADDRESS,
    SNRM,
    Kind,
    Selector,
    control_i,
    control_rnr,
    control_rr,
    encode_frame,
)
from bab.sml import encode_sml
from bab.sml.messages import GetProcParameterReq, MessageBody, PublicCloseReq, PublicOpenReq, SmlMessage

from .case import CaseFailed, CaseSkipped, check
from .tester import Received

#: Selectors a base meter may serve for SML, in the order the suite tries them.
SML_SELECTORS = (Selector.SML_COSEM, Selector.TLS_SML_COSEM, Selector.SYM_HDLC)


def ensure_registered(s, timeout: float = 30.0) -> int:  # type: ignore[no-untyped-def]
    """The meter's address once the tester's gateway station has it registered (starting a station if none)."""
    t = s.tester
    if t.gate.station is None:
        t.start_gateway()
    p = t.registered(s.options.meter or s.server_id, timeout)
    if p is None:
        which = s.options.meter.hex() if s.options.meter else "any meter"
        raise CaseFailed(f"{which} did not register within {timeout:g} s of allocation broadcasts")
    s.server_id, s.address = p.server_id, p.address
    return p.address


def fresh_registration(s, timeout: float = 30.0) -> int:  # type: ignore[no-untyped-def]
    """A new gateway station (empty registry), and the meter registered with it."""
    s.tester.start_gateway()
    return ensure_registered(s, timeout)


def sml_request(server_id: bytes, bodies: list[MessageBody], file_id: bytes = b"CONF") -> bytes:
    """One SML request file: PublicOpen.Req, ``bodies``, PublicClose.Req (transport v1 framing)."""
    msgs = [SmlMessage(file_id + b"\x01", PublicOpenReq(client_id=b"BABCONF", req_file_id=file_id,
                                                        server_id=server_id))]
    msgs += [SmlMessage(file_id + bytes((i + 2,)), b) for i, b in enumerate(bodies)]
    msgs.append(SmlMessage(file_id + bytes((len(bodies) + 2,)), PublicCloseReq()))
    return encode_sml(msgs)


def energy_request(n: int = 1) -> list[MessageBody]:
    """``n`` GetProcParameter.Req of 1-0:1.8.0 (class 0x8002, attributes 2..5)."""
    name = ObjectName(ENERGY_IMPORT, CosemClass.ADVANCED_EXT_REGISTER).to_bytes()
    return [GetProcParameterReq(parameter_tree_path=[name, *(a.to_bytes(2, "big") for a in (2, 3, 4, 5))])
            for _ in range(n)]


class RawConnection:
    """One HDLC connection the tester drives frame by frame (gateway station paused)."""

    def __init__(self, s, selector: int) -> None:  # type: ignore[no-untyped-def]
        self.t = s.tester
        self.address: int = s.address
        self.selector = selector
        self.vs = 0
        self.vr = 0

    def frame(self, control: int, info: bytes = b"") -> bytes:
        return encode_frame(self.address, self.selector, GATEWAY_ADDRESS, self.selector, control, info)

    def send(self, control: int, info: bytes = b"", note: str = "", timeout: float | None = None) -> Received | None:
        return self.t.exchange(self.frame(control, info), src=self.address, note=note, timeout=timeout)

    def expect(self, got: Received | None, *kinds: Kind, what: str) -> Received:
        check(got is not None, f"no answer to {what} within the reply timeout")
        assert got is not None
        check(got.frame.kind in kinds, f"{what} answered with {got.frame.kind.value}, expected "
              f"{' or '.join(k.value for k in kinds)}")
        check(got.frame.dst_selector == self.selector and got.frame.src_selector == self.selector,
              f"{what} answered on selector {got.frame.src_selector}, asked {self.selector}")
        return got

    def connect(self) -> Received | None:
        self.vs = self.vr = 0
        return self.send(SNRM, note="SNRM")

    def disconnect(self) -> Received | None:
        return self.send(DISC, note="DISC")

    def send_i(self, info: bytes) -> Received | None:
        got = self.send(control_i(self.vs, self.vr), info, note=f"I N(S)={self.vs} N(R)={self.vr}")
        self.vs = (self.vs + 1) & 7
        return got

    def poll(self, nr: int | None = None, busy: bool = False) -> Received | None:
        nr = self.vr if nr is None else nr
        return self.send(control_rnr(nr) if busy else control_rr(nr), note=f"{'RNR' if busy else 'RR'} N(R)={nr}")

    def take_i(self, got: Received) -> None:
        """Count an I frame received in sequence."""
        if got.frame.kind is Kind.I and got.frame.ns == self.vr:
            self.vr = (self.vr + 1) & 7


def open_sml_selector(s) -> RawConnection:  # type: ignore[no-untyped-def]
    """A raw connection on the plain SML selector (3); fails when the meter refuses it."""
    ensure_registered(s)
    conn = RawConnection(s, Selector.SML_COSEM)
    got = conn.connect()
    check(got is not None, "no answer to SNRM on selector 3 (plain SML)")
    assert got is not None
    if got.frame.kind is Kind.DM:
        raise CaseSkipped("the meter refuses plain SML (selector 3) with DM, as a paired meter must: this case "
                          "needs an unpaired meter")
    conn.expect(got, Kind.UA, what="SNRM on selector 3")
    return conn
