"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One thread per process: the suite starts subprocesses (torchrun, evaluate.py, train.py) beside itself, and on a
# 2-core CI machine several processes each spinning 2 OpenMP threads slow down by orders of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

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


TINY_DIMS = {
    "image_size": 56,
    "patch_size": 14,
    "vit_width": 64,
    "vit_depth": 2,
    "vit_heads": 4,
    "vit_mlp_hidden": 128,
    "num_query_token": 8,
    "qformer_hidden": 64,
    "qformer_layers": 2,
    "qformer_heads": 4,
    "qformer_intermediate": 128,
}


@pytest.fixture(scope="session")
def tiny_model_kwargs(reference_fixture: Path) -> dict[str, object]:
    """Arguments of `vigc_model` for a tiny random model on the fixture's LLM and BERT tokenizer directories."""
    return {
        "llm_model": str(reference_fixture / "llm"),
        "qformer_tokenizer": str(reference_fixture / "bert_base_uncased_tiny"),
        "random_init": True,
        **TINY_DIMS,
    }


@pytest.fixture(scope="session")
def parity_model(reference_fixture: Path):  # type: ignore[no-untyped-def]
    """The fixture's model built through the normal loading path (EVA ViT file + trimmed LAVIS + LLM dir)."""
    from vigc.tools.check_parity import build_model

    return build_model(reference_fixture, "b")
