"""SYM cases (LMN-STACK.md sections 5 and 13, the "2015" profile in the reference gateway's format): a full
pairing with the meter's master key, and the negative cases (bad MAC, replayed counter, impossible length),
each refused with the meter still answering a correct SYNC afterwards. The full pairing runs last, so it
also proves the meter pairable after every refusal."""

from __future__ import annotations

from collections.abc import Callable

from bab.hdlc import events as ev
from bab.hdlc.frame import Selector
from bab.sym.profile import Direction
from bab.sym.profile2015 import Profile2015

from .case import CaseFailed, CaseSkipped, case, check
from .common import ensure_registered

G = "SYM"
Message = bytes | Callable[[list[bytes | None]], bytes]  # a message, or one built from the answers so far
SYNC, ALGORITHMS = 0x01, 0x02


class SymRawClient:
    """Client layer: sends SYM messages one by one, each after the answer to the previous one (or after
    ``patience`` idle polls without one); keeps the answers (None where none came)."""

    def __init__(self, messages: list[Message], profile: Profile2015, patience: int = 200) -> None:
        self.messages = list(messages)
        self.profile = profile
        self.patience = patience
        self.answers: list[bytes | None] = []
        self._buf = bytearray()
        self._sent = 0
        self._idle = 0

    def data_to_send(self, max_size: int) -> bytes:
        if self._sent == len(self.answers) and self._sent < len(self.messages):
            m = self.messages[self._sent]
            if callable(m):
                m = self.messages[self._sent] = m(self.answers)
            self._sent += 1
            self._idle = 0
            return m[:max_size]
        if len(self.answers) < self._sent:
            self._idle += 1
            if self._idle > self.patience:
                self.answers.append(None)
                self._buf.clear()
        return b""

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            total = self.profile.frame_length(bytes(self._buf))
        except Exception:
            total = len(self._buf)
        if total is not None and len(self._buf) >= total:
            self.answers.append(bytes(self._buf[:total]))
            del self._buf[:total]

    def is_done(self) -> bool:
        return len(self.answers) >= len(self.messages)

    def connection_lost(self, reason: str | None) -> None:
        while len(self.answers) < len(self.messages):
            self.answers.append(None)


def _mk(s) -> bytes:  # type: ignore[no-untyped-def]
    if s.options.master_key is None:
        raise CaseSkipped("no master key given (--master-key FILE)")
    return s.options.master_key


def _seal(s, command: int, counter: int, data: bytes = b"") -> bytes:  # type: ignore[no-untyped-def]
    p = Profile2015()
    return p.seal(p.session_key(_mk(s), {}), s.server_id, Direction.GATEWAY_TO_METER, command, counter, data)


def _verify(s, raw: bytes | None, command: int):  # type: ignore[no-untyped-def]
    """The opened answer if ``raw`` is a valid answer to ``command``, else None."""
    if raw is None:
        return None
    p = Profile2015()
    if p.is_rejection_notice(raw):
        return None
    try:
        msg = p.open(p.session_key(_mk(s), {}), s.server_id, Direction.METER_TO_GATEWAY, raw)
    except Exception:
        return None
    return msg if msg.command == p.answer_code(command) else None


def _run(s, rec, messages: list[Message]) -> list[bytes | None]:  # type: ignore[no-untyped-def]
    address = ensure_registered(s)
    client = SymRawClient(messages, Profile2015())
    result = s.tester.converse(address, Selector.SYM_HDLC, client, timeout=20.0)
    if isinstance(result, ev.ExchangeFailed) and result.reason == "refused (DM)" and not any(client.answers):
        raise CaseFailed("the meter refuses SYM (selector 6) with DM: it holds no master key or is paired already")
    for m in client.messages:
        if isinstance(m, bytes):
            rec.frame(s.tester.now, "tx", m, f"SYM command 0x{m[0]:02x}")
    for a in client.answers:
        if a is not None:
            rec.frame(s.tester.now, "rx", a, "SYM answer")
    return client.answers


def _still_pairable(s, rec) -> None:  # type: ignore[no-untyped-def]
    (answer,) = _run(s, rec, [_seal(s, SYNC, Profile2015.sync_counter)])
    check(_verify(s, answer, SYNC) is not None, "after the refusal the meter no longer answers a correct SYNC")


@case("SYM-NEG-01", "a request with a bad MAC is refused; the meter stays pairable",
      "LMN-STACK.md 5 (CMAC over header and body), 13", group=G, needs=("master_key",), catches=("sym_bad_mac",))
def bad_mac(s, rec) -> None:  # type: ignore[no-untyped-def]
    msg = bytearray(_seal(s, SYNC, Profile2015.sync_counter))
    msg[-1] ^= 0x01
    (answer,) = _run(s, rec, [bytes(msg)])
    check(_verify(s, answer, SYNC) is None, "a SYNC with a bad MAC was answered as valid")
    rec.figure("answer", "rejection notice" if answer and Profile2015().is_rejection_notice(answer) else
               ("none" if answer is None else "other"))
    _still_pairable(s, rec)


@case("SYM-NEG-02", "a replayed counter is refused; the meter stays pairable",
      "LMN-STACK.md 5 (message counter strictly increasing), 13", group=G, needs=("master_key",))
def replay(s, rec) -> None:  # type: ignore[no-untyped-def]
    def algorithms(answers: list[bytes | None]) -> bytes:
        sync = _verify(s, answers[0], SYNC)
        return _seal(s, ALGORITHMS, (sync.counter + 1) & 0xFFFFFFFF if sync is not None else 0)

    def again(answers: list[bytes | None]) -> bytes:
        return algorithms(answers)  # the very message sent before: same counter, same MAC

    answers = _run(s, rec, [_seal(s, SYNC, Profile2015.sync_counter), algorithms, again])
    sync = _verify(s, answers[0], SYNC)
    check(sync is not None, "no valid answer to SYNC")
    check(_verify(s, answers[1], ALGORITHMS) is not None, "no valid answer to ALGORITHMS with a fresh counter")
    check(_verify(s, answers[2], ALGORITHMS) is None, "the replayed ALGORITHMS request (same counter) was answered")
    rec.figure("replayed_counter", sync.counter + 1)
    _still_pairable(s, rec)


@case("SYM-NEG-03", "a message with an impossible length is refused; the meter stays pairable",
      "LMN-STACK.md 5 (length field: header + blocks + MAC)", group=G, needs=("master_key",))
def wrong_length(s, rec) -> None:  # type: ignore[no-untyped-def]
    msg = bytearray(_seal(s, SYNC, Profile2015.sync_counter))
    total = int.from_bytes(msg[1:5], "big") + 1  # not header + whole blocks + MAC
    msg[1:5] = total.to_bytes(4, "big")
    (answer,) = _run(s, rec, [bytes(msg)])
    check(_verify(s, answer, SYNC) is None, "a SYNC with an impossible length field was answered as valid")
    _still_pairable(s, rec)


@case("SYM-PAIR-01", "full pairing with the master key (route a: certificate and key injected)",
      "LMN-STACK.md 5 (SYNC, ALGORITHMS, CREDENTIALS, PEER_CERTIFICATE, COMMIT), 13", group=G,
      needs=("master_key",), catches=("sym_bad_mac",))
def pairing(s, rec) -> None:  # type: ignore[no-untyped-def]
    from bab.gateway.security import GatewaySecurity

    mk = _mk(s)
    address = ensure_registered(s)
    if s.options.state_dir is None:
        raise CaseSkipped("no state directory for the gateway's keys")
    sec = s.notes.setdefault("security", GatewaySecurity(s.options.state_dir))
    results: list = []
    outcome = s.tester.converse(address, Selector.SYM_HDLC,
                                sec.pairing_client(s.server_id, mk, on_result=results.append), timeout=40.0)
    check(results, f"the pairing did not end ({getattr(outcome, 'reason', '')})")
    r = results[0]
    check(r.ok, f"pairing failed: {r.reason}")
    s.paired_cert_der = r.meter_cert_der
    rec.figure("meter_certificate_bytes", len(r.meter_cert_der or b""))
