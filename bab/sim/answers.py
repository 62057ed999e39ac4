"""The shape every answer-rewriting fault wrapper shares: a meter-side upper layer
(:class:`~bab.hdlc.upper.ServerLayer`) between the HDLC station and the layer it wraps.

While a fault of the wrapper's layer is active, :meth:`AnswerRewriter._collect` takes the wrapped layer's
complete answers and puts the altered bytes into ``self._out``, which is handed to the station in chunks of
the size it asks for; with no such fault active the wrapped layer's chunks pass through unchanged.
"""

from __future__ import annotations

from bab.hdlc.upper import ServerLayer

from .faults import FaultSet

DRAIN = 1 << 16  # how much to take from the wrapped layer at once: more than any one answer


class AnswerRewriter:
    """Base of the SML and SYM fault wrappers; ``layer`` is the catalogue's layer name (``sml``, ``sym``)."""

    layer: str = ""

    def __init__(self, inner: ServerLayer, faults: FaultSet) -> None:
        self.inner = inner
        self.faults = faults
        self._out = bytearray()

    def _collect(self) -> None:
        """Move the wrapped layer's pending answers, altered, into ``self._out``."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def data_to_send(self, max_size: int) -> bytes:
        if self.layer in self.faults.on:
            self._collect()
        if self._out:
            chunk = bytes(self._out[:max_size])
            del self._out[:max_size]
            return chunk
        return self.inner.data_to_send(max_size)

    def is_busy(self) -> bool:
        return self.inner.is_busy()

    def connection_lost(self) -> None:
        self.inner.connection_lost()
