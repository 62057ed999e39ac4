"""The 32-byte participant record of address allocation and presence check (LMN-STACK.md 3.5).

    off len
      0   1  LMN address of the participant (7-bit value, not shifted)
      1   1  time slot (0 in allocation lists, 1..N in presence checks, the chosen slot in a meter's reply)
      2  14  ID field 1: the 10-byte SML server ID, zero-padded
     16  14  ID field 2: identical in every observed frame (uncertainty register #6); BAB repeats ID 1
     30   2  status (00 00 in all observations)
"""

from __future__ import annotations

from dataclasses import dataclass

RECORD_SIZE = 32


class RecordError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ParticipantRecord:
    address: int
    slot: int
    id1: bytes  # 14 bytes
    id2: bytes  # 14 bytes
    status: int = 0

    @classmethod
    def for_meter(cls, address: int, slot: int, server_id: bytes) -> ParticipantRecord:
        ident = server_id.ljust(14, b"\0")
        if len(ident) != 14:
            raise RecordError(f"server ID of {len(server_id)} bytes does not fit the 14-byte ID field")
        return cls(address, slot, ident, ident, 0)

    @property
    def server_id(self) -> bytes:
        """The meter's 10-byte SML server ID (the part the gateway compares, ``record[2:12]``)."""
        return self.id1[:10]

    def encode(self) -> bytes:
        return bytes((self.address, self.slot)) + self.id1 + self.id2 + self.status.to_bytes(2, "big")

    def with_slot(self, slot: int) -> ParticipantRecord:
        return ParticipantRecord(self.address, slot, self.id1, self.id2, self.status)

    @classmethod
    def decode(cls, raw: bytes) -> ParticipantRecord:
        if len(raw) != RECORD_SIZE:
            raise RecordError(f"a participant record has {RECORD_SIZE} bytes, got {len(raw)}")
        return cls(raw[0], raw[1], bytes(raw[2:16]), bytes(raw[16:30]), int.from_bytes(raw[30:32], "big"))


def decode_records(info: bytes) -> list[ParticipantRecord]:
    """The records of a broadcast's info field; raises RecordError if it is not a whole number of them."""
    if len(info) % RECORD_SIZE:
        raise RecordError(f"broadcast info of {len(info)} bytes is not a list of {RECORD_SIZE}-byte records")
    return [ParticipantRecord.decode(info[i : i + RECORD_SIZE]) for i in range(0, len(info), RECORD_SIZE)]


def encode_records(records: list[ParticipantRecord]) -> bytes:
    return b"".join(r.encode() for r in records)
