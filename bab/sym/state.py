"""The persisted SYM pairing state of one meter (LMN-STACK.md section 5, "Persist MK, M', the pinned SMGW
cert, the own key/cert and a paired flag").

:class:`PairingState` is an immutable value; the meter state machine never changes it in place but hands a
new value to its caller to persist (see :mod:`bab.sym.store`). Invariants, checked on construction:

* ``paired`` implies a peer (gateway) certificate; unpaired implies no peer certificate, no injected own
  certificate/key and no profile data: "fully paired or fully unpaired", never in between;
* an injected private key always comes with its certificate;
* ``counter`` is the meter's message-counter high-water mark (0 .. 2**32-1). It survives a crypto-reset:
  with profile 2015 the per-message keys depend only on MK and the counter, so resetting it would make old
  recorded messages replayable.

``profile_data`` is the documented place for profile-specific key material that belongs to a pairing
(e.g. the FNN profile's derived operational key M'); it is committed together with ``paired`` and wiped by a
crypto-reset. Profile 2015 leaves it empty.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import SymStoreError

FORMAT_VERSION = 1
COUNTER_MAX = 0xFFFFFFFF
MASTER_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class PairingState:
    """Everything the meter side of SYM must remember across restarts. Key material is hidden from repr."""

    master_key: bytes = field(repr=False)
    counter: int = 0
    paired: bool = False
    peer_certificate: bytes | None = field(default=None, repr=False)
    own_certificate: bytes | None = field(default=None, repr=False)
    own_private_key: bytes | None = field(default=None, repr=False)
    profile_data: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.master_key, bytes) or len(self.master_key) != MASTER_KEY_LENGTH:
            raise SymStoreError(f"master key must be {MASTER_KEY_LENGTH} bytes", "bad_master_key")
        if not isinstance(self.counter, int) or isinstance(self.counter, bool) or not (
            0 <= self.counter <= COUNTER_MAX
        ):
            raise SymStoreError("message counter out of range 0..2**32-1", "bad_counter")
        if self.own_private_key is not None and self.own_certificate is None:
            raise SymStoreError("an injected private key needs its certificate", "inconsistent_state")
        if self.paired and not self.peer_certificate:
            raise SymStoreError("paired state without a gateway certificate", "inconsistent_state")
        if not self.paired and (
            self.peer_certificate is not None or self.own_certificate is not None
            or self.own_private_key is not None or self.profile_data
        ):
            raise SymStoreError("unpaired state still holds pairing material", "inconsistent_state")

    # -- transitions (each returns a new value) ------------------------------------------------------------

    def with_counter(self, counter: int) -> PairingState:
        """The same state with a new counter high-water mark (must not go backwards)."""
        if counter < self.counter:
            raise SymStoreError("message counter must not go backwards", "bad_counter")
        return dataclasses.replace(self, counter=counter)

    def crypto_reset(self) -> PairingState:
        """Back to the initial master key: unpaired, peer certificate, injected key and profile data wiped."""
        return PairingState(master_key=self.master_key, counter=self.counter)

    def with_master_key(self, master_key: bytes) -> PairingState:
        """A new MK; only allowed while unpaired (a paired meter needs a crypto-reset first)."""
        if self.paired:
            raise SymStoreError("meter is paired: crypto-reset before setting a new master key", "paired")
        return PairingState(master_key=master_key, counter=self.counter)

    # -- JSON form -----------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        def hx(b: bytes | None) -> str | None:
            return None if b is None else b.hex()

        return {
            "format": FORMAT_VERSION,
            "master_key": self.master_key.hex(),
            "counter": self.counter,
            "paired": self.paired,
            "peer_certificate": hx(self.peer_certificate),
            "own_certificate": hx(self.own_certificate),
            "own_private_key": hx(self.own_private_key),
            "profile_data": dict(self.profile_data),
        }

    @classmethod
    def from_json(cls, obj: Any) -> PairingState:
        """Parse :meth:`to_json` output; anything malformed raises :class:`SymStoreError`."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT_VERSION:
            raise SymStoreError("unknown SYM state format", "corrupt_state")

        def unhex(name: str, optional: bool = True) -> bytes | None:
            v = obj.get(name)
            if v is None and optional:
                return None
            if not isinstance(v, str):
                raise SymStoreError(f"SYM state field {name!r} missing or not a string", "corrupt_state")
            try:
                return bytes.fromhex(v)
            except ValueError:
                raise SymStoreError(f"SYM state field {name!r} is not hex", "corrupt_state") from None

        paired = obj.get("paired")
        counter = obj.get("counter")
        pdata = obj.get("profile_data", {})
        if not isinstance(paired, bool) or not isinstance(counter, int) or not isinstance(pdata, dict):
            raise SymStoreError("SYM state fields have wrong types", "corrupt_state")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in pdata.items()):
            raise SymStoreError("SYM state profile_data must map strings to strings", "corrupt_state")
        mk = unhex("master_key", optional=False)
        assert mk is not None
        return cls(
            master_key=mk,
            counter=counter,
            paired=paired,
            peer_certificate=unhex("peer_certificate"),
            own_certificate=unhex("own_certificate"),
            own_private_key=unhex("own_private_key"),
            profile_data=dict(pdata),
        )
