"""Sans-I/O SML receiver: transport v1 frames in, decoded SML files out (LMN-STACK.md 6, 9.1).

Used by the EDL driver (optical SML push) and the meter's SML server. ``feed(bytes)`` never raises on any
input: broken frames and undecodable files become :class:`FileRejected` events and are counted in ``stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SmlCrcError, SmlError
from .messages import SmlFile, decode_file
from .quirks import Quirk
from .transport import (
    DEFAULT_MAX_FRAME,
    BytesDiscarded,
    FrameReceived,
    FrameRejected,
    TransportDecoder,
    TransportEvent,
    TransportStats,
)


@dataclass(frozen=True, slots=True)
class FileDecoded:
    """A complete SML file that passed the transport and message CRCs and decoded."""

    file: SmlFile
    payload: bytes  # the SML file as received (unescaped, fill removed)


@dataclass(frozen=True, slots=True)
class FileRejected:
    """A frame or file that was dropped; ``error`` says why (SmlCrcError, SmlTransportError, SmlTypeError, ...)."""

    error: SmlError
    size: int


SmlEvent = FileDecoded | FileRejected | BytesDiscarded


@dataclass(slots=True)
class SmlStreamStats:
    """Transport counters plus the files whose content did not decode."""

    transport: TransportStats
    files_ok: int = 0
    files_bad_content: int = 0  # transport fine, SML content not decodable (includes message CRC errors)
    message_crc_errors: int = 0
    internal_errors: int = 0  # decoder bugs caught as a last resort (the tests require 0)

    @property
    def files_bad_crc(self) -> int:
        """Frames with a wrong transport CRC plus files with a wrong message CRC."""
        return self.transport.frames_bad_crc + self.message_crc_errors

    @property
    def bytes_discarded(self) -> int:
        """Bytes skipped outside frames (garbage, interrupted or oversized frames)."""
        return self.transport.bytes_discarded


class SmlStreamDecoder:
    """Feed raw bytes from a serial port or socket; get :class:`FileDecoded` / :class:`FileRejected` /
    :class:`BytesDiscarded` events back. Memory is bounded by ``max_frame``."""

    def __init__(self, quirks: Quirk = Quirk.DEFAULT, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.quirks = quirks
        self._transport = TransportDecoder(quirks, max_frame)
        self.stats = SmlStreamStats(self._transport.stats)

    @property
    def buffered(self) -> int:
        """Bytes currently held (at most ``max_frame + 8``)."""
        return self._transport.buffered

    def feed(self, data: bytes | bytearray | memoryview) -> list[SmlEvent]:
        """Take the next bytes of the stream; return the events they completed (never raises)."""
        return self._convert(self._transport.feed(data))

    def finish(self) -> list[SmlEvent]:
        """End of stream: report what was left over."""
        return self._convert(self._transport.finish())

    def _convert(self, events: list[TransportEvent]) -> list[SmlEvent]:
        out: list[SmlEvent] = []
        for ev in events:
            if type(ev) is FrameReceived:
                try:
                    out.append(FileDecoded(decode_file(ev.payload, self.quirks), ev.payload))
                    self.stats.files_ok += 1
                except SmlError as e:
                    if isinstance(e, SmlCrcError):
                        self.stats.message_crc_errors += 1
                    self.stats.files_bad_content += 1
                    out.append(FileRejected(e, ev.size))
                except Exception as e:  # noqa: BLE001 - a receiver must never crash on line data
                    self.stats.internal_errors += 1
                    self.stats.files_bad_content += 1
                    out.append(FileRejected(SmlError(f"internal decoder error: {e!r}"), ev.size))
            elif type(ev) is FrameRejected:
                out.append(FileRejected(ev.error, ev.size))
            elif type(ev) is BytesDiscarded:
                out.append(ev)
        return out
