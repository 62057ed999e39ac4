"""Faults on the SYM messages the meter sends (LMN-STACK.md sections 5 and 13): ``sym_bad_mac``.

:class:`SymFaults` wraps the meter's SYM layer (:class:`~bab.sym.hdlc_layer.SymServerLayer`, selector 6). While
the fault is active it takes each complete answer from the layer and inverts its last byte, the end of the
16-byte CMAC of profile 2015 (``cmd | len | CNT | data | MAC``), so the gateway's MAC check fails. The SYM
engine and its persisted state are not changed.
"""

from __future__ import annotations

from bab.hdlc.upper import ServerLayer

from .catalogue import SYM
from .faults import FaultSet

_DRAIN = 1 << 16


class SymFaults:
    def __init__(self, inner: ServerLayer, faults: FaultSet) -> None:
        self.inner = inner
        self.faults = faults
        self._out = bytearray()

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def data_to_send(self, max_size: int) -> bytes:
        if SYM in self.faults.on and not self._out:
            answer = self.inner.data_to_send(_DRAIN)
            if answer and self.faults.fire("sym_bad_mac", f"SYM answer 0x{answer[0]:02x} with a wrong MAC"):
                answer = answer[:-1] + bytes((answer[-1] ^ 0xFF,))
            self._out += answer
        if self._out:
            chunk = bytes(self._out[:max_size])
            del self._out[:max_size]
            return chunk
        return self.inner.data_to_send(max_size)

    def is_busy(self) -> bool:
        return self.inner.is_busy()

    def connection_lost(self) -> None:
        self.inner.connection_lost()
