"""SYM: the symmetric pairing protocol of the wired LMN ("SYM über HDLC", HDLC selector 6), meter and
gateway side as sans-I/O state machines, with pluggable protocol profiles (LMN-STACK.md section 5).

Modules (one concept each):

* :mod:`~bab.sym.crypto` - AES-128-CMAC and AES-CBC(IV=0) over ``cryptography``;
* :mod:`~bab.sym.profile` - the profile boundary (:class:`SymProfile`) and the place for the FNN profile;
* :mod:`~bab.sym.profile2015` - profile "2015" (Ostfalia reconstruction), options ``mac_length``/``emh_bug``;
* :mod:`~bab.sym.meter` - :class:`SymMeter`, the meter side (upper layer of HDLC selector 6) and its
  failure policy;
* :mod:`~bab.sym.gateway` - :class:`SymGateway`, the gateway side (for the software gateway and tests);
* :mod:`~bab.sym.state`, :mod:`~bab.sym.store` - the persisted :class:`PairingState` and its atomic store;
* :mod:`~bab.sym.master_key` - MK provisioning (``bab keys set-master-key``);
* :mod:`~bab.sym.link` - :class:`PersistentSymMeter`, SymMeter + SymStore for the HDLC upper layer;
* :mod:`~bab.sym.events`, :mod:`~bab.sym.errors`, :mod:`~bab.sym.credentials` - events, named errors, DER.
"""

from __future__ import annotations

from .errors import (
    MasterKeyError,
    SymAuthError,
    SymError,
    SymFormatError,
    SymSequenceError,
    SymStoreError,
    SymUsageError,
)
from .events import MessageDropped, MeterPaired, PairingCompleted, PairingFailed, SaveState, SymEvent
from .gateway import SymGateway
from .link import PersistentSymMeter
from .master_key import parse_master_key, read_master_key, set_master_key
from .meter import SymMeter
from .profile import AlgorithmList, Credentials, Direction, PairingStep, SymMessage, SymProfile
from .profile2015 import Profile2015
from .state import PairingState
from .store import SymStore, sym_state_path

__all__ = [
    "AlgorithmList", "Credentials", "Direction", "MasterKeyError", "MessageDropped", "MeterPaired",
    "PairingCompleted", "PairingFailed", "PairingState", "PairingStep", "PersistentSymMeter", "Profile2015",
    "SaveState", "SymAuthError", "SymError", "SymEvent", "SymFormatError", "SymGateway",
    "SymMessage", "SymMeter", "SymProfile", "SymSequenceError", "SymStore", "SymStoreError",
    "SymUsageError", "parse_master_key", "read_master_key", "set_master_key",
    "sym_state_path",
]
