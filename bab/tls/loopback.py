"""In-memory plumbing between two sans-I/O TLS endpoints, for tests and benchmarks.

:func:`pump` moves records between a client and a server object, cut into chunks of at most ``chunk`` bytes
to mimic HDLC I-frames, until neither has anything to send. It is not used by the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class SansIoTls(Protocol):
    def receive_bytes(self, data: bytes) -> None: ...
    def records_to_send(self) -> list[bytes]: ...


Tap = Callable[[str, bytes], bytes | None]


def pump(
    client: SansIoTls, server: SansIoTls, *, chunk: int = 128, tap: Tap | None = None, max_rounds: int = 100
) -> int:
    """Shuttle records both ways until quiet; returns the number of bytes moved.

    ``tap(direction, record)`` (direction ``"c2s"`` or ``"s2c"``) may observe each record and return a
    replacement (or None to keep it; ``b""`` drops it). Exceptions from either side propagate.
    """
    moved = 0
    for _ in range(max_rounds):
        progress = False
        for direction, src, dst in (("c2s", client, server), ("s2c", server, client)):
            for record in src.records_to_send():
                progress = True
                if tap is not None:
                    replaced = tap(direction, record)
                    if replaced is not None:
                        record = replaced
                moved += len(record)
                for i in range(0, len(record), chunk):
                    dst.receive_bytes(record[i : i + chunk])
        if not progress:
            return moved
    raise RuntimeError("pump did not settle")
