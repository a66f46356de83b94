"""The transformers 4.33.3 oracle: where it is, and how its tests skip (locally) or fail (in CI) without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REFERENCE_SCRIPT = HERE / "reference_433.py"
DEFAULT_VENV = Path.home() / ".cache" / "vigc" / "oracle-transformers-4.33.3"


def oracle_python_path() -> Path | None:
    """The oracle environment's python, if `tests/oracle/make_env.sh` has finished building it."""
    venv = Path(os.environ.get("VIGC_ORACLE_VENV", DEFAULT_VENV))
    python = venv / "bin" / "python"
    return python if (venv / ".complete").is_file() and python.is_file() else None


@pytest.fixture(scope="session")
def oracle_python() -> Path:
    python = oracle_python_path()
    if python is None:
        message = (
            "the transformers 4.33.3 oracle is not built: run `bash tests/oracle/make_env.sh` "
            "(`.ci/run` does; VIGC_ORACLE_VENV chooses its folder)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + " — CI must run the differential tests")
        pytest.skip(message)
    return python


def run_reference(python: Path, command: str, request: Path, result: Path) -> None:
    """Run `reference_433.py` in the oracle; its stderr is shown when it fails."""
    env: dict[str, Any] = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    env.pop("PYTHONPATH", None)  # the oracle must not import this checkout's packages
    done = subprocess.run(
        [str(python), str(REFERENCE_SCRIPT), command, str(request), str(result)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the 4.33 oracle failed ({command}):\n{done.stderr[-4000:]}")
