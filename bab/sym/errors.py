"""Named errors of the SYM pairing protocol (LMN-STACK.md section 5).

Every error carries a short machine-readable ``reason`` (used as the key of the drop counters and in
events). Error texts never contain key material, MACs or decrypted payload bytes: only lengths, command
codes and counter values.
"""

from __future__ import annotations


class SymError(Exception):
    """Base class of all SYM errors; ``reason`` is a stable identifier such as ``"bad_mac"``."""

    reason = "sym_error"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class SymFormatError(SymError):
    """A message (or payload) is malformed: bad length field, truncated, bad padding, bad DER."""

    reason = "bad_format"


class SymAuthError(SymError):
    """The CMAC does not verify (wrong master key, wrong meter ID, or a modified message)."""

    reason = "bad_mac"


class SymSequenceError(SymError):
    """An authenticated command arrived out of the profile's order, or while the meter is paired."""

    reason = "wrong_sequence"


class SymStoreError(SymError):
    """The persisted pairing state is corrupt or inconsistent, or an operation on it is refused."""

    reason = "store_error"


class MasterKeyError(SymError, ValueError):
    """A meter master key (MK) could not be read or is not acceptable."""

    reason = "bad_master_key"


class SymUsageError(SymError, RuntimeError):
    """The caller used a state machine wrongly (e.g. ``receive`` while a state save is unacknowledged)."""

    reason = "usage"
