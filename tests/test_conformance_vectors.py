"""The conformance vectors (tests/vectors/conformance/): the files are what the suite's code generates, and
BAB's meter runtime answers every vector as the files say a conformant meter must."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bab.conformance.lab import TEST_MASTER_KEY, BabLab
from bab.conformance.runner import Options, Session, run_suite, select
from bab.conformance.vectors import generate, run_vectors
from bab.tls import wolfssl_binding

VECTORS = Path(__file__).parent / "vectors" / "conformance"


def test_vector_files_are_what_the_suite_generates():
    for name, doc in generate().items():
        assert json.loads((VECTORS / name).read_text()) == doc, name
    for trace in generate()["traces.json"]["traces"]:
        assert (VECTORS / trace["file"]).is_file()
    assert "published test master key" in (VECTORS / "README.md").read_text()


@pytest.mark.skipif(not wolfssl_binding.available(), reason="wolfSSL binding not built")
def test_bab_answers_every_vector_as_a_conformant_meter(tmp_path):
    logging.disable(logging.WARNING)
    try:
        lab = BabLab(tmp_path / "bab")
        s = Session(lab.tester(), Options(master_key=TEST_MASTER_KEY, state_dir=tmp_path / "gw"))
        results = run_vectors(s, VECTORS, ("hdlc", "sml", "sym"))
        assert [r.verdict.value for r in run_suite(s, select(["SYM-PAIR-01"]))] == ["pass"]
        results += run_vectors(s, VECTORS, ("tls",))
    finally:
        logging.disable(logging.NOTSET)
    assert len(results) == 7 + 4 + 3 + 10
    assert [r for r in results if not r[1]] == []
