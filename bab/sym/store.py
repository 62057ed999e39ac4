"""Crash-safe storage of one meter's SYM pairing state (LMN-STACK.md section 5) through :mod:`bab.persist`.

One JSON file per meter, mode 0600, always replaced atomically (temp file, fsync, rename, directory fsync), so
after a power cut it holds either the old or the new :class:`~bab.sym.state.PairingState`, never a mix. The
``unpaired -> paired`` transition is one :meth:`SymStore.save` of the complete paired state; a crypto-reset is
one save of the unpaired state.
"""

from __future__ import annotations

import os
from pathlib import Path

from bab.persist import read_json, write_json

from .errors import SymStoreError
from .state import PairingState

FILE_MODE = 0o600


def sym_state_path(state_dir: str | os.PathLike[str], server_id: bytes) -> Path:
    """Where the pairing state of the meter with this 10-byte server ID lives below ``state_dir``."""
    if len(server_id) != 10:
        raise ValueError(f"server ID must be 10 bytes, got {len(server_id)}")
    return Path(state_dir) / "sym" / f"{server_id.hex()}.json"


class SymStore:
    """Load/save the pairing state of one meter; every write is atomic and durable."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> PairingState | None:
        """The stored state, or None when no master key was ever provisioned.

        A corrupt or inconsistent file raises :class:`SymStoreError` (it is never silently replaced).
        """
        try:
            obj = read_json(self.path)
        except ValueError:
            raise SymStoreError(f"{self.path}: corrupt SYM state file", "corrupt_state") from None
        if obj is None:
            return None
        try:
            return PairingState.from_json(obj)
        except SymStoreError as exc:
            raise SymStoreError(f"{self.path}: {exc}", exc.reason) from None

    def require(self) -> PairingState:
        """Like :meth:`load` but a missing file is an error (no master key provisioned yet)."""
        state = self.load()
        if state is None:
            raise SymStoreError(
                f"{self.path}: no meter master key provisioned (run 'bab keys set-master-key')", "no_state"
            )
        return state

    def save(self, state: PairingState) -> None:
        """Atomically replace the stored state with ``state``."""
        write_json(self.path, state.to_json(), mode=FILE_MODE)

    def crypto_reset(self) -> PairingState:
        """Kryptoreset: back to MK, unpaired, peer cert and injected key wiped; one atomic write."""
        state = self.require().crypto_reset()
        self.save(state)
        return state

    def set_master_key(self, master_key: bytes) -> PairingState:
        """Provision or replace MK (refused while paired); keeps the counter; one atomic write."""
        old = self.load()
        state = PairingState(master_key=master_key) if old is None else old.with_master_key(master_key)
        self.save(state)
        return state
