"""The interface between an HDLC connection and the protocol above it (SML, TLS, SYM).

One object per connection (SNRM ... DISC on one selector). Bytes of received I-frames go up unchanged; the
layer decides its own message boundaries (SML transport escape, TLS records). Sans-I/O: nothing here blocks.
"""

from __future__ import annotations

from typing import Protocol


class CloseConnection(Exception):  # noqa: N818 - a request, not an error
    """Raised by a :class:`ServerLayer` from ``data_to_send`` or ``is_busy`` to end its connection: the station
    answers DM instead of RR/I and closes the connection (``connection_lost`` follows). For a layer that must
    not leave the gateway polling for an answer that will never come (e.g. SYM after a rejected message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerLayer(Protocol):
    """The meter side of a connection: answers what the gateway sends."""

    def data_received(self, data: bytes) -> None:
        """Info bytes of an in-sequence I frame from the gateway."""

    def data_to_send(self, max_size: int) -> bytes:
        """The next chunk for one I frame (at most ``max_size`` bytes), or b"" when there is nothing."""

    def is_busy(self) -> bool:
        """True while the layer is computing (the station answers RNR instead of RR)."""

    def connection_lost(self) -> None:
        """DISC, a new SNRM, or a drop to unregistered ended the connection."""


class ClientLayer(Protocol):
    """The gateway side of a connection: drives a conversation with one meter."""

    def data_to_send(self, max_size: int) -> bytes:
        """The next chunk to send in an I frame, or b"" to poll with RR."""

    def data_received(self, data: bytes) -> None:
        """Info bytes of an I frame from the meter."""

    def is_done(self) -> bool:
        """True when the conversation is complete (the gateway then sends DISC)."""

    def connection_lost(self, reason: str | None) -> None:
        """The conversation ended: ``None`` after a clean DISC, else why it failed."""
