"""Which COSEM object a web request means: an OBIS code (``1-0:1.8.0*255``) resolved to the class and the
attributes BAB's base meter serves it with (LMN-STACK.md 7), or given explicitly as ``{obis, class, attributes}``.
"""

from __future__ import annotations

from typing import Any

from bab.cosem.base_meter import ENERGY_EXPORT, ENERGY_IMPORT, MEDIUM_AUXILIARY, MEDIUM_MAIN, POWER, REGISTERS
from bab.cosem.objects import CosemClass, ObjectName
from bab.obis import Obis
from bab.sml.client import ObjectRequest

MAX_OBJECTS = 32
_ATTRIBUTES = {CosemClass.ADVANCED_EXT_REGISTER: (2, 3, 4, 5), CosemClass.REGISTER: (2, 3), CosemClass.DATA: (2,)}
_ADVANCED = frozenset((ENERGY_IMPORT, ENERGY_EXPORT, *MEDIUM_MAIN))
_REGISTER = frozenset((POWER, *REGISTERS, *MEDIUM_AUXILIARY)) - _ADVANCED


class ObjectSpecError(ValueError):
    """A requested object that cannot be read (the message says why)."""


def class_of(obis: Obis) -> CosemClass:
    if obis in _ADVANCED:
        return CosemClass.ADVANCED_EXT_REGISTER
    if obis in _REGISTER:
        return CosemClass.REGISTER
    return CosemClass.DATA


def parse_obis(text: Any) -> Obis:
    if not isinstance(text, str):
        raise ObjectSpecError(f"an OBIS code is a string such as '1-0:1.8.0*255', got {type(text).__name__}")
    try:
        return Obis.parse(text)
    except ValueError as exc:
        raise ObjectSpecError(f"malformed OBIS code {text!r}: {exc}") from None


def object_request(spec: Any) -> ObjectRequest:
    """``"1-0:1.8.0*255"`` or ``{"obis": ..., "class": 32770, "attributes": [2, 3]}`` -> an ObjectRequest."""
    if isinstance(spec, str):
        obis = parse_obis(spec)
        cls = class_of(obis)
        return ObjectRequest(ObjectName(obis, cls), _ATTRIBUTES[cls])
    if not isinstance(spec, dict):
        raise ObjectSpecError(f"an object is an OBIS string or a mapping, got {type(spec).__name__}")
    unknown = set(spec) - {"obis", "class", "attributes"}
    if unknown:
        raise ObjectSpecError(f"unknown key(s) in an object: {', '.join(sorted(unknown))}")
    obis = parse_obis(spec.get("obis"))
    cls_id = spec.get("class", int(class_of(obis)))
    if not isinstance(cls_id, int) or isinstance(cls_id, bool) or not 0 <= cls_id <= 0xFFFF:
        raise ObjectSpecError(f"'class' must be an integer 0..65535, got {cls_id!r}")
    attrs = spec.get("attributes", _ATTRIBUTES.get(cls_id, (2,)))  # type: ignore[call-overload]
    if (not isinstance(attrs, list | tuple) or not attrs or len(attrs) > 16
            or not all(isinstance(a, int) and not isinstance(a, bool) and 1 <= a <= 0xFFFF for a in attrs)):
        raise ObjectSpecError(f"'attributes' must be a list of 1..16 attribute numbers, got {attrs!r}")
    return ObjectRequest(ObjectName(obis, cls_id), tuple(attrs))


def object_requests(specs: Any) -> tuple[ObjectRequest, ...]:
    if not isinstance(specs, list) or not specs:
        raise ObjectSpecError("'objects' must be a non-empty list")
    if len(specs) > MAX_OBJECTS:
        raise ObjectSpecError(f"at most {MAX_OBJECTS} objects per read, got {len(specs)}")
    return tuple(object_request(s) for s in specs)
