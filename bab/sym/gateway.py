"""Gateway side of the SYM pairing protocol as a sans-I/O state machine (LMN-STACK.md section 5).

:class:`SymGateway` pairs one meter from its master key MK and 10-byte server ID: it walks the profile's
``flow`` (profile 2015: SYNC 0x01, ALGORITHMS 0x02, CREDENTIALS 0x03, PEER_CERTIFICATE 0x04, COMMIT
0x05), one request at a time, checks every answer (answer code, counter echo, CMAC, payload) and ends with
:class:`~bab.sym.events.MeterPaired` carrying the meter's TLS certificate, or :class:`PairingFailed`.

Like the Ostfalia reference it aborts on the first bad answer (including a CMAC failure); the caller
retries with a new object (a retry starts with SYNC, which resynchronises the counter). There is no
clock inside: the caller calls :meth:`SymGateway.timeout` when its answer timer expires.

Certificate routes: ``meter_credentials`` set (certificate and private key, DER) = route (a), the gateway
injects them; None = route (b), the meter answers CREDENTIALS with its own certificate.
"""

from __future__ import annotations

import os

from .credentials import check_key_pair, load_certificate
from .errors import SymError, SymFormatError, SymUsageError
from .events import MeterPaired, PairingFailed, SymOutputs
from .profile import AlgorithmList, Credentials, Direction, PairingStep, SymProfile
from .profile2015 import Profile2015
from .state import COUNTER_MAX, MASTER_KEY_LENGTH


class SymGateway(SymOutputs):
    """Gateway-side SYM state machine pairing the meter ``meter_id`` (see the module docstring)."""

    def __init__(
        self,
        master_key: bytes,
        meter_id: bytes,
        gateway_certificate: bytes,
        *,
        meter_credentials: Credentials | None = None,
        profile: SymProfile | None = None,
        start_counter: int = 1,
        key_agreement_random: bytes | None = None,
    ) -> None:
        if len(master_key) != MASTER_KEY_LENGTH:
            raise ValueError("master key must be 16 bytes")
        if len(meter_id) != 10:
            raise ValueError("meter ID (server ID) must be 10 bytes")
        if not 0 <= start_counter <= COUNTER_MAX:
            raise ValueError("start counter out of range")
        load_certificate(gateway_certificate)
        creds = meter_credentials if meter_credentials is not None else Credentials()
        if (creds.certificate is None) != (creds.private_key is None):
            raise ValueError("meter_credentials needs both certificate and private key")
        if creds.certificate is not None and creds.private_key is not None:
            check_key_pair(creds.certificate, creds.private_key)
        self._mk = bytes(master_key)
        self._meter_id = bytes(meter_id)
        self._gw_cert = gateway_certificate
        self._creds = creds
        self._profile = profile if profile is not None else Profile2015()
        self._counter = start_counter
        self._random = key_agreement_random
        self._position = -1  # index into flow of the outstanding request; -1 = not started
        self._outstanding: tuple[int, int] | None = None  # (command, counter)
        self._done = False
        self._inbuf = bytearray()
        self._init_outputs()
        self._profile_data: dict[str, str] = {}
        self._algorithms: AlgorithmList | None = None
        self._meter_cert: bytes | None = None

    # -- public API ----------------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True after :class:`MeterPaired` or :class:`PairingFailed`."""
        return self._done

    def start(self) -> None:
        """Queue the first request (SYNC)."""
        if self._position != -1:
            raise SymUsageError("pairing already started")
        self._send_step(0)

    def receive(self, data: bytes) -> None:
        """Feed bytes received from the meter. Never raises for bad input."""
        if self._done:
            return
        self._inbuf += data
        while self._inbuf and not self._done:
            try:
                total = self._profile.frame_length(bytes(self._inbuf))
            except SymError as exc:
                self._fail(exc.reason)
                return
            if total is None or len(self._inbuf) < total:
                return
            raw = bytes(self._inbuf[:total])
            del self._inbuf[:total]
            self._handle(raw)

    def timeout(self) -> None:
        """The caller's answer timer expired: the pairing fails."""
        if not self._done and self._outstanding is not None:
            self._fail("timeout")




    # -- internals -----------------------------------------------------------------------------------------

    def _key(self) -> bytes:
        return self._profile.session_key(self._mk, self._profile_data)

    def _fail(self, reason: str) -> None:
        self._done = True
        self._outstanding = None
        self._inbuf.clear()
        self._events.append(PairingFailed(reason))

    def _request_payload(self, step: PairingStep) -> bytes:
        p = self._profile
        if step is PairingStep.CREDENTIALS:
            return p.encode_credentials(self._creds)
        if step is PairingStep.PEER_CERTIFICATE:
            return p.encode_certificate(self._gw_cert)
        if step is PairingStep.KEY_AGREEMENT:
            if self._random is None:
                self._random = os.urandom(16)
            return p.gateway_key_agreement_request(self._key(), self._meter_id, self._random)
        return p.encode_empty()

    def _send_step(self, position: int) -> None:
        step = self._profile.flow[position]
        command = self._profile.request_code(step)
        if self._counter > COUNTER_MAX:
            self._fail("counter_exhausted")
            return
        try:
            raw = self._profile.seal(
                self._key(), self._meter_id, Direction.GATEWAY_TO_METER, command, self._counter,
                self._request_payload(step),
            )
        except SymError as exc:
            self._fail(exc.reason)
            return
        self._position = position
        self._outstanding = (command, self._counter)
        self._outbuf += raw

    def _handle(self, raw: bytes) -> None:
        p = self._profile
        if self._outstanding is None:
            self._fail("unexpected_message")
            return
        command, counter = self._outstanding
        step = p.flow[self._position]
        try:
            msg = p.open(self._key(), self._meter_id, Direction.METER_TO_GATEWAY, raw)
            if msg.command != p.answer_code(command):
                raise SymFormatError(f"answer 0x{msg.command:02x} to command 0x{command:02x}", "wrong_answer")
            if step is PairingStep.SYNC:
                # the SYNC answer carries the meter's fresh counter, always above ours; we continue from it
                if msg.counter <= counter:
                    raise SymFormatError("SYNC answer counter not above the request's", "counter_mismatch")
                p.decode_empty(msg.data)
            elif msg.counter != counter:
                raise SymFormatError("answer does not echo the request counter", "counter_mismatch")
            elif step is PairingStep.ALGORITHMS:
                self._algorithms = p.decode_algorithms(msg.data)
            elif step is PairingStep.CREDENTIALS:
                if self._creds.certificate is not None:
                    p.decode_empty(msg.data)
                    self._meter_cert = self._creds.certificate
                else:
                    self._meter_cert = p.decode_certificate(msg.data)
            elif step is PairingStep.PEER_CERTIFICATE:
                p.decode_empty(msg.data)
            elif step is PairingStep.KEY_AGREEMENT:
                assert self._random is not None
                self._profile_data = dict(
                    p.gateway_key_agreement_answer(self._key(), self._meter_id, self._random, msg.data)
                )
            elif step is PairingStep.COMMIT:
                mfl = p.decode_commit_answer(msg.data)
                if self._meter_cert is None:
                    raise SymFormatError("commit without a meter certificate", "wrong_sequence")
                self._done = True
                self._outstanding = None
                self._events.append(
                    MeterPaired(self._meter_cert, self._algorithms or AlgorithmList((), ()), mfl,
                                dict(self._profile_data))
                )
                return
        except SymError as exc:
            self._fail(exc.reason)
            return
        self._counter = msg.counter + 1
        if self._position + 1 >= len(p.flow):
            self._fail("flow_without_commit")
            return
        self._send_step(self._position + 1)
