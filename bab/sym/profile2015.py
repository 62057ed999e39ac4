"""SYM profile "2015": the pairing of the Ostfalia reference gateway, as its source and its bytes on the wire
settle it (LMN-STACK.md section 13, which corrects section 5).

Key derivation (AES-128-CMAC keyed with MK)::

    K = CMAC(MK, D || CNT(4, BE) || MeterID(10) || 0x01)
    D = 0x00 / 0x01  -> enc / mac key of messages meter -> gateway
    D = 0x10 / 0x11  -> enc / mac key of messages gateway -> meter

Message (both directions)::

    cmd(1) | len(4, BE) | CNT(4, BE) | AES-128-CBC(IV=0, enc key)(data || pad) | MAC(16)

``len`` is the whole message, header and MAC included. A message without data has **no encrypted block at
all** (25 bytes). Data that is not a multiple of 16 bytes is padded to the block boundary with ``n`` bytes of
value ``n``; data that is block-aligned gets **no** padding (so, unlike PKCS#7, the receiver cannot strip the
padding by value: every payload is self-delimiting, and :meth:`Profile2015.check_tail` checks the bytes after
it). ``MAC`` = CMAC(mac key, all preceding bytes), 16 bytes (8 is allowed as an option for other variants).

Counters: the gateway's first message (SYNC) carries ``0xFFFFFFFF`` (:attr:`Profile2015.sync_counter`); every
later gateway message carries the counter of the meter's last answer + 1.

Commands (gateway -> meter; the meter answers ``cmd | 0x80``). The gateway's payloads are the reference's; the
reference checks only the MAC of an answer and ignores its payload, so the meter's answer payloads are BAB's
own choice [I]:

====  ================  ===========================  ===========================================
cmd   step              gateway payload              meter answer payload (BAB)
====  ================  ===========================  ===========================================
0x01  SYNC              none                         0x81: none; its CNT = the meter's fresh counter
0x02  ALGORITHMS        none                         0x82: n(1) suites(2 each) n(1) groups(2 each)
0x03  CREDENTIALS       (a) cert DER || key DER      0x83: (a) none
                        (b) none (BAB extension)     0x83: (b) the meter's own certificate DER
0x04  PEER_CERTIFICATE  gateway certificate DER      0x84: none
0x05  COMMIT            none                         0x85: max TLS fragment length, 2 bytes BE
====  ================  ===========================  ===========================================

A request the meter drops or rejects is answered with a *rejection notice* (:meth:`Profile2015.rejection_notice`,
BAB's choice [I]): the reference gateway needs an answer that fails its MAC check to end a pairing cleanly.

Option ``emh_bug`` (the reference's ``EMHBUG=1`` for the "EMH Zaehlerbug" of 2015 EMH firmware): the K/L code
pairs are swapped (meter -> gateway uses 0x10/0x11, gateway -> meter 0x00/0x01), the last byte of the
key-derivation block is 0x00 instead of 0x01, and padding bytes are 0x00 instead of the pad length (padding
is still added only when the data is not block-aligned).
"""

from __future__ import annotations

from .crypto import BLOCK, aes_cmac, cbc_decrypt, cbc_encrypt, mac_equal
from .errors import SymAuthError, SymFormatError
from .profile import Direction, PairingStep, SymMessage, SymProfile

HEADER_LENGTH = 9
SYNC_COUNTER = 0xFFFFFFFF  # the reference gateway's first counter (STARTCOUNT)
ANSWER_FLAG = 0x80
REJECTION_CODE = 0xFF  # command code of the rejection notice (BAB's choice, [I])

_D_CODES = {
    Direction.METER_TO_GATEWAY: (0x00, 0x01),
    Direction.GATEWAY_TO_METER: (0x10, 0x11),
}
_D_CODES_EMH = {
    Direction.METER_TO_GATEWAY: (0x10, 0x11),
    Direction.GATEWAY_TO_METER: (0x00, 0x01),
}
_COMMANDS = {
    0x01: PairingStep.SYNC,
    0x02: PairingStep.ALGORITHMS,
    0x03: PairingStep.CREDENTIALS,
    0x04: PairingStep.PEER_CERTIFICATE,
    0x05: PairingStep.COMMIT,
}
_CODES = {step: code for code, step in _COMMANDS.items()}


class Profile2015(SymProfile):
    """Profile "2015" with options ``mac_length`` (16 or 8) and ``emh_bug`` (see the module docstring)."""

    flow = (
        PairingStep.SYNC,
        PairingStep.ALGORITHMS,
        PairingStep.CREDENTIALS,
        PairingStep.PEER_CERTIFICATE,
        PairingStep.COMMIT,
    )
    sync_counter = SYNC_COUNTER

    def __init__(self, *, mac_length: int = 16, emh_bug: bool = False, max_message_length: int = 8192) -> None:
        if mac_length not in (8, 16):
            raise ValueError("profile 2015: mac_length must be 16 (default) or 8")
        self.mac_length = mac_length
        self.emh_bug = emh_bug
        self.min_message_length = HEADER_LENGTH + mac_length
        if max_message_length < self.min_message_length:
            raise ValueError("max_message_length is below the shortest possible message")
        self.max_message_length = max_message_length
        self.name = "2015" + ("-emh" if emh_bug else "") + ("" if mac_length == 16 else f"-mac{mac_length}")

    def __repr__(self) -> str:
        return f"Profile2015(mac_length={self.mac_length}, emh_bug={self.emh_bug})"

    # -- key derivation ------------------------------------------------------------------------------------

    def derive_keys(self, key: bytes, counter: int, meter_id: bytes, direction: Direction) -> tuple[bytes, bytes]:
        if len(meter_id) != 10:
            raise ValueError("meter ID (server ID) must be 10 bytes")
        if not 0 <= counter <= 0xFFFFFFFF:
            raise ValueError("message counter out of range")
        d_enc, d_mac = (_D_CODES_EMH if self.emh_bug else _D_CODES)[direction]
        tail = counter.to_bytes(4, "big") + meter_id + (b"\x00" if self.emh_bug else b"\x01")
        return aes_cmac(key, bytes([d_enc]) + tail), aes_cmac(key, bytes([d_mac]) + tail)

    # -- message format ------------------------------------------------------------------------------------

    def pad(self, data: bytes) -> bytes:
        """``data`` padded to the block boundary; unchanged when empty or already block-aligned."""
        n = -len(data) % BLOCK
        return data + bytes([0 if self.emh_bug else n]) * n

    def check_tail(self, data: bytes, end: int) -> None:
        """After a payload of ``end`` bytes only its padding may follow: none when ``end`` is block-aligned,
        else up to the boundary, every byte the pad length (0x00 with ``emh_bug``)."""
        if data[end:] != self.pad(data[:end])[end:]:
            raise SymFormatError(
                f"{len(data) - end} bytes after a {end}-byte payload are not its padding", "bad_padding"
            )

    def frame_length(self, buffer: bytes) -> int | None:
        if len(buffer) < 5:
            return None
        total = int.from_bytes(buffer[1:5], "big")
        if (
            total < self.min_message_length
            or total > self.max_message_length
            or (total - HEADER_LENGTH - self.mac_length) % BLOCK
        ):
            raise SymFormatError(f"impossible message length field {total}", "bad_length")
        return total

    def seal(
        self, key: bytes, meter_id: bytes, direction: Direction, command: int, counter: int, data: bytes
    ) -> bytes:
        if not 0 <= command <= 0xFF:
            raise ValueError("command code must be one byte")
        enc_key, mac_key = self.derive_keys(key, counter, meter_id, direction)
        padded = self.pad(data)
        body = cbc_encrypt(enc_key, padded) if padded else b""
        total = HEADER_LENGTH + len(body) + self.mac_length
        if total > self.max_message_length:
            raise SymFormatError(f"message of {total} bytes exceeds the profile maximum", "message_too_long")
        head = bytes([command]) + total.to_bytes(4, "big") + counter.to_bytes(4, "big")
        return head + body + aes_cmac(mac_key, head + body)[: self.mac_length]

    def open(self, key: bytes, meter_id: bytes, direction: Direction, raw: bytes) -> SymMessage:
        """Verify and decrypt; the data keeps its padding (the payload codecs check it with
        :meth:`check_tail`, since only the payload knows where it ends)."""
        total = self.frame_length(raw)
        if total is None or total != len(raw):
            raise SymFormatError(
                f"length field says {total} bytes, message has {len(raw)}", "bad_length"
            )
        counter = int.from_bytes(raw[5:9], "big")
        enc_key, mac_key = self.derive_keys(key, counter, meter_id, direction)
        signed, mac = raw[: -self.mac_length], raw[-self.mac_length :]
        if not mac_equal(aes_cmac(mac_key, signed)[: self.mac_length], mac):
            raise SymAuthError(f"CMAC does not verify (cmd 0x{raw[0]:02x}, counter {counter})")
        body = signed[HEADER_LENGTH:]
        return SymMessage(raw[0], counter, cbc_decrypt(enc_key, body) if body else b"")

    def rejection_notice(self, counter: int) -> bytes:
        """``FF | len 25 | CNT | 16 zero bytes``: shaped like an empty answer, but its MAC never verifies. The
        reference gateway checks only the MAC of an answer and reports a failed pairing on a bad one; DM, silence
        or RR instead make it crash or poll forever (LMN-STACK.md 13), so a meter must answer something."""
        total = HEADER_LENGTH + self.mac_length
        return bytes([REJECTION_CODE]) + total.to_bytes(4, "big") + counter.to_bytes(4, "big") + bytes(self.mac_length)

    def is_rejection_notice(self, raw: bytes) -> bool:
        return (len(raw) == HEADER_LENGTH + self.mac_length and raw[0] == REJECTION_CODE
                and raw[-self.mac_length:] == bytes(self.mac_length))

    # -- command set ---------------------------------------------------------------------------------------

    def request_code(self, step: PairingStep) -> int:
        try:
            return _CODES[step]
        except KeyError:
            raise ValueError(f"profile 2015 has no step {step.value}") from None

    def step_of(self, command: int) -> PairingStep | None:
        return _COMMANDS.get(command)

    def answer_code(self, command: int) -> int:
        return command | ANSWER_FLAG
