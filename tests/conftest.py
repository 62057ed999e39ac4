"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_VECTORS = REPO.parent / "shared" / "vectors"


@pytest.fixture(scope="session")
def shared_vectors() -> Path:
    """``../shared/vectors`` next to the checkout (CI has it); tests that need it skip otherwise."""
    if not SHARED_VECTORS.is_dir():
        pytest.skip("../shared/vectors is not present")
    return SHARED_VECTORS
