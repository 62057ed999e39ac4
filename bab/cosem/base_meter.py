"""The object set a BAB base meter serves on the LMN (LMN-STACK.md section 7, "Object list"), built from the
meter's configuration (server ID) and its :class:`~bab.values.ValueStore`.

=====================  ===========  ======  ===================================================================
OBIS                   class        access  value
=====================  ===========  ======  ===================================================================
1-0:94.49.0*1          Data         R       seconds index, Unsigned32 (:mod:`.seconds_index`)
1-0:1.8.0*255          0x8002       R       +A energy: 2 value u64, 3 scaler_unit, 4 capture time, 5 status
1-0:2.8.0*255          0x8002       R       -A energy, as 1.8.0
1-0:16.7.0*255         Register     R       active power, Integer64 (signed)
1-0:32/52/72.7.0*255   Register     R       voltage L1..L3, u64 (only while the driver provides them)
1-0:31/51/71.7.0*255   Register     R       current L1..L3, u64 (only while the driver provides them)
5/6-0:1.0.0, 7-0:3.0.0, 0x8002       R       main register of a cooling/heat (energy), gas or water meter
8/9-0:1.0.0                                 (volume), as 1.8.0 (only while the driver provides it)
5/6-0:C.0.0, 8/9-0:2.0.0  Register  R       heat/cooling volume, power, flow, temperatures; water flow
                                            (signed Integer64; only while the driver provides them)
1-0:96.5.0*255         Data         R       status word, Unsigned32 (:mod:`.status_word`)
1-0:96.1.0*255         Data         R       device ID = the 10-byte server ID
1-0:96.50.1*1          Data         R       manufacturer FLAG (3 ASCII letters of the server ID)
1-0:0.2.0*0            Data         R       firmware version: BAB's version (at most 8 bytes)
1-0:96.90.2*1          Data         R       firmware CRC: CRC-32 of the version string, 4 bytes big-endian
1-0:94.49.1.5          Data         R       device class, 6 bytes (the FNN coding is not public: configurable)
1-0:94.49.0*7          Data         W       crypto-reset, Boolean, write-only (see :meth:`BaseMeterModel.crypto_reset`)
=====================  ===========  ======  ===================================================================

A BAB presents one medium per meter (its meter ID's first digit, :mod:`bab.medium`): the registers of the
other media simply do not exist while no driver provides them. Values carry the reading's own scaler and
unit (attribute 3); registers never go backwards because the value store keeps the old value and flags
WENT_BACKWARDS, which shows in the register status and the status word.
A register without any reading yet fails with AccessFailure.NO_DATA.

Crypto-reset: writing TRUE calls :attr:`BaseMeterModel.crypto_reset_hook`, which the pairing layer installs.
Until it does (no hook), or when the hook returns False, the write fails with AccessFailure.NOT_EXECUTED
(attention ``FE 0A`` "order not executed"): answering OK without resetting anything would make an SMGW
believe the pairing keys are gone. Writing FALSE is accepted and does nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bab import __version__
from bab.medium import AUXILIARY_REGISTERS, MAIN_REGISTERS, Medium
from bab.obis import Obis
from bab.reading import Reading
from bab.sml.tl import Integer, Unsigned
from bab.sml.types import CosemScalerUnit, ListEntry, SecIndex
from bab.values import ValueStore

from ..persist import Writer, atomic_write
from .objects import (
    AccessFailure,
    Attribute,
    AttrValue,
    CosemAccessError,
    CosemClass,
    CosemObject,
    ObjectName,
    ObjectTable,
)
from .profile import ProfileBuffer, ProfileEntry
from .seconds_index import SecondsIndex
from .status_word import register_status, status_word

if TYPE_CHECKING:
    from bab.meter import MeterRuntime

SECONDS_INDEX = Obis(1, 0, 94, 49, 0, 1)
ENERGY_IMPORT = Obis(1, 0, 1, 8, 0, 255)
ENERGY_EXPORT = Obis(1, 0, 2, 8, 0, 255)
POWER = Obis(1, 0, 16, 7, 0, 255)
VOLTAGES = (Obis(1, 0, 32, 7, 0, 255), Obis(1, 0, 52, 7, 0, 255), Obis(1, 0, 72, 7, 0, 255))
CURRENTS = (Obis(1, 0, 31, 7, 0, 255), Obis(1, 0, 51, 7, 0, 255), Obis(1, 0, 71, 7, 0, 255))
STATUS_WORD = Obis(1, 0, 96, 5, 0, 255)
DEVICE_ID = Obis(1, 0, 96, 1, 0, 255)
MANUFACTURER = Obis(1, 0, 96, 50, 1, 1)
FIRMWARE_VERSION = Obis(1, 0, 0, 2, 0, 0)
FIRMWARE_CRC = Obis(1, 0, 96, 90, 2, 1)
DEVICE_CLASS = Obis(1, 0, 94, 49, 1, 5)
CRYPTO_RESET = Obis(1, 0, 94, 49, 0, 7)

#: Placeholder device class (1-0:94.49.1.5): the FNN coding of the Geräteklasse is not public.
DEFAULT_DEVICE_CLASS = b"BAB\x00\x00\x01"
#: Main registers of the other media (gas, water, heat, cooling; bab.medium), with their F = 255 names.
MEDIUM_MAIN = tuple(Obis(o.a, o.b, o.c, o.d, o.e, 255) for m, o in sorted(MAIN_REGISTERS.items())
                    if m is not Medium.ELECTRICITY)
MEDIUM_AUXILIARY = tuple(sorted(AUXILIARY_REGISTERS))
#: Register objects whose readings are served, in list order (GetList, status word).
REGISTERS = (ENERGY_IMPORT, ENERGY_EXPORT, POWER, *VOLTAGES, *CURRENTS, *MEDIUM_MAIN, *MEDIUM_AUXILIARY)
#: Registers with a status (class 0x8002 attribute 5) in the GetList.
_STATUS_REGISTERS = frozenset((ENERGY_IMPORT, ENERGY_EXPORT, *MEDIUM_MAIN))


def name_of(obis: Obis, cls: CosemClass) -> bytes:
    """The 9-byte object name of ``obis`` in class ``cls`` (version 0)."""
    return ObjectName(obis, int(cls)).to_bytes()


def _number(value: int, *, signed: bool) -> Unsigned:
    if signed or value < 0:
        return Integer(value, 8)
    return Unsigned(value, 8)


def firmware_version_bytes(version: str = __version__) -> bytes:
    return version.encode("ascii", "replace")[:8]


def firmware_crc(version: str = __version__) -> bytes:
    return zlib.crc32(version.encode("ascii", "replace")).to_bytes(4, "big")


class BaseMeterModel:
    """The COSEM objects of one presented meter, plus its seconds index and 15-minute profile.

    ``clock`` is the caller's monotonic clock (read when a request is served; the model itself does no I/O
    except persisting its state files through bab.persist).
    """

    def __init__(self, server_id: bytes, values: ValueStore, state_dir: Path | str, *,
                 clock: Callable[[], float], manufacturer: bytes | None = None,
                 firmware_version: str = __version__, device_class: bytes = DEFAULT_DEVICE_CLASS,
                 persist_every: float = 60.0, profile_period: int = 900, profile_depth: int = 96 * 7,
                 writer: Writer = atomic_write) -> None:
        self.server_id = bytes(server_id)
        self.values = values
        self.clock = clock
        self.state_dir = Path(state_dir)
        self.seconds_index = SecondsIndex(self.state_dir, clock(), persist_every=persist_every, writer=writer)
        self.profile = ProfileBuffer(self.state_dir, period=profile_period, depth=profile_depth, writer=writer,
                                     objects=(ENERGY_IMPORT, ENERGY_EXPORT, *MEDIUM_MAIN))
        self.crypto_reset_hook: Callable[[], bool] | None = None
        self.crypto_resets = 0
        # Status word bits forced by the lab meter (bab.sim.control): OR'ed in, then masked out.
        self.status_forced_on = 0
        self.status_forced_off = 0
        if manufacturer is None:
            manufacturer = self.server_id[2:5] if len(self.server_id) == 10 else b""
        fw = firmware_version_bytes(firmware_version)
        crc = firmware_crc(firmware_version)
        self.table = ObjectTable()
        add = self.table.add
        data, reg = CosemClass.DATA, CosemClass.REGISTER
        add(self._data(SECONDS_INDEX, lambda: Unsigned(self.sec_index(), 4), "seconds index"))
        add(self._register(ENERGY_IMPORT, CosemClass.ADVANCED_EXT_REGISTER, False, "+A energy"))
        add(self._register(ENERGY_EXPORT, CosemClass.ADVANCED_EXT_REGISTER, False, "-A energy"))
        add(self._register(POWER, reg, True, "active power"))
        for i, obis in enumerate(VOLTAGES):
            add(self._register(obis, reg, False, f"voltage L{i + 1}", optional=True))
        for i, obis in enumerate(CURRENTS):
            add(self._register(obis, reg, False, f"current L{i + 1}", optional=True))
        names = {o: m.name.lower().replace("_", " ") for m, o in MAIN_REGISTERS.items()}
        for obis in MEDIUM_MAIN:
            add(self._register(obis, CosemClass.ADVANCED_EXT_REGISTER, False, f"{names[obis]} meter register",
                               optional=True))
        for obis in MEDIUM_AUXILIARY:
            add(self._register(obis, reg, True, AUXILIARY_REGISTERS[obis], optional=True))
        add(self._data(STATUS_WORD, lambda: Unsigned(self.status_word(), 4), "status word"))
        add(self._data(DEVICE_ID, lambda: self.server_id, "device ID"))
        add(self._data(MANUFACTURER, lambda: manufacturer, "manufacturer"))
        add(self._data(FIRMWARE_VERSION, lambda: fw, "firmware version"))
        add(self._data(FIRMWARE_CRC, lambda: crc, "firmware CRC"))
        add(self._data(DEVICE_CLASS, lambda: bytes(device_class), "device class"))
        add(CosemObject(ObjectName(CRYPTO_RESET, data), {2: Attribute(2, set=self._write_crypto_reset)},
                        "crypto-reset"))

    @classmethod
    def for_runtime(cls, meter: MeterRuntime, **kw: object) -> BaseMeterModel:
        """The model of a :class:`bab.meter.MeterRuntime` (state files in ``<meter state dir>/cosem``)."""
        return cls(meter.server_id, meter.values, meter.state_dir / "cosem", clock=meter.values.clock,
                   **kw)  # type: ignore[arg-type]

    # -------------------------------------------------------------------------------------------- objects

    @staticmethod
    def _data(obis: Obis, get: Callable[[], AttrValue], description: str) -> CosemObject:
        return CosemObject(ObjectName(obis, CosemClass.DATA), {2: Attribute(2, get=get)}, description)

    def _register(self, obis: Obis, cls: CosemClass, signed: bool, description: str, *,
                  optional: bool = False) -> CosemObject:
        def reading() -> Reading:
            r = self.values.get(obis)
            if r is None:
                raise CosemAccessError(AccessFailure.NO_DATA, str(obis))
            return r

        attrs = {
            2: Attribute(2, get=lambda: _number(reading().value, signed=signed)),
            3: Attribute(3, get=lambda: CosemScalerUnit(reading().scaler, int(reading().unit))),
        }
        if cls is CosemClass.ADVANCED_EXT_REGISTER:
            attrs[4] = Attribute(4, get=lambda: Unsigned(self.capture_index(obis), 4))
            attrs[5] = Attribute(5, get=lambda: Unsigned(register_status(reading()), 4))
        present = (lambda: obis in self.values.readings) if optional else None
        return CosemObject(ObjectName(obis, cls), attrs, description, present)

    def _write_crypto_reset(self, value: AttrValue) -> None:
        if type(value) is not bool:
            raise CosemAccessError(AccessFailure.WRONG_TYPE, "crypto-reset takes a Boolean")
        if not value:
            return
        hook = self.crypto_reset_hook
        if hook is None:
            raise CosemAccessError(AccessFailure.NOT_EXECUTED, "no pairing layer installed")
        if not hook():
            raise CosemAccessError(AccessFailure.NOT_EXECUTED, "the pairing layer refused the reset")
        self.crypto_resets += 1

    # --------------------------------------------------------------------------------------------- values

    def sec_index(self) -> int:
        return self.seconds_index.value(self.clock())

    def capture_index(self, obis: Obis) -> int:
        """The seconds index at which the current value of ``obis`` was received."""
        now = self.clock()
        idx = self.seconds_index.value(now)
        at = self.values.received_at.get(obis)
        if at is None:
            return idx
        return max(0, idx - int(max(0.0, now - at)))

    def register_readings(self) -> dict[Obis, Reading | None]:
        return {o: self.values.get(o) for o in REGISTERS}

    def status_word(self) -> int:
        served = list(self.register_readings().values())
        word = status_word(served, self.values.health, index_resumed=self.seconds_index.resumed_unclean)
        return (word | self.status_forced_on) & ~self.status_forced_off & 0xFFFFFFFF

    def list_entries(self) -> list[ListEntry]:
        """The valList of the GetList.Res a base meter pushes (EDL layout, LMN-STACK.md 6.4)."""
        idx = SecIndex(self.sec_index())
        entries = [ListEntry(MANUFACTURER.to_bytes(), value=self.table.lookup(MANUFACTURER.to_bytes()).read(2)),
                   ListEntry(DEVICE_ID.to_bytes(), value=self.server_id)]
        seen = set()
        for obis in (*REGISTERS, *sorted(self.values.readings)):
            if obis in seen:
                continue
            seen.add(obis)
            r = self.values.get(obis)
            if r is None:
                continue
            status = Unsigned(register_status(r), 4) if obis in _STATUS_REGISTERS else None
            entries.append(ListEntry(obis.to_bytes(), status, idx, int(r.unit), r.scaler,
                                     _number(r.value, signed=obis == POWER or obis in MEDIUM_AUXILIARY)))
        return entries

    # ------------------------------------------------------------------------------------- daemon calls

    def tick(self, now: float, wall_time: float) -> ProfileEntry | None:
        """Call every few seconds: persists the seconds index when due and captures the 15-minute profile
        at each period boundary (``now`` = the monotonic clock, ``wall_time`` = UTC seconds)."""
        self.seconds_index.tick(now)
        if self.profile.due(wall_time) is None:
            return None
        return self.profile.capture(wall_time, self.seconds_index.value(now), self.register_readings(),
                                    self.status_word())

    def shutdown(self, now: float) -> None:
        """Call when the daemon stops: writes the exact seconds index (clean restart without a jump)."""
        self.seconds_index.shutdown(now)
