"""Provisioning of the meter master key MK ("Initialer Schlüssel M", LMN-STACK.md section 5).

MK is read from a file or from stdin, never from a command-line argument (argv is visible to every local
user). Accepted forms: exactly 16 raw bytes, or 32 hex digits (whitespace and ``:`` separators ignored).
Error messages never echo the key material.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

from .errors import MasterKeyError
from .state import MASTER_KEY_LENGTH, PairingState
from .store import SymStore

_MAX_INPUT = 4096


def parse_master_key(raw: bytes) -> bytes:
    """16 raw bytes, or 32 hex digits; all-zero and all-FF keys (erased-memory patterns) are refused."""
    if len(raw) == MASTER_KEY_LENGTH:
        key = bytes(raw)
    else:
        text = b"".join(raw.split()).replace(b":", b"")
        if text[:2].lower() == b"0x":
            text = text[2:]
        if len(text) != 2 * MASTER_KEY_LENGTH:
            raise MasterKeyError(
                f"master key must be 16 raw bytes or 32 hex digits (got {len(raw)} bytes of input)"
            )
        try:
            key = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise MasterKeyError("master key input is neither 16 raw bytes nor 32 hex digits") from None
    if key in (bytes(MASTER_KEY_LENGTH), b"\xff" * MASTER_KEY_LENGTH):
        raise MasterKeyError("master key is all 00 or all FF bytes: refusing an unset/erased key")
    return key


def read_master_key(source: str | os.PathLike[str], stdin: BinaryIO | None = None) -> bytes:
    """Read and validate MK from the file ``source``, or from ``stdin`` when ``source`` is ``"-"``."""
    if str(source) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        raw = stream.read(_MAX_INPUT + 1)
    else:
        try:
            with Path(source).open("rb") as f:
                raw = f.read(_MAX_INPUT + 1)
        except OSError as exc:
            raise MasterKeyError(f"cannot read master key file {source}: {exc.strerror}") from None
    if len(raw) > _MAX_INPUT:
        raise MasterKeyError("master key input is too long")
    return parse_master_key(raw)


def set_master_key(
    store: SymStore, source: str | os.PathLike[str], stdin: BinaryIO | None = None
) -> PairingState:
    """``bab keys set-master-key FILE|-``: read MK and store it atomically (0600) in the meter's SYM state.

    Refused with :class:`~bab.sym.errors.SymStoreError` (reason ``"paired"``) while the meter is paired: a
    crypto-reset must come first. The message counter is kept.
    """
    return store.set_master_key(read_master_key(source, stdin))
