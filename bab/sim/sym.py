"""Faults on the SYM messages the meter sends (LMN-STACK.md sections 5 and 13): ``sym_bad_mac``.

:class:`SymFaults` wraps the meter's SYM layer (:class:`~bab.sym.hdlc_layer.SymServerLayer`, selector 6). While
the fault is active it takes each complete answer from the layer and inverts its last byte, the end of the
16-byte CMAC of profile 2015 (``cmd | len | CNT | data | MAC``), so the gateway's MAC check fails. The SYM
engine and its persisted state are not changed.
"""

from __future__ import annotations

from .answers import DRAIN, AnswerRewriter
from .catalogue import SYM


class SymFaults(AnswerRewriter):
    """The meter's SYM layer with ``sym_bad_mac`` applied to its answers."""

    layer = SYM

    def _collect(self) -> None:
        if self._out:
            return
        answer = self.inner.data_to_send(DRAIN)
        if answer and self.faults.fire("sym_bad_mac", f"SYM answer 0x{answer[0]:02x} with a wrong MAC"):
            answer = answer[:-1] + bytes((answer[-1] ^ 0xFF,))
        self._out += answer
