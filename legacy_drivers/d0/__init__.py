"""D0 / IEC 62056-21 optical interface: sans-I/O protocol core, data-set parser and the asyncio driver."""

from .dataset import DataSet, ParseResult, data_sets, obis_of, parse_readout
from .driver import D0Driver
from .protocol import (
    BAUD_B,
    BAUD_C,
    ChangeBaud,
    CycleFailed,
    D0Client,
    D0Config,
    D0Mode,
    Dropped,
    Identification,
    Identified,
    Readout,
    Transmit,
    bcc,
    wire_time,
)

__all__ = [
    "BAUD_B", "BAUD_C", "ChangeBaud", "CycleFailed", "D0Client", "D0Config", "D0Driver", "D0Mode", "DataSet",
    "Dropped", "Identification", "Identified", "ParseResult", "Readout", "Transmit", "bcc", "data_sets",
    "obis_of", "parse_readout", "wire_time",
]
