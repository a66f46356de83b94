"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def reference_fixture() -> Path:
    """The tiny reference weights and outputs of the original code, in ``../shared/fixtures/vigc_reference``.

    Skips the test when the folder is not beside the repository.
    """
    path = REPO_ROOT.parent / "shared" / "fixtures" / "vigc_reference"
    if not path.is_dir():
        pytest.skip(f"reference fixture not found at {path}")
    return path
