"""Packaging for VIGC: `pip install -e .`; add `".[dev]"` for the test tools and `".[demo]"` for the demo."""

from pathlib import Path

from setuptools import find_packages, setup

# gradio 6: the page's CSS and theme are launch() arguments there. playwright drives the system Chromium in the
# demo's browser test (no browser download).
DEMO_REQUIREMENTS = ["gradio>=6,<7", "playwright>=1.40,<2"]

setup(
    name="vigc",
    version="0.1.0",
    description="VIGC: Visual Instruction Generation and Correction, on transformers 5",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vigc", "vigc.*"]),
    # Model/dataset defaults and project configs are read from the installed package.
    package_data={"vigc": ["configs/**/*.yaml", "projects/**/*.yaml", "assets/**/*"]},
    install_requires=[
        "torch>=2.1,<3",
        "transformers>=5.0,<6",
        "sentencepiece",
        "safetensors",
        "huggingface_hub",  # Hugging Face names as weight paths, from the local cache (transformers needs it too)
        "omegaconf>=2.3",
        "tqdm",
        "pillow",
        "numpy",
        "peft",  # LoRA recipes (lora_vig.yaml)
    ],
    entry_points={"console_scripts": ["vigc=vigc.cli.main:main"]},
    extras_require={
        # The tests include the demo's browser test, so the test tools bring the demo's packages too.
        "dev": ["pytest", "ruff", "mypy", *DEMO_REQUIREMENTS],
        "demo": DEMO_REQUIREMENTS,
    },
)
