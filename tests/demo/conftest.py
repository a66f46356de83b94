"""Fixtures of the demo tests: a config of the tiny parity model (the default model's config once it lands)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

# The parity fixture's model, as tests/tasks/test_generate.py builds it (56 px images).
TINY_MODEL = {
    "arch": "vigc_model",
    "image_size": 56,
    "vit_width": 64,
    "vit_depth": 2,
    "vit_heads": 4,
    "vit_mlp_hidden": 279,
    "num_query_token": 8,
    "qformer_hidden": 64,
    "qformer_layers": 2,
    "qformer_heads": 4,
    "qformer_intermediate": 256,
}


def write_demo_config(folder: Path, fixture: Path, run: dict[str, object] | None = None) -> Path:
    """A config with the fixture's model section (and an optional run section) in `folder`."""
    model = {
        **TINY_MODEL,
        "llm_model": str(fixture / "llm"),
        "qformer_tokenizer": str(fixture / "bert_base_uncased_tiny"),
        "vit_model": str(fixture / "eva_vit_tiny.pth"),
        "pretrained": str(fixture / "lavis_trimmed.pth"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_demo.yaml"
    path.write_text(yaml.safe_dump({"model": model, **({"run": run} if run else {})}))
    return path


@pytest.fixture(scope="session")
def demo_config(reference_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a demo config for the tiny parity model."""
    return write_demo_config(tmp_path_factory.mktemp("demo_cfg"), reference_fixture)


@pytest.fixture(scope="session")
def example_image(reference_fixture: Path) -> Path:
    """A fixture image the tiny model answers sensibly about (a big red circle on white)."""
    return reference_fixture / "images" / "img0.png"
