"""docs/simulator.md stays true: its fault table is the catalogue, every kind has its proving test, and the
worked scenario it shows is the example file (validated in test_sim_control)."""

from __future__ import annotations

import re
from pathlib import Path

from bab.sim.catalogue import KINDS, reference

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "simulator.md").read_text()


def test_the_guide_shows_the_catalogue():
    assert reference() in DOC


def test_every_kind_is_proven_by_a_named_test_that_exists():
    proofs = (ROOT / "tests" / "test_sim_faults.py").read_text()
    rows = re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \| .* \| `(test_[a-z_]+)` \|$", DOC, re.M)
    proven = {kind.strip("`") for kinds, _ in rows for kind in kinds.split(", ")}
    assert proven == set(KINDS)
    for _, test in rows:
        assert f"def {test}(" in proofs, test


def test_the_worked_scenario_is_the_example_file():
    example = (ROOT / "docs" / "examples" / "lab-scenario.yaml").read_text()
    steps = [line.strip() for line in example.splitlines() if line.strip().startswith("- {at:")]
    assert steps and all(f"  {s}" in DOC for s in steps)


def test_the_readme_counts_the_kinds():
    assert f"{len(KINDS)} kinds of fault" in (ROOT / "README.md").read_text()
