"""The profile boundary of the SYM pairing engine (LMN-STACK.md section 5, uncertainty register item 11).

The SYM protocol ("SYM über HDLC", selector 6) is only known from a 2015 reconstruction; the final FNN/TR
Teil c version may differ (random z1, derived operational key M'). Everything that may differ between
versions lives behind :class:`SymProfile`:

* **key derivation** (:meth:`SymProfile.derive_keys`, :meth:`SymProfile.session_key`),
* **message format and parsing** (:meth:`~SymProfile.frame_length`, :meth:`~SymProfile.seal`,
  :meth:`~SymProfile.open`),
* **command set**: which command code performs which :class:`PairingStep`, in which order (``flow``), the
  answer code, and the payload codecs of every step,
* the optional **key-agreement step** (:attr:`PairingStep.KEY_AGREEMENT`).

The meter/gateway state machines (:mod:`bab.sym.meter`, :mod:`bab.sym.gateway`) only do what is common:
reassembly, counter freshness, ordering, error counting, events and the persist handshake.

Where the FNN profile goes (NOT implemented, the document is not public): a class ``ProfileFnn(SymProfile)``
in ``bab/sym/profile_fnn.py`` that

1. puts :attr:`PairingStep.KEY_AGREEMENT` into its ``flow`` and implements :meth:`meter_key_agreement`
   (meter: take z1 from the gateway's request, derive M', return the answer payload and
   ``{"m_prime": M'.hex()}``) and :meth:`gateway_key_agreement_request`/:meth:`gateway_key_agreement_answer`;
2. overrides :meth:`session_key` to use ``profile_data["m_prime"]`` once present;
3. defines its own command codes/formats if they differ.

The engines keep ``profile_data`` of a running pairing in memory and commit it with the paired flag in the
single final atomic write; a crypto-reset wipes it (:class:`bab.sym.state.PairingState`).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from .credentials import check_key_pair, der_element_end, load_certificate
from .errors import SymFormatError


class Direction(enum.Enum):
    """Who sends a message; selects the key pair (K = meter->gateway, L = gateway->meter)."""

    METER_TO_GATEWAY = "meter_to_gateway"
    GATEWAY_TO_METER = "gateway_to_meter"


class PairingStep(enum.Enum):
    """The semantic steps of a pairing; a profile maps its command codes onto them."""

    SYNC = "sync"  # gateway starts; the meter answers with a fresh message counter
    ALGORITHMS = "algorithms"  # the meter lists the TLS cipher suites and groups it supports
    CREDENTIALS = "credentials"  # route (a): meter cert+key injected; route (b): meter returns its own cert
    PEER_CERTIFICATE = "peer_certificate"  # the gateway's TLS certificate (pinned by the meter)
    COMMIT = "commit"  # the meter commits the pairing (one atomic write) and answers its TLS parameters
    KEY_AGREEMENT = "key_agreement"  # reserved for the FNN profile (z1 -> M'); not in profile 2015


@dataclass(frozen=True, slots=True)
class SymMessage:
    """One decoded SYM message: command code, message counter and the decrypted payload."""

    command: int
    counter: int
    data: bytes = field(repr=False)


# TR-03116-3 LMN set (TLS-WOLFSSL.md): IANA cipher-suite IDs and named-group IDs.
TLS_SUITES_TR03116_3: tuple[int, ...] = (0xC023, 0xC024, 0xC02B, 0xC02C)
TLS_GROUPS_TR03116_3: tuple[int, ...] = (0x001A, 0x001B, 0x001C, 0x0017, 0x0018)


@dataclass(frozen=True, slots=True)
class AlgorithmList:
    """What the meter's ALGORITHMS answer carries: TLS 1.2 cipher suites and named groups (IANA IDs)."""

    cipher_suites: tuple[int, ...] = TLS_SUITES_TR03116_3
    groups: tuple[int, ...] = TLS_GROUPS_TR03116_3

    def __post_init__(self) -> None:
        for ids in (self.cipher_suites, self.groups):
            if len(ids) > 255 or any(not 0 <= i <= 0xFFFF for i in ids):
                raise ValueError("algorithm list: at most 255 IDs of 16 bits each")


@dataclass(frozen=True, slots=True)
class Credentials:
    """Payload of the CREDENTIALS request: both set = route (a) injection, both None = route (b)."""

    certificate: bytes | None = field(default=None, repr=False)
    private_key: bytes | None = field(default=None, repr=False)


class SymProfile(ABC):
    """One version of the SYM protocol. Subclasses set the class attributes and the abstract methods.

    The payload codecs below are concrete (DER concatenation, count-prefixed ID lists) and may be reused;
    :meth:`check_tail` decides what may follow a self-delimited payload (nothing, or padding that the
    message layer cannot strip unambiguously, as in profile 2015).
    """

    name: str = "abstract"
    mac_length: int = 16
    max_message_length: int = 8192
    flow: tuple[PairingStep, ...] = ()
    sync_counter: int = 0  # the counter of the gateway's first message (SYNC)

    # -- key derivation ------------------------------------------------------------------------------------

    def session_key(self, master_key: bytes, profile_data: dict[str, str]) -> bytes:
        """The long-term key the per-message keys are derived from (2015: MK itself)."""
        return master_key

    @abstractmethod
    def derive_keys(self, key: bytes, counter: int, meter_id: bytes, direction: Direction) -> tuple[bytes, bytes]:
        """Per-message ``(encryption key, MAC key)`` for ``counter`` and ``direction``."""

    # -- message format ------------------------------------------------------------------------------------

    @abstractmethod
    def frame_length(self, buffer: bytes) -> int | None:
        """Total length of the message at the start of ``buffer``; None if the header is incomplete.

        Raises :class:`SymFormatError` when the header can never start a valid message.
        """

    @abstractmethod
    def seal(
        self, key: bytes, meter_id: bytes, direction: Direction, command: int, counter: int, data: bytes
    ) -> bytes:
        """Encrypt and authenticate one message."""

    @abstractmethod
    def open(self, key: bytes, meter_id: bytes, direction: Direction, raw: bytes) -> SymMessage:
        """Verify and decrypt one complete message (:class:`SymAuthError`, :class:`SymFormatError`)."""

    # -- command set ---------------------------------------------------------------------------------------

    @abstractmethod
    def request_code(self, step: PairingStep) -> int:
        """The gateway's command code for ``step``."""

    @abstractmethod
    def step_of(self, command: int) -> PairingStep | None:
        """The step a gateway command code performs; None for an unknown code."""

    @abstractmethod
    def answer_code(self, command: int) -> int:
        """The meter's answer code for a gateway command."""

    def error_answer(self, reason: str, request: SymMessage) -> tuple[int, bytes] | None:
        """What the meter answers to an authenticated, fresh request it rejects (``reason`` as in the
        drop counters): ``(command code, payload)``, sealed by the engine with the request's answer counter,
        or None to drop it silently. Unauthenticated or stale input is never answered, whatever this says.
        The 2015 reference defines no error message: None."""
        return None

    def rejection_notice(self, counter: int) -> bytes | None:
        """What the meter sends in place of an answer to a complete request it drops or rejects (bad MAC, stale
        counter, wrong sequence, ...), because a gateway waits for an answer to every request; ``counter`` is the
        request's (0 when unreadable). It must not be a valid message: it carries no authenticated content.
        None: nothing is sent (the HDLC layer then ends the connection with DM)."""
        return None

    def is_rejection_notice(self, raw: bytes) -> bool:
        """True when ``raw`` is this profile's :meth:`rejection_notice` (the gateway fails the pairing at once)."""
        return False

    # -- payload codecs ------------------------------------------------------------------------------------
    # Every payload is self-delimiting; a codec reads its payload from the start of the decrypted data and
    # hands the rest to check_tail, which knows the profile's padding rule.

    def check_tail(self, data: bytes, end: int) -> None:
        """What may follow the payload ``data[:end]``; default: nothing."""
        if len(data) > end:
            raise SymFormatError(f"{len(data) - end} unexpected bytes after the payload", "bad_payload_length")

    def encode_empty(self) -> bytes:
        return b""

    def decode_empty(self, data: bytes) -> None:
        self.check_tail(data, 0)

    def encode_algorithms(self, algorithms: AlgorithmList) -> bytes:
        out = bytearray([len(algorithms.cipher_suites)])
        for s in algorithms.cipher_suites:
            out += s.to_bytes(2, "big")
        out.append(len(algorithms.groups))
        for g in algorithms.groups:
            out += g.to_bytes(2, "big")
        return bytes(out)

    def decode_algorithms(self, data: bytes) -> AlgorithmList:
        lists: list[tuple[int, ...]] = []
        pos = 0
        for _ in range(2):
            if pos >= len(data) or pos + 1 + 2 * data[pos] > len(data):
                raise SymFormatError("algorithm list is truncated", "bad_algorithms")
            n = data[pos]
            lists.append(tuple(int.from_bytes(data[pos + 1 + 2 * i : pos + 3 + 2 * i], "big") for i in range(n)))
            pos += 1 + 2 * n
        self.check_tail(data, pos)
        return AlgorithmList(lists[0], lists[1])

    def encode_credentials(self, credentials: Credentials) -> bytes:
        if (credentials.certificate is None) != (credentials.private_key is None):
            raise ValueError("inject both the meter certificate and its private key, or neither")
        if credentials.certificate is None or credentials.private_key is None:
            return b""
        return credentials.certificate + credentials.private_key

    def decode_credentials(self, data: bytes) -> Credentials:
        """Empty = route (b); otherwise exactly ``cert DER || key DER`` (and padding), key matching cert."""
        if not data:
            return Credentials()
        cert_end = der_element_end(data, 0)
        key_end = der_element_end(data, cert_end)
        self.check_tail(data, key_end)
        cert, key = data[:cert_end], data[cert_end:key_end]
        check_key_pair(cert, key)
        return Credentials(cert, key)

    def encode_certificate(self, certificate: bytes) -> bytes:
        return certificate

    def decode_certificate(self, data: bytes) -> bytes:
        end = der_element_end(data, 0)
        self.check_tail(data, end)
        load_certificate(data[:end])
        return data[:end]

    def encode_commit_answer(self, max_fragment_length: int) -> bytes:
        return max_fragment_length.to_bytes(2, "big")

    def decode_commit_answer(self, data: bytes) -> int:
        if len(data) < 2:
            raise SymFormatError("commit answer is truncated", "bad_commit_answer")
        self.check_tail(data, 2)
        return int.from_bytes(data[:2], "big")

    # -- optional key-agreement step (FNN; see the module docstring) -------------------------------------------

    def meter_key_agreement(self, key: bytes, meter_id: bytes, data: bytes) -> tuple[bytes, dict[str, str]]:
        """Meter side of KEY_AGREEMENT: ``(answer payload, profile_data to commit)``."""
        raise NotImplementedError(f"profile {self.name} has no key-agreement step")

    def gateway_key_agreement_request(self, key: bytes, meter_id: bytes, random: bytes) -> bytes:
        """Gateway side of KEY_AGREEMENT: the request payload built from fresh ``random`` bytes."""
        raise NotImplementedError(f"profile {self.name} has no key-agreement step")

    def gateway_key_agreement_answer(
        self, key: bytes, meter_id: bytes, random: bytes, data: bytes
    ) -> dict[str, str]:
        """Gateway side of KEY_AGREEMENT: check the meter's answer, return the same profile_data."""
        raise NotImplementedError(f"profile {self.name} has no key-agreement step")
