"""The software gateway's secure reader: which job it gives a meter on each poll (pair, TLS read, crypto-reset).

The gateway's security is replaced by a recorder that hands out the jobs a real ``GatewaySecurity`` would make
(selector + the inner client) and remembers which meters are paired; the reader's decisions are the real code.
"""

from __future__ import annotations

from bab.gateway.app import PollJob
from bab.gateway.readers import secure_reader
from bab.hdlc.frame import Selector
from bab.hdlc.primary import Participant
from bab.hdlc.record import ParticipantRecord
from bab.sml.client import SmlClient, SmlResult

SID = b"\x0a\x01BAB\x00\x00\x00\x00\x12"
MK = bytes(16)


class RecordingSecurity:
    """The part of ``GatewaySecurity`` a reader uses: paired meters, and the job each kind of poll gets."""

    def __init__(self, paired: set[bytes]) -> None:
        self.paired = set(paired)
        self.confirms: list = []

    def meter_certificate(self, sid: bytes) -> bytes | None:
        return b"cert" if sid in self.paired else None

    def tls_job(self, sid: bytes, inner) -> PollJob:  # type: ignore[no-untyped-def]
        return PollJob(Selector.TLS_SML_COSEM, inner)

    def pairing_job(self, sid: bytes, master_key: bytes, **kw: object) -> PollJob:
        return PollJob(Selector.SYM_HDLC, ("pair", sid, master_key))  # type: ignore[arg-type]

    def crypto_reset_job(self, sid: bytes, inner_factory, *, confirm) -> PollJob:  # type: ignore[no-untyped-def]
        inner = inner_factory()
        self.confirms.append((inner, confirm))
        return PollJob(Selector.TLS_SML_COSEM, inner)

    def end_cleanly(self, ok: bool) -> None:
        """The last reset job ended with the meter's answer (as ``_Forgetting`` does on a clean end)."""
        inner, confirm = self.confirms[-1]
        inner.result = SmlResult(SID, error=None if ok else "refused")
        if confirm(inner):
            self.paired.discard(SID)


def participant() -> Participant:
    return Participant(0x21, ParticipantRecord.for_meter(0x21, 0, SID), 0.0, 0.0)


def is_reset(job: PollJob | None) -> bool:
    return job is not None and isinstance(job.layer, SmlClient) and b"\x01\x00\x5e\x31\x00\x07" in job.layer.request


def test_failed_reset_poll_keeps_the_reset_and_the_key_pending() -> None:
    sec = RecordingSecurity({SID})
    lines: list[str] = []
    read = secure_reader(lines.append, sec, master_keys={SID: MK}, resets=[SID])
    assert is_reset(read(participant()))
    # that poll failed (no clean end, confirm never called): the next poll sends the reset again
    assert is_reset(read(participant()))
    assert len(sec.confirms) == 2
    sec.end_cleanly(ok=True)
    assert "crypto-reset done: meter unpaired" in lines[-1]
    # the reset took effect: neither reset again nor paired straight back with the key; read in plain SML
    job = read(participant())
    assert job is not None and job.selector == Selector.SML_COSEM and not is_reset(job)


def test_refused_reset_is_not_repeated_and_the_meter_stays_paired() -> None:
    sec = RecordingSecurity({SID})
    lines: list[str] = []
    read = secure_reader(lines.append, sec, master_keys={SID: MK}, resets=[SID])
    assert is_reset(read(participant()))
    sec.end_cleanly(ok=False)
    assert "refused" in lines[-1]
    job = read(participant())
    assert job is not None and job.selector == Selector.TLS_SML_COSEM and not is_reset(job)
