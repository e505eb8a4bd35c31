"""Shared test fixtures: the real-data folder (skips when absent) and the bundled sample cases."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
SAMPLES = REPO / "sample_cases"


@pytest.fixture
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real CT data not present at {REAL} (only in the project workspace)")
    return REAL
