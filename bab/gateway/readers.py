"""Readers: what the software gateway does with each participant when it polls it.

* :func:`default_reader`: read the base-meter objects and the meter's whole list over plain SML/COSEM
  (selector 3, an unpaired meter).
* :func:`secure_reader`: what an SMGW does with a base meter it commissions. A meter whose master key it holds
  is paired first (SYM, selector 6; the meter's certificate is stored), after that it is read through TLS
  (selector 1); a crypto-reset asked for is sent as SetProcParameter 1-0:94.49.0*7 = TRUE over TLS. Meters it
  neither paired nor holds a key for are read in plain SML.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from bab.cosem.base_meter import CRYPTO_RESET
from bab.cosem.objects import CosemClass, ObjectName
from bab.hdlc.primary import Participant
from bab.sml.client import SmlResult

from .app import PollJob, Reader, describe

Outcome = Callable[[str, bytes, bool, str], None]
"""``(what, server_id, ok, detail)`` of a pairing (``"pairing"``) or crypto-reset (``"crypto-reset"``)."""


def default_reader(report: Callable[[str], None], on_result: Callable[[SmlResult], None] | None = None) -> Reader:
    from bab.gateway.sml_reader import SmlReader

    return SmlReader(report, on_result=on_result)


def secure_reader(report: Callable[[str], None], security, master_keys: Mapping[bytes, bytes] | None = None,
                  resets: Iterable[bytes] = (), *, on_result: Callable[[SmlResult], None] | None = None,
                  on_outcome: Outcome | None = None) -> Reader:  # type: ignore[no-untyped-def]
    """Pair (with a known master key), then read over TLS; crypto-reset the meters in ``resets`` once.
    ``on_result`` sees every read's :class:`~bab.sml.client.SmlResult`, ``on_outcome`` every pairing and reset.

    A crypto-reset stays pending until a reset job gets the meter's answer (done or refused); a failed poll
    sends it again on the next one."""
    from bab.gateway.sml_reader import SmlReader
    from bab.sml.client import SmlClient

    sml = SmlReader(report, on_result=on_result)
    keys = dict(master_keys or {})
    pending_resets = set(resets)
    announced: set[bytes] = set()

    def paired(sid: bytes):  # type: ignore[no-untyped-def]
        def done(result) -> None:  # type: ignore[no-untyped-def]
            if result.ok:
                report(f"{describe(sid)} paired (SYM, selector 6); reading it over TLS (selector 1) from now on")
            else:
                report(f"{describe(sid)} pairing failed: {result.reason}")
            if on_outcome is not None:
                on_outcome("pairing", sid, bool(result.ok), "" if result.ok else str(result.reason))
        return done

    def reset_done(sid: bytes, client: SmlClient) -> Callable[[object], bool]:
        # Called only when the reset job ended cleanly (the meter answered): only then is the reset retired,
        # and the master key dropped once it took effect (so the meter is not paired straight back). A poll
        # that failed (timeout, TLS or link error) leaves both pending: the next poll sends the reset again.
        def confirm(inner: object) -> bool:
            ok = client.result is not None and client.result.ok
            report(f"{describe(sid)} crypto-reset {'done: meter unpaired' if ok else 'refused'}")
            if on_outcome is not None:
                on_outcome("crypto-reset", sid, ok, "" if ok else "refused")
            pending_resets.discard(sid)
            if ok:
                keys.pop(sid, None)
            return ok
        return confirm

    def read(p: Participant) -> PollJob | None:
        sid = p.server_id
        if security.meter_certificate(sid) is not None:
            if sid in pending_resets:
                client = SmlClient.set_parameter(sid, ObjectName(CRYPTO_RESET, CosemClass.DATA), True)
                return security.crypto_reset_job(sid, lambda: client, confirm=reset_done(sid, client))
            job = sml(p)
            if job is None:
                return None
            if sid not in announced:
                announced.add(sid)
                report(f"{describe(sid)} TLS 1.2 session on selector 1")
            return security.tls_job(sid, job.layer)
        if sid in keys:
            return security.pairing_job(sid, keys[sid], on_result=paired(sid))
        return sml(p)

    return read
