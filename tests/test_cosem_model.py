"""The COSEM object model of a base meter: names, classes, access rights, values, status word."""

from __future__ import annotations

import pytest

from bab.cosem import (
    AccessFailure,
    Attribute,
    BaseMeterModel,
    CosemAccessError,
    CosemClass,
    CosemObject,
    ObjectName,
    ObjectTable,
    StatusBit,
    status_word,
)
from bab.cosem.base_meter import firmware_crc
from bab.meter_id import MeterId
from bab.obis import Obis
from bab.reading import Reading, ReadingStatus
from bab.sml.tl import Integer, Unsigned
from bab.sml.types import CosemScalerUnit
from bab.values import ValueStore
from legacy_drivers.api import Health

SID = MeterId.parse("1BAB0012345678").server_id


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def model(tmp_path, **kw) -> tuple[BaseMeterModel, ValueStore, Clock]:
    clock = Clock()
    values = ValueStore("1BAB0012345678", clock=clock)
    return BaseMeterModel(SID, values, tmp_path, clock=clock, **kw), values, clock


def read(m: BaseMeterModel, name: str, cls: int, attr: int = 2):
    return m.table.lookup(ObjectName(Obis.parse(name), cls).to_bytes()).read(attr)


def test_object_name_is_obis_class_version():
    n = ObjectName(Obis.parse("1-0:1.8.0"), CosemClass.ADVANCED_EXT_REGISTER)
    assert n.to_bytes() == bytes.fromhex("0100010800FF800200")
    assert ObjectName.from_bytes(bytes.fromhex("01005E3100070001 00".replace(" ", ""))) == \
        ObjectName(Obis(1, 0, 94, 49, 0, 7), 1, 0)
    with pytest.raises(ValueError):
        ObjectName.from_bytes(b"\x01\x00")


def test_table_rejects_duplicates_and_unknown_attributes():
    obj = CosemObject(ObjectName(Obis(1, 0, 1, 8, 0), 1), {2: Attribute(2, get=lambda: b"x")})
    table = ObjectTable([obj])
    with pytest.raises(ValueError):
        table.add(CosemObject(ObjectName(Obis(1, 0, 1, 8, 0), 3)))
    with pytest.raises(ValueError):  # Data has no attribute 3
        CosemObject(ObjectName(Obis(1, 0, 2, 8, 0), 1), {3: Attribute(3, get=lambda: b"")})
    assert table.lookup(obj.name.to_bytes()) is obj
    assert table.lookup(obj.name.obis.to_bytes()) is obj  # 6-byte lookup (flat Set variant)
    assert obj.read(1) == bytes.fromhex("0100010800FF")  # logical_name
    with pytest.raises(CosemAccessError) as e:
        table.lookup(b"\x01" * 9)
    assert e.value.kind is AccessFailure.UNKNOWN_OBJECT


def test_base_meter_identification(tmp_path):
    m, _, _ = model(tmp_path)
    assert read(m, "1-0:96.1.0*255", 1) == SID
    assert read(m, "1-0:96.50.1*1", 1) == b"BAB"
    fw = read(m, "1-0:0.2.0*0", 1)
    assert 1 <= len(fw) <= 8
    assert read(m, "1-0:96.90.2*1", 1) == firmware_crc() and len(firmware_crc()) == 4
    assert len(read(m, "1-0:94.49.1.5", 1)) == 6
    assert read(m, "1-0:94.49.0*1", 1) == Unsigned(1)  # first start


def test_registers_serve_the_readings_scaler_and_unit(tmp_path):
    m, values, clock = model(tmp_path)
    with pytest.raises(CosemAccessError) as e:
        read(m, "1-0:1.8.0", 0x8002)
    assert e.value.kind is AccessFailure.NO_DATA
    values.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh"), Reading.from_text("1-0:16.7.0", "-432.1", "W")])
    assert read(m, "1-0:1.8.0", 0x8002) == Unsigned(12345678)
    assert type(read(m, "1-0:1.8.0", 0x8002)) is Unsigned
    assert read(m, "1-0:1.8.0", 0x8002, 3) == CosemScalerUnit(0, 30)
    assert read(m, "1-0:1.8.0", 0x8002, 5) == Unsigned(0)
    p = read(m, "1-0:16.7.0", 3)
    assert type(p) is Integer and p.value == -4321
    assert read(m, "1-0:16.7.0", 3, 3) == CosemScalerUnit(-1, 27)
    # capture time (attribute 4) is the seconds index when the value arrived
    clock.t += 30
    assert read(m, "1-0:1.8.0", 0x8002, 4).value == read(m, "1-0:94.49.0*1", 1).value - 30


def test_energy_never_goes_backwards_and_shows_in_status(tmp_path):
    m, values, _ = model(tmp_path)
    values.publish([Reading.from_text("1-0:1.8.0", "100", "kWh")])
    values.publish([Reading.from_text("1-0:1.8.0", "99", "kWh")])
    assert read(m, "1-0:1.8.0", 0x8002) == Unsigned(100)
    assert read(m, "1-0:1.8.0", 0x8002, 5).value & StatusBit.WENT_BACKWARDS
    assert read(m, "1-0:96.5.0", 1).value & StatusBit.WENT_BACKWARDS


def test_status_word_bits(tmp_path):
    m, values, _ = model(tmp_path)
    assert read(m, "1-0:96.5.0", 1).value == StatusBit.NO_DATA
    values.publish([Reading.from_text("1-0:1.8.0", "1", "kWh", status=ReadingStatus.METER_ERROR)])
    values.set_health(Health.OK)
    assert read(m, "1-0:96.5.0", 1).value == StatusBit.METER_ERROR
    values.set_health(Health.SOURCE_LOST)
    assert read(m, "1-0:96.5.0", 1).value == StatusBit.METER_ERROR | StatusBit.SOURCE_LOST
    values.set_health(Health.STALE)
    assert read(m, "1-0:1.8.0", 0x8002, 5).value == StatusBit.METER_ERROR | StatusBit.STALE
    assert status_word([None], Health.OK, index_resumed=True) == StatusBit.NO_DATA | StatusBit.INDEX_RESUMED


def test_phase_objects_exist_only_with_driver_values(tmp_path):
    m, values, _ = model(tmp_path)
    name = ObjectName(Obis.parse("1-0:32.7.0"), 3).to_bytes()
    with pytest.raises(CosemAccessError):
        m.table.lookup(name)
    values.publish([Reading.from_text("1-0:32.7.0", "230.1", "V")])
    assert m.table.lookup(name).read(2) == Unsigned(2301)
    assert m.table.lookup(name).read(3) == CosemScalerUnit(-1, 35)


def test_access_rights(tmp_path):
    m, _, _ = model(tmp_path)
    reset = m.table.lookup(ObjectName(Obis.parse("1-0:94.49.0*7"), 1).to_bytes())
    with pytest.raises(CosemAccessError) as e:
        reset.read(2)
    assert e.value.kind is AccessFailure.NOT_READABLE
    dev = m.table.lookup(ObjectName(Obis.parse("1-0:96.1.0"), 1).to_bytes())
    with pytest.raises(CosemAccessError) as e:
        dev.write(2, b"x")
    assert e.value.kind is AccessFailure.NOT_WRITABLE
    with pytest.raises(CosemAccessError) as e:
        dev.read(7)
    assert e.value.kind is AccessFailure.NO_SUCH_ATTRIBUTE


def test_crypto_reset_calls_the_pairing_hook(tmp_path):
    m, _, _ = model(tmp_path)
    reset = m.table.lookup(ObjectName(Obis.parse("1-0:94.49.0*7"), 1).to_bytes())
    with pytest.raises(CosemAccessError) as e:
        reset.write(2, True)  # no pairing layer yet: not executed
    assert e.value.kind is AccessFailure.NOT_EXECUTED
    with pytest.raises(CosemAccessError) as e:
        reset.write(2, Unsigned(1))
    assert e.value.kind is AccessFailure.WRONG_TYPE
    calls = []
    m.crypto_reset_hook = lambda: calls.append(1) or True
    reset.write(2, True)
    reset.write(2, False)  # accepted, no action
    assert calls == [1] and m.crypto_resets == 1
    m.crypto_reset_hook = lambda: False
    with pytest.raises(CosemAccessError):
        reset.write(2, True)


def test_get_list_entries_like_edl(tmp_path):
    m, values, _ = model(tmp_path)
    values.publish([Reading.from_text("1-0:1.8.0", "5", "kWh"), Reading.from_text("1-0:36.7.0", "12", "W")])
    entries = m.list_entries()
    names = [e.obj_name for e in entries]
    assert names[:3] == [Obis.parse("1-0:96.50.1*1").to_bytes(), Obis.parse("1-0:96.1.0").to_bytes(),
                         Obis.parse("1-0:1.8.0").to_bytes()]
    assert Obis.parse("1-0:36.7.0").to_bytes() in names
    e = entries[2]
    assert (e.value, e.scaler, e.unit) == (Unsigned(5), 3, 30)


def test_a_register_keeps_its_scaler_when_a_coarser_reading_comes() -> None:
    """scaler_unit is a static COSEM attribute: a later reading written with fewer decimals is served with the
    register's scaler (exactly), a finer one makes the register finer."""
    store = ValueStore("1BAB0000000001")
    store.publish([Reading.from_text("1-0:1.8.0", "12345.678", "kWh")])
    store.publish([Reading.from_text("1-0:1.8.0", "20000", "kWh")])
    r = store.get(Obis.parse("1-0:1.8.0"))
    assert (r.value, r.scaler) == (20000000, 0)
    store.publish([Reading.from_text("1-0:1.8.0", "20000.0001", "kWh")])
    r = store.get(Obis.parse("1-0:1.8.0"))
    assert (r.value, r.scaler) == (200000001, -1)
    store.publish([Reading.from_text("1-0:1.8.0", "20001", "kWh")])
    assert store.get(Obis.parse("1-0:1.8.0")).scaler == -1
