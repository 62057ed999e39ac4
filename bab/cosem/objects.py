"""The COSEM object model a base meter serves over SML (LMN-STACK.md section 7).

An object is addressed by its 9-byte *object name* ``OBIS(6) || class_id (uint16 BE) || version (u8)`` and
its attributes by number (the ``00 02``, ``00 03`` path entries of SML_GetProcParameter). Attribute values
are SML values (:class:`~bab.sml.tl.Unsigned`, :class:`~bab.sml.tl.Integer`, ``bytes``, ``bool``,
:class:`~bab.sml.types.CosemScalerUnit`), because SML is the only carrier of this model on the LMN.

Classes and attribute numbers (attribute 1 is always ``logical_name``, the 6 OBIS bytes):

* 1 Data: 2 value.
* 3 Register: 2 value, 3 scaler_unit.
* 0x8000 FNN signed extended register: 2 value, 3 scaler_unit, 4 status, 5 capture time (secIndex),
  6 signature (libsml fork with BZ signatures).
* 0x8002 FNN "advanced extended register" (1.8.0 / 2.8.0): 2 value, 3 scaler_unit, **4 capture time
  (secIndex), 5 status**. Chosen after the STM32 LMN client, the only source that names 0x8002 and the client
  whose requests (``[obj9, 00 02, 00 03, 00 04, 00 05]``) we must answer; it is also the layout of the
  GetProcParameter example in ``vectors/lmn-frames.txt`` (attribute 4 = secIndex 0x1E9BD2, 5 = status 0x104).
  It conflicts with 0x8000 and with the DLMS extended register (4 status, 5 capture_time): uncertainty
  register #12. Changing it is one table (:data:`CLASS_ATTRIBUTES`).

Access errors are :class:`CosemAccessError` with a :class:`AccessFailure` kind; the SML server maps the
kinds to attention numbers (see :mod:`bab.sml.server`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bab.obis import Obis
from bab.sml.tl import Integer, Unsigned
from bab.sml.types import CosemScalerUnit, SecIndex

#: What an attribute holds on the wire (a subset of SML_Value).
AttrValue = bool | bytes | Unsigned | Integer | CosemScalerUnit | SecIndex


class CosemClass(enum.IntEnum):
    """COSEM interface classes used on the LMN (LMN-STACK.md 7, "Classes")."""

    DATA = 1
    REGISTER = 3
    PROFILE_GENERIC = 7
    SIGNED_EXT_REGISTER = 0x8000
    SIGNED_EXT_REGISTER_TUPLE = 0x8001
    ADVANCED_EXT_REGISTER = 0x8002


#: attribute number -> attribute name, per class (see the module docstring for the 0x8002 choice)
CLASS_ATTRIBUTES: dict[CosemClass, dict[int, str]] = {
    CosemClass.DATA: {1: "logical_name", 2: "value"},
    CosemClass.REGISTER: {1: "logical_name", 2: "value", 3: "scaler_unit"},
    CosemClass.PROFILE_GENERIC: {1: "logical_name", 2: "buffer"},
    CosemClass.SIGNED_EXT_REGISTER: {1: "logical_name", 2: "value", 3: "scaler_unit", 4: "status",
                                     5: "capture_time", 6: "signature"},
    CosemClass.SIGNED_EXT_REGISTER_TUPLE: {1: "logical_name", 2: "value"},
    CosemClass.ADVANCED_EXT_REGISTER: {1: "logical_name", 2: "value", 3: "scaler_unit", 4: "capture_time",
                                       5: "status"},
}


class Access(enum.IntFlag):
    NONE = 0
    READ = 1
    WRITE = 2
    READ_WRITE = 3


class AccessFailure(enum.Enum):
    """Why an attribute access failed (mapped to an SML attention number by the server)."""

    UNKNOWN_OBJECT = "unknown object"
    NO_SUCH_ATTRIBUTE = "the object has no such attribute"
    NOT_READABLE = "attribute cannot be read"
    NOT_WRITABLE = "attribute cannot be written"
    WRONG_TYPE = "unsupported data type for this attribute"
    OUT_OF_RANGE = "value out of range"
    NOT_EXECUTED = "order not executed"
    NO_DATA = "no value from the legacy meter yet"


class CosemAccessError(Exception):
    """An attribute access that the model refuses; ``kind`` says why."""

    def __init__(self, kind: AccessFailure, detail: str = "") -> None:
        super().__init__(f"{kind.value}{': ' + detail if detail else ''}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True, order=True)
class ObjectName:
    """The 9-byte COSEM object name of SML_COSEM: OBIS, class id, class version."""

    obis: Obis
    class_id: int
    version: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.class_id <= 0xFFFF or not 0 <= self.version <= 0xFF:
            raise ValueError(f"class id {self.class_id} / version {self.version} out of range")

    def to_bytes(self) -> bytes:
        return self.obis.to_bytes() + self.class_id.to_bytes(2, "big") + bytes((self.version,))

    @classmethod
    def from_bytes(cls, raw: bytes) -> ObjectName:
        """Parse 9 bytes (ValueError for any other length)."""
        if len(raw) != 9:
            raise ValueError(f"a COSEM object name has 9 bytes, got {len(raw)}")
        return cls(Obis.from_bytes(raw[:6]), int.from_bytes(raw[6:8], "big"), raw[8])

    def __str__(self) -> str:
        return f"{self.obis}/{self.class_id:#06x}/{self.version}"


Getter = Callable[[], AttrValue]
Setter = Callable[[AttrValue], None]


@dataclass(slots=True)
class Attribute:
    """One attribute: its access rights, how to read it and how to write it."""

    number: int
    get: Getter | None = None
    set: Setter | None = None

    @property
    def access(self) -> Access:
        return (Access.READ if self.get is not None else Access.NONE) | (
            Access.WRITE if self.set is not None else Access.NONE)


@dataclass(slots=True)
class CosemObject:
    """An object of the table. ``present`` (optional) says whether it exists right now: phase voltages and
    currents exist only while the driver provides them."""

    name: ObjectName
    attributes: dict[int, Attribute] = field(default_factory=dict)
    description: str = ""
    present: Callable[[], bool] | None = None

    def __post_init__(self) -> None:
        known = CLASS_ATTRIBUTES.get(self.name.class_id)  # type: ignore[call-overload]
        if known is not None:
            unknown = set(self.attributes) - set(known)
            if unknown:
                raise ValueError(f"{self.name}: attributes {sorted(unknown)} not defined for its class")
        if 1 not in self.attributes:
            ln = self.name.obis.to_bytes()
            self.attributes[1] = Attribute(1, get=lambda: ln)

    @property
    def exists(self) -> bool:
        return self.present is None or self.present()

    def readable(self) -> list[int]:
        """Readable attribute numbers >= 2, in order (what an attribute-less request returns)."""
        return sorted(n for n, a in self.attributes.items() if n >= 2 and a.get is not None)

    def read(self, number: int) -> AttrValue:
        attr = self.attributes.get(number)
        if attr is None:
            raise CosemAccessError(AccessFailure.NO_SUCH_ATTRIBUTE, f"{self.name} attribute {number}")
        if attr.get is None:
            raise CosemAccessError(AccessFailure.NOT_READABLE, f"{self.name} attribute {number}")
        return attr.get()

    def write(self, number: int, value: AttrValue) -> None:
        attr = self.attributes.get(number)
        if attr is None:
            raise CosemAccessError(AccessFailure.NO_SUCH_ATTRIBUTE, f"{self.name} attribute {number}")
        if attr.set is None:
            raise CosemAccessError(AccessFailure.NOT_WRITABLE, f"{self.name} attribute {number}")
        attr.set(value)


class ObjectTable:
    """The objects of one meter, keyed by their 9-byte name (and findable by the 6 OBIS bytes alone, for the
    flat SetProcParameter variant of LMN-STACK.md 7)."""

    def __init__(self, objects: list[CosemObject] | None = None) -> None:
        self._by_name: dict[bytes, CosemObject] = {}
        self._by_obis: dict[bytes, CosemObject] = {}
        for obj in objects or ():
            self.add(obj)

    def add(self, obj: CosemObject) -> None:
        key = obj.name.to_bytes()
        if key in self._by_name or key[:6] in self._by_obis:
            raise ValueError(f"duplicate object {obj.name}")
        self._by_name[key] = obj
        self._by_obis[key[:6]] = obj

    def lookup(self, name: bytes) -> CosemObject:
        """The object named by 9 bytes (or 6 OBIS bytes); CosemAccessError(UNKNOWN_OBJECT) otherwise."""
        obj = self._by_name.get(name) if len(name) == 9 else self._by_obis.get(name) if len(name) == 6 else None
        if obj is None or not obj.exists:
            raise CosemAccessError(AccessFailure.UNKNOWN_OBJECT, name.hex())
        return obj

    def get(self, obis: Obis) -> CosemObject | None:
        obj = self._by_obis.get(obis.to_bytes())
        return obj if obj is not None and obj.exists else None

    def __iter__(self) -> Iterator[CosemObject]:
        return (o for o in self._by_name.values() if o.exists)

    def __len__(self) -> int:
        return sum(1 for _ in self)
