"""Glue for the HDLC selector-6 upper layer: a :class:`~bab.sym.meter.SymMeter` bound to its
:class:`~bab.sym.store.SymStore` (LMN-STACK.md section 5).

:meth:`PersistentSymMeter.handle` takes the info bytes of one received I-frame and returns the bytes to
send back; every :class:`SaveState` is written atomically before the answer that depends on it is
released. Other events (:class:`PairingCompleted`, :class:`PairingFailed`, :class:`MessageDropped`) are
queued for :meth:`PersistentSymMeter.events`. This does blocking file I/O (an fsync per accepted message,
about five per pairing); call it from a worker thread if that matters.
"""

from __future__ import annotations

import logging
from typing import Any

from .events import SaveState, SymEvent
from .meter import SymMeter
from .store import SymStore

log = logging.getLogger(__name__)


class PersistentSymMeter:
    """``SymMeter`` + ``SymStore``; the keyword arguments are those of :class:`SymMeter`.

    The state is loaded with :meth:`SymStore.require` (no MK provisioned -> :class:`SymStoreError`).
    """

    def __init__(self, store: SymStore, meter_id: bytes, **meter_kw: Any) -> None:
        self.store = store
        self.meter = SymMeter(store.require(), meter_id, **meter_kw)
        self._events: list[SymEvent] = []

    def handle(self, data: bytes) -> bytes:
        """Feed received bytes; return the answer bytes (possibly empty)."""
        self.meter.receive(data)
        self._pump()
        return self.meter.data_to_send()

    def connection_reset(self) -> None:
        """Selector 6 connection (re)set (SNRM/DISC/DM)."""
        self.meter.connection_reset()
        self._pump()

    def crypto_reset(self) -> None:
        """Kryptoreset (e.g. from the SML object 1-0:94.49.0*7): one atomic write of the unpaired state."""
        self.meter.crypto_reset()
        self._pump()

    def events(self) -> list[SymEvent]:
        out, self._events = self._events, []
        return out

    def _pump(self) -> None:
        while (ev := self.meter.next_event()) is not None:
            if isinstance(ev, SaveState):
                try:
                    self.store.save(ev.state)
                except OSError as exc:
                    log.error("SYM state write failed: %s", exc.strerror)
                    self.meter.state_save_failed()
                else:
                    self.meter.state_saved()
            else:
                self._events.append(ev)
