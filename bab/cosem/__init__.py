"""COSEM object model of a BAB base meter, carried by SML on the LMN (LMN-STACK.md section 7).

Modules: :mod:`.objects` (object names, classes, attributes, the object table), :mod:`.base_meter` (the object
set a base meter serves), :mod:`.status_word` (the status word bit layout), :mod:`.seconds_index` (the
persisted monotonic seconds index), :mod:`.profile` (the persisted 15-minute profile ring buffer).
"""

from __future__ import annotations

from .base_meter import BaseMeterModel, name_of
from .objects import (
    Access,
    AccessFailure,
    Attribute,
    CosemAccessError,
    CosemClass,
    CosemObject,
    ObjectName,
    ObjectTable,
)
from .profile import PROFILE_OBIS, ProfileBuffer, ProfileEntry, ProfileValue
from .seconds_index import SecondsIndex
from .status_word import StatusBit, register_status, status_word

__all__ = [
    "PROFILE_OBIS", "Access", "AccessFailure", "Attribute", "BaseMeterModel", "CosemAccessError", "CosemClass",
    "CosemObject", "ObjectName", "ObjectTable", "ProfileBuffer", "ProfileEntry", "ProfileValue", "SecondsIndex",
    "StatusBit", "name_of", "register_status", "status_word",
]
