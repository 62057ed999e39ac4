"""Hypothesis strategies for every SML type and message body (shared by the bab.sml tests)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bab.sml import (
    AttentionRes,
    CosemScalerUnit,
    GetListReq,
    GetListRes,
    GetProcParameterReq,
    GetProcParameterRes,
    GetProfileListReq,
    GetProfileListRes,
    GetProfilePackReq,
    GetProfilePackRes,
    Integer,
    ListEntry,
    LocalTimestamp,
    PeriodEntry,
    ProcParKind,
    ProcParValue,
    ProfObjHeaderEntry,
    ProfObjPeriodEntry,
    PublicCloseReq,
    PublicCloseRes,
    PublicOpenReq,
    PublicOpenRes,
    SecIndex,
    SetProcParameterReq,
    SmlFile,
    SmlMessage,
    Timestamp,
    TimestampedValue,
    Tree,
    TupelEntry,
    Unsigned,
    ValueEntry,
    encode_file,
)

# octet strings: mostly short, sometimes long enough for a 2- or 3-byte TL, often containing 1B runs
octets = st.one_of(
    st.binary(max_size=16),
    st.binary(min_size=13, max_size=300),
    st.lists(st.sampled_from([0x1B, 0x1B, 0x00, 0x1A, 0x01]), max_size=24).map(bytes),
)
opt_octets = st.none() | octets.filter(bool)


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


def sint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


@st.composite
def typed_int(draw: st.DrawFn, signed: bool | None = None, max_bits: int = 64) -> Unsigned:
    """Integer or Unsigned, with the auto width (0) or any width 1..8 the value fits in."""
    if signed is None:
        signed = draw(st.booleans())
    width = draw(st.sampled_from([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]))
    bits = min(max_bits, 8 * width if width else 64)
    value = draw(sint(bits) if signed else uint(bits))
    return Integer(value, width) if signed else Unsigned(value, width)


statuses = typed_int(signed=False)


@st.composite
def _u32_with_width(draw: st.DrawFn) -> tuple[int, int]:
    width = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4]))
    return draw(uint(8 * width if width else 32)), width


sml_times = st.one_of(
    _u32_with_width().flatmap(lambda vw: st.builds(SecIndex, st.just(vw[0]), st.booleans(), st.just(vw[1]))),
    _u32_with_width().map(lambda vw: Timestamp(*vw)),
    st.builds(LocalTimestamp, uint(32), sint(16), sint(16)),
)
opt_times = st.none() | sml_times
simple_values = st.one_of(st.booleans(), octets, typed_int())
sml_values = st.one_of(
    simple_values,
    sml_times,
    st.builds(TimestampedValue, sml_times, statuses, simple_values),
    st.builds(CosemScalerUnit, sint(8), uint(8)),
)
list_entries = st.builds(
    ListEntry, octets, st.none() | statuses, opt_times, st.none() | uint(8), st.none() | sint(8), sml_values,
    opt_octets,
)
period_entries = st.builds(PeriodEntry, octets, uint(8), sint(8), sml_values, opt_octets)
tupel_entries = st.builds(
    TupelEntry, octets, sml_times, uint(64), st.lists(st.tuples(uint(8), sint(8), sint(64)), min_size=6, max_size=6),
    octets, octets,
)
proc_par_values = st.one_of(
    st.builds(ProcParValue, st.just(ProcParKind.VALUE), sml_values),
    st.builds(ProcParValue, st.just(ProcParKind.PERIOD_ENTRY), period_entries),
    st.builds(ProcParValue, st.just(ProcParKind.TUPEL_ENTRY), tupel_entries),
    st.builds(ProcParValue, st.just(ProcParKind.TIME), sml_times),
    st.builds(ProcParValue, st.just(ProcParKind.LIST_ENTRY), list_entries),
)
trees = st.recursive(
    st.builds(Tree, octets, st.none() | proc_par_values, st.none()),
    lambda children: st.builds(Tree, octets, st.none() | proc_par_values,
                               st.none() | st.lists(children, max_size=4)),
    max_leaves=8,
)
opt_trees = st.none() | trees
paths = st.lists(octets, max_size=5)
opt_bool = st.none() | st.booleans()

_profile_req_args = (opt_octets, opt_octets, opt_octets, opt_bool, opt_times, opt_times, paths,
                     st.none() | st.lists(octets, max_size=4), opt_trees)
bodies = st.one_of(
    st.builds(PublicOpenReq, opt_octets, octets, octets, opt_octets, opt_octets, opt_octets, st.none() | uint(8)),
    st.builds(PublicOpenRes, opt_octets, opt_octets, octets, octets, opt_times, st.none() | uint(8)),
    st.builds(PublicCloseReq, opt_octets),
    st.builds(PublicCloseRes, opt_octets),
    st.builds(GetProfilePackReq, *_profile_req_args),
    st.builds(
        GetProfilePackRes, octets, sml_times, uint(32), paths,
        st.lists(st.builds(ProfObjHeaderEntry, octets, uint(8), sint(8)), max_size=3),
        st.lists(st.builds(ProfObjPeriodEntry, sml_times, uint(64),
                           st.lists(st.builds(ValueEntry, sml_values, opt_octets), max_size=3), opt_octets),
                 max_size=3),
        opt_octets, opt_octets,
    ),
    st.builds(GetProfileListReq, *_profile_req_args),
    st.builds(GetProfileListRes, octets, sml_times, uint(32), paths, sml_times, uint(64),
              st.lists(period_entries, max_size=3), opt_octets, opt_octets),
    st.builds(GetProcParameterReq, opt_octets, opt_octets, opt_octets, paths, opt_octets),
    st.builds(GetProcParameterRes, octets, paths, trees),
    st.builds(SetProcParameterReq, opt_octets, opt_octets, opt_octets, paths, trees),
    st.builds(GetListReq, octets, opt_octets, opt_octets, opt_octets, opt_octets),
    st.builds(GetListRes, opt_octets, octets, opt_octets, opt_times, st.lists(list_entries, max_size=20),
              opt_octets, opt_times),
    st.builds(AttentionRes, octets, st.binary(min_size=6, max_size=6), opt_octets, opt_trees),
)
messages = st.builds(SmlMessage, octets, bodies, uint(8), uint(8))
files = st.builds(SmlFile, st.lists(messages, min_size=1, max_size=4))

# EDL-push style files (what smllib understands): Open.Res, GetList.Res, Close.Res with numeric/octet values
edl_values = st.one_of(octets.filter(bool), typed_int(), st.builds(SecIndex, uint(32)))  # value is mandatory
edl_entries = st.builds(
    ListEntry, st.binary(min_size=6, max_size=6), st.none() | statuses, st.none() | st.builds(SecIndex, uint(32)),
    st.none() | uint(8), st.none() | sint(8), edl_values, opt_octets,
)
edl_files = st.builds(
    lambda tid, open_res, get_list, close: SmlFile([
        SmlMessage(tid + b"\x01", open_res), SmlMessage(tid + b"\x02", get_list), SmlMessage(tid + b"\x03", close)]),
    st.binary(min_size=1, max_size=6),
    st.builds(PublicOpenRes, opt_octets, opt_octets, octets.filter(bool), octets.filter(bool),
              st.none() | st.builds(SecIndex, uint(32)), st.none() | uint(8)),
    st.builds(GetListRes, opt_octets, octets.filter(bool), opt_octets, st.none() | st.builds(SecIndex, uint(32)),
              st.lists(edl_entries, max_size=12), opt_octets, st.none() | st.builds(SecIndex, uint(32))),
    st.builds(PublicCloseRes, opt_octets),
)


@settings(max_examples=30, deadline=None)
@given(files)
def test_strategies_produce_encodable_files(f: SmlFile) -> None:
    assert encode_file(f)
