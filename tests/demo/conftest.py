"""Fixtures of the demo tests: the demo's own default config (the embedded default model) and a sample image."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_config() -> Path:
    """The config the demo loads when started without --cfg-path: the packaged default model."""
    return REPO / "vigc" / "projects" / "default" / "generate_qa.yaml"


@pytest.fixture(scope="session")
def example_image() -> Path:
    """A packaged sample scene the default model was not trained on."""
    return REPO / "vigc" / "assets" / "sample_images" / "shapes_123_000000.png"
