"""Meter side of the SYM pairing protocol as a sans-I/O state machine (LMN-STACK.md section 5).

:class:`SymMeter` is the upper layer of HDLC selector 6 on the meter: feed it the info bytes of received
I-frames with :meth:`~SymMeter.receive`, send what :meth:`~SymMeter.data_to_send` returns, and handle the
events from :meth:`~SymMeter.next_event`. It does no I/O: when its persisted state must change it emits
:class:`~bab.sym.events.SaveState` and holds the answer back until the caller acknowledges the atomic write
with :meth:`~SymMeter.state_saved` (or reports :meth:`~SymMeter.state_save_failed`). Answers therefore
never get ahead of the persisted state.

Input is a byte stream: messages are reassembled by their length field, so one message per I-frame and
messages split over several I-frames both work. :meth:`~SymMeter.connection_reset` (call it on SNRM/DISC
of selector 6) drops a partial message.

Policy (documented choices for profile 2015, [I]):

* **Counter**: the meter keeps a persisted high-water mark ``counter`` = the counter of the last accepted
  request after SYNC. A SYNC request (0x01) is accepted with any counter and always (re)starts a pairing:
  the reference gateway sends every SYNC with ``0xFFFFFFFF`` and no data, so a SYNC is the same 25 bytes
  each time for one MK and meter, and a replay cannot be told from a gateway starting again (section 13).
  The SYNC answer carries ``high-water + 1``; it is kept in memory only (SYNC changes nothing persistent,
  so a replayed SYNC costs no flash write). Every later request must carry a counter above both marks
  (equal = ``replayed_counter``, lower = ``old_counter``; the gateway uses the last answer's counter + 1)
  and its answer echoes that counter. The new high-water mark is persisted before the answer is released.
  A crypto-reset keeps the counter (old messages stay unreplayable).
* **Dropped, answered only with the profile's rejection notice** (:meth:`SymProfile.rejection_notice`: a
  message that carries nothing authenticated, because a gateway waits for an answer to every request; profile
  2015's notice fails the gateway's MAC check, which ends the reference gateway's pairing cleanly, where DM,
  silence or RR make it crash or poll forever, LMN-STACK.md 13). An attacker without MK learns nothing but
  "rejected": bad length field / flood (``bad_length``, ``overflow``), CMAC failure (``bad_mac``: wrong MK,
  wrong meter ID, bit errors), stale counter (``replayed_counter``, ``old_counter``), ``counter_exhausted``.
  A running pairing continues in the engine.
* **Authenticated and fresh, but rejected**: the answer is whatever :meth:`SymProfile.error_answer`
  returns, else the rejection notice (profile 2015 defines no error message). Running pairing continues:
  unknown command (``unknown_command``), anything while paired (``already_paired``). Running pairing
  aborted with :class:`PairingFailed` (the peer holds MK but does something wrong; it must restart with
  SYNC): command out of order (``wrong_sequence``), bad payload (``bad_der``, ``bad_certificate``,
  ``bad_private_key``, ``key_mismatch``, ``bad_payload_length``, ``bad_padding``, ``bad_algorithms``), route
  (b) without an own certificate (``no_own_certificate``), injection refused (``injection_refused``), an
  answer too long for the profile (``message_too_long``), a failed state write (``store_write_failed``).
* Aborting without an answer: a message cut off by :meth:`SymMeter.connection_reset` (``truncated``,
  ``connection_reset``): the connection is gone.
* Nothing of a failed message is ever persisted. Certificates and keys received during a pairing stay in
  memory until COMMIT, which persists ``paired`` with all of them in ONE :class:`SaveState`.
* Re-pairing while paired is refused until a crypto-reset (:meth:`SymMeter.crypto_reset`).

Every drop increments ``stats[reason]`` and emits :class:`MessageDropped`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from .credentials import load_certificate
from .errors import SymError, SymFormatError, SymSequenceError, SymUsageError
from .events import MessageDropped, PairingCompleted, PairingFailed, SaveState, SymOutputs
from .profile import AlgorithmList, Credentials, Direction, PairingStep, SymMessage, SymProfile
from .profile2015 import Profile2015
from .state import COUNTER_MAX, PairingState

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Session:
    """In-memory progress of one pairing attempt (never persisted before COMMIT)."""

    position: int = 1  # index into profile.flow of the next expected step
    counter: int = 0  # counter of the last answer sent in this session (in-memory high-water mark)
    credentials: Credentials | None = field(default=None, repr=False)
    peer_certificate: bytes | None = field(default=None, repr=False)
    profile_data: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class _PendingSave:
    state: PairingState
    answer: bytes
    session: _Session | None
    completed: PairingCompleted | None
    discard_answer: bool = False


class SymMeter(SymOutputs):
    """Meter-side SYM state machine for one meter (server ID ``meter_id``), starting from ``state``.

    ``own_certificate``: DER certificate of the meter's own (generated) TLS key, answered in route (b);
    ``algorithms``: TLS suites/groups listed in the ALGORITHMS answer; ``max_fragment_length``: value of
    the COMMIT answer; ``accept_injected_key``: whether route (a) key injection is allowed.
    """

    def __init__(
        self,
        state: PairingState,
        meter_id: bytes,
        *,
        profile: SymProfile | None = None,
        own_certificate: bytes | None = None,
        algorithms: AlgorithmList | None = None,
        max_fragment_length: int = 512,
        accept_injected_key: bool = True,
    ) -> None:
        if len(meter_id) != 10:
            raise ValueError("meter ID (server ID) must be 10 bytes")
        if own_certificate is not None:
            load_certificate(own_certificate)
        if not 0 < max_fragment_length <= 0xFFFF:
            raise ValueError("max_fragment_length must fit 16 bits")
        self._state = state
        self._meter_id = bytes(meter_id)
        self._profile = profile if profile is not None else Profile2015()
        self._own_certificate = own_certificate
        self._algorithms = algorithms if algorithms is not None else AlgorithmList()
        self._max_fragment_length = max_fragment_length
        self._accept_injected_key = accept_injected_key
        self._inbuf = bytearray()
        self._init_outputs()
        self._session: _Session | None = None
        self._pending: _PendingSave | None = None
        self.stats: Counter[str] = Counter()

    # -- public API ----------------------------------------------------------------------------------------

    @property
    def state(self) -> PairingState:
        """The last state acknowledged as persisted."""
        return self._state

    @property
    def paired(self) -> bool:
        return self._state.paired

    @property
    def profile(self) -> SymProfile:
        return self._profile

    @property
    def save_pending(self) -> bool:
        """True while a :class:`SaveState` waits for :meth:`state_saved`/:meth:`state_save_failed`."""
        return self._pending is not None

    def receive(self, data: bytes) -> None:
        """Feed received bytes (info field of selector-6 I-frames). Never raises for bad input."""
        if len(self._inbuf) + len(data) > 2 * self._profile.max_message_length:
            # more than any legal message can explain: line noise or a flood; start over
            self._drop("overflow")
            self._inbuf.clear()
            self._notice(0)
            return
        self._inbuf += data
        self._process()




    def state_saved(self) -> None:
        """The caller has atomically persisted the last :class:`SaveState`: release its answer."""
        pending = self._take_pending()
        self._state = pending.state
        self._session = pending.session
        if not pending.discard_answer:
            self._outbuf += pending.answer
        if pending.completed is not None:
            self._events.append(pending.completed)
        self._process()

    def state_save_failed(self) -> None:
        """The write of the last :class:`SaveState` failed: nothing changes, the pairing is aborted."""
        pending = self._take_pending()
        self._drop("store_write_failed")
        self._abort("store_write_failed")
        if not pending.discard_answer:
            self._notice(int.from_bytes(pending.answer[5:9], "big") if len(pending.answer) >= 9 else 0)
        self._process()

    def connection_reset(self) -> None:
        """The HDLC connection on selector 6 was (re)set: drop partial input and any running pairing."""
        if self._inbuf:
            self._drop("truncated")
            self._inbuf.clear()
        self._outbuf.clear()
        if self._pending is not None:
            self._pending.discard_answer = True
        self._abort("connection_reset")

    def crypto_reset(self) -> None:
        """Kryptoreset: emits a :class:`SaveState` with the unpaired state (MK kept, material wiped)."""
        if self._pending is not None:
            raise SymUsageError("crypto_reset while a state save is unacknowledged")
        self._abort("crypto_reset")
        self._pending = _PendingSave(self._state.crypto_reset(), b"", None, None, discard_answer=True)
        self._events.append(SaveState(self._pending.state))

    # -- internals -----------------------------------------------------------------------------------------

    def _take_pending(self) -> _PendingSave:
        if self._pending is None:
            raise SymUsageError("no state save is pending")
        pending, self._pending = self._pending, None
        return pending

    def _drop(self, reason: str, message: SymMessage | None = None) -> None:
        self.stats[reason] += 1
        cmd = None if message is None else message.command
        cnt = None if message is None else message.counter
        log.info("SYM message dropped: %s (cmd %s, counter %s)", reason, cmd, cnt)
        self._events.append(MessageDropped(reason, cmd, cnt))

    def _notice(self, counter: int) -> None:
        """Answer a dropped or rejected request with the profile's rejection notice (if it has one)."""
        notice = self._profile.rejection_notice(counter)
        if notice is not None:
            self._outbuf += notice

    def _abort(self, reason: str) -> None:
        if self._session is not None:
            self._session = None
            log.warning("SYM pairing aborted: %s", reason)
            self._events.append(PairingFailed(reason))

    def _process(self) -> None:
        while self._inbuf and self._pending is None:
            try:
                total = self._profile.frame_length(bytes(self._inbuf))
            except SymError as exc:
                self._drop(exc.reason)
                counter = int.from_bytes(self._inbuf[5:9], "big") if len(self._inbuf) >= 9 else 0
                self._inbuf.clear()
                self._notice(counter)
                return
            if total is None or len(self._inbuf) < total:
                return
            raw = bytes(self._inbuf[:total])
            del self._inbuf[:total]
            self._handle(raw)

    def _key(self) -> bytes:
        pdata = self._session.profile_data if self._session is not None else self._state.profile_data
        return self._profile.session_key(self._state.master_key, pdata)

    def _handle(self, raw: bytes) -> None:
        profile = self._profile
        key = self._key()
        try:
            msg = profile.open(key, self._meter_id, Direction.GATEWAY_TO_METER, raw)
        except SymError as exc:
            # Unauthenticated input gets only the rejection notice. A bad padding behind a valid MAC (a profile
            # that strips it in open) is the peer's fault, so a running pairing is aborted in that case.
            self._drop(exc.reason)
            if exc.reason == "bad_padding":
                self._abort(exc.reason)
            self._notice(int.from_bytes(raw[5:9], "big"))
            return
        step = profile.step_of(msg.command)
        if step not in profile.flow:
            step = None
        cur = self._session
        hw = self._state.counter if cur is None else max(self._state.counter, cur.counter)
        sync = step is profile.flow[0]
        if not sync:
            if msg.counter == hw:
                self._drop("replayed_counter", msg)
                self._notice(msg.counter)
                return
            if msg.counter < hw:
                self._drop("old_counter", msg)
                self._notice(msg.counter)
                return
        new_counter = hw + 1 if sync else msg.counter
        if new_counter > COUNTER_MAX:
            self._drop("counter_exhausted", msg)
            self._notice(msg.counter)
            return
        # from here on the request is authenticated and fresh
        if self._state.paired:
            self._reject("already_paired", msg, new_counter, key, abort=False)
            return
        if step is None:
            self._reject("unknown_command", msg, new_counter, key, abort=False)
            return
        if sync:
            self._abort("restarted")
            session = _Session(counter=new_counter)
        else:
            if cur is None or cur.position >= len(profile.flow) or profile.flow[cur.position] is not step:
                self._reject("wrong_sequence", msg, new_counter, key, abort=True)
                return
            session = _Session(
                cur.position + 1, new_counter, cur.credentials, cur.peer_certificate, dict(cur.profile_data)
            )
        try:
            answer, new_state, completed = self._perform(step, msg, key, session, new_counter)
            sealed = profile.seal(
                key, self._meter_id, Direction.METER_TO_GATEWAY, profile.answer_code(msg.command),
                new_counter, answer,
            )
        except SymError as exc:
            self._reject(exc.reason, msg, new_counter, key, abort=True)
            return
        next_session = None if completed is not None else session
        if new_state == self._state:
            # nothing to persist (SYNC): answer at once
            self._session = next_session
            self._outbuf += sealed
            return
        self._pending = _PendingSave(new_state, sealed, next_session, completed)
        self._events.append(SaveState(new_state))

    def _reject(self, reason: str, msg: SymMessage, counter: int, key: bytes, *, abort: bool) -> None:
        """Reject an authenticated, fresh request: count, maybe abort, answer only if the profile says so."""
        self._drop(reason, msg)
        if abort:
            self._abort(reason)
        error = self._profile.error_answer(reason, msg)
        if error is not None:
            code, payload = error
            try:
                self._outbuf += self._profile.seal(
                    key, self._meter_id, Direction.METER_TO_GATEWAY, code, counter, payload
                )
                return
            except SymError as exc:
                log.warning("SYM error answer not sent: %s", exc.reason)
        self._notice(msg.counter)

    def _perform(
        self, step: PairingStep, msg: SymMessage, key: bytes, session: _Session, counter: int
    ) -> tuple[bytes, PairingState, PairingCompleted | None]:
        """Do one step; returns (answer payload, new persisted state, completion event or None)."""
        p = self._profile
        plain_next = self._state.with_counter(counter)
        if step is PairingStep.SYNC:
            p.decode_empty(msg.data)
            return p.encode_empty(), self._state, None  # the SYNC answer counter is not persisted
        if step is PairingStep.ALGORITHMS:
            p.decode_empty(msg.data)
            return p.encode_algorithms(self._algorithms), plain_next, None
        if step is PairingStep.CREDENTIALS:
            creds = p.decode_credentials(msg.data)
            if creds.certificate is not None:
                if not self._accept_injected_key:
                    raise SymSequenceError("key injection (route a) is disabled", "injection_refused")
                session.credentials = creds
                return p.encode_empty(), plain_next, None
            if self._own_certificate is None:
                raise SymFormatError("route (b) asked but the meter has no own certificate", "no_own_certificate")
            session.credentials = Credentials()
            return p.encode_certificate(self._own_certificate), plain_next, None
        if step is PairingStep.PEER_CERTIFICATE:
            session.peer_certificate = p.decode_certificate(msg.data)
            return p.encode_empty(), plain_next, None
        if step is PairingStep.KEY_AGREEMENT:
            answer, pdata = p.meter_key_agreement(key, self._meter_id, msg.data)
            session.profile_data = dict(pdata)
            return answer, plain_next, None
        if step is PairingStep.COMMIT:
            p.decode_empty(msg.data)
            creds = session.credentials
            if creds is None or session.peer_certificate is None:
                raise SymSequenceError("commit before credentials and peer certificate", "wrong_sequence")
            meter_cert = creds.certificate if creds.certificate is not None else self._own_certificate
            if meter_cert is None:
                raise SymFormatError("no meter certificate", "no_own_certificate")
            new_state = PairingState(
                master_key=self._state.master_key,
                counter=counter,
                paired=True,
                peer_certificate=session.peer_certificate,
                own_certificate=creds.certificate,
                own_private_key=creds.private_key,
                profile_data=dict(session.profile_data),
            )
            event = PairingCompleted(session.peer_certificate, meter_cert, creds.private_key)
            return p.encode_commit_answer(self._max_fragment_length), new_state, event
        raise SymSequenceError(f"step {step.value} not handled", "wrong_sequence")
