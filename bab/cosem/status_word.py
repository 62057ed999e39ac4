"""The BAB status word (1-0:96.5.0*255, Data, Unsigned32) and the per-register status (class 0x8002 attr 5).

The FNN Lastenheft Basiszähler defines the status word bits of a real base meter, but that text is not public
(LMN-STACK.md section 11; the EDL status ``0x1C0104`` of section 6.4 is manufacturer specific too). BAB
therefore uses its own layout, defined only here:

=====  ==========  =====================================================================================
bit    mask        meaning
=====  ==========  =====================================================================================
0      0x00000001  STALE: the legacy source has not delivered for longer than its stale timeout
1      0x00000002  REDUCED: the legacy meter sends a reduced data set (EDL without PIN)
2      0x00000004  WENT_BACKWARDS: an energy register reported less than before (old value kept)
3      0x00000008  SOURCE_LOST: the optical head / port is gone
4      0x00000010  ESTIMATED: a value is derived, not read (S0 pulse count)
5      0x00000020  METER_ERROR: the legacy meter reports an error
8      0x00000100  NO_DATA: no value at all from the legacy meter yet (driver starting)
9      0x00000200  INDEX_RESUMED: the seconds index resumed after an unclean stop (it jumped forward)
10     0x00000400  POWER_FAILURE: start-up after a power failure
11     0x00000800  MAGNETIC: magnetic manipulation detected
12     0x00001000  TERMINAL_COVER: the terminal cover was opened
13     0x00002000  MAIN_COVER: the meter's main cover was opened
=====  ==========  =====================================================================================

Bits 10..13 are what a real base meter reports about its own hardware. A legacy meter behind BAB does not tell
BAB any of them, so they are only ever set by the lab meter (``bab sim status METER BIT on``,
:mod:`bab.sim.control`), which can also force any other bit on or off.

Bits 0..5 are the :class:`bab.reading.ReadingStatus` flags with the same values, so the register status
(attribute 5 of the 0x8002 registers) is simply the reading's flags, and the status word is the OR of the
flags of every served register plus the driver health. All other bits are 0 (reserved).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from bab.reading import Reading, ReadingStatus
from legacy_drivers.api import Health


class StatusBit(enum.IntFlag):
    STALE = 0x01
    REDUCED = 0x02
    WENT_BACKWARDS = 0x04
    SOURCE_LOST = 0x08
    ESTIMATED = 0x10
    METER_ERROR = 0x20
    NO_DATA = 0x100
    INDEX_RESUMED = 0x200
    POWER_FAILURE = 0x400
    MAGNETIC = 0x800
    TERMINAL_COVER = 0x1000
    MAIN_COVER = 0x2000


_HEALTH_BITS = {
    Health.STALE: StatusBit.STALE,
    Health.SOURCE_LOST: StatusBit.SOURCE_LOST,
    Health.REDUCED: StatusBit.REDUCED,
}


def register_status(reading: Reading | None) -> int:
    """Status of one register (0x8002 attribute 5): the reading's flags, NO_DATA without a reading."""
    if reading is None:
        return int(StatusBit.NO_DATA)
    return int(reading.status) & 0x3F


def status_word(readings: Iterable[Reading | None], health: Health, *, index_resumed: bool = False) -> int:
    """The meter's status word from the served readings, the driver health and the seconds index state."""
    word = StatusBit(0)
    any_reading = False
    for r in readings:
        if r is None:
            continue
        any_reading = True
        word |= StatusBit(int(r.status & ReadingStatus(0x3F)))
    if not any_reading:
        word |= StatusBit.NO_DATA
    word |= _HEALTH_BITS.get(health, StatusBit(0))
    if index_resumed:
        word |= StatusBit.INDEX_RESUMED
    return int(word)
