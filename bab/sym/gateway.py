"""Gateway side of the SYM pairing protocol as a sans-I/O state machine (LMN-STACK.md section 5).

:class:`SymGateway` pairs one meter from its master key MK and 10-byte server ID: it walks the profile's
``flow`` (profile 2015: SYNC 0x01, ALGORITHMS 0x02, CREDENTIALS 0x03, PEER_CERTIFICATE 0x04, COMMIT
0x05), one request at a time, and ends with :class:`~bab.sym.events.MeterPaired` carrying the meter's TLS
certificate, or :class:`PairingFailed`.

It sends exactly what the reference gateway sends (LMN-STACK.md section 13): SYNC with the profile's
``sync_counter`` (0xFFFFFFFF), every later request with the counter of the meter's last answer + 1. Every
answer must verify (CMAC), carry the answer code, and echo the request counter (SYNC: any counter). Answer
payloads the pairing does not depend on (the algorithm list, the commit answer) are decoded when they are in
BAB's format and ignored otherwise, as the reference ignores them; the route (b) certificate must parse.
Like the reference it aborts on the first bad answer; the caller retries with a new object. There is no
clock inside: the caller calls :meth:`SymGateway.timeout` when its answer timer expires.

Certificate routes: ``meter_credentials`` set (certificate and private key, DER) = route (a), the gateway
injects them; None = route (b), the meter answers CREDENTIALS with its own certificate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

from .credentials import check_key_pair, load_certificate
from .errors import SymError, SymFormatError, SymUsageError
from .events import MeterPaired, PairingFailed, SymOutputs
from .profile import AlgorithmList, Credentials, Direction, PairingStep, SymProfile
from .profile2015 import Profile2015
from .state import COUNTER_MAX, MASTER_KEY_LENGTH

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        start_counter: int | None = None,
        key_agreement_random: bytes | None = None,
    ) -> None:
        if len(master_key) != MASTER_KEY_LENGTH:
            raise ValueError("master key must be 16 bytes")
        if len(meter_id) != 10:
            raise ValueError("meter ID (server ID) must be 10 bytes")
        self._profile = profile if profile is not None else Profile2015()
        if start_counter is None:
            start_counter = self._profile.sync_counter
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

    def _informational(self, decode: Callable[[bytes], T], data: bytes, what: str) -> T | None:
        """Decode an answer payload the pairing does not depend on. The reference gateway checks only the
        MAC of an answer and ignores its payload, so a meter whose payload BAB cannot parse still pairs."""
        try:
            return decode(data)
        except SymError as exc:
            log.info("SYM: the meter's %s is not in BAB's format (%s); ignored as the reference does", what,
                     exc.reason)
            return None

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
        if p.is_rejection_notice(raw):
            self._fail("refused_by_meter")  # the meter dropped or rejected our request (e.g. a wrong MK)
            return
        try:
            msg = p.open(self._key(), self._meter_id, Direction.METER_TO_GATEWAY, raw)
            if msg.command != p.answer_code(command):
                raise SymFormatError(f"answer 0x{msg.command:02x} to command 0x{command:02x}", "wrong_answer")
            if step is PairingStep.SYNC:
                pass  # the SYNC answer carries the meter's fresh counter; we continue from it
            elif msg.counter != counter:
                raise SymFormatError("answer does not echo the request counter", "counter_mismatch")
            elif step is PairingStep.ALGORITHMS:
                self._algorithms = self._informational(p.decode_algorithms, msg.data, "algorithm list")
            elif step is PairingStep.CREDENTIALS:
                if self._creds.certificate is not None:
                    self._meter_cert = self._creds.certificate
                else:
                    self._meter_cert = p.decode_certificate(msg.data)
            elif step is PairingStep.PEER_CERTIFICATE:
                pass
            elif step is PairingStep.KEY_AGREEMENT:
                assert self._random is not None
                self._profile_data = dict(
                    p.gateway_key_agreement_answer(self._key(), self._meter_id, self._random, msg.data)
                )
            elif step is PairingStep.COMMIT:
                mfl = self._informational(p.decode_commit_answer, msg.data, "commit answer")
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
