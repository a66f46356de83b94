"""Packaging for VIGC: `pip install .`; extras `".[dev]"` (test tools), `".[demo]"` (the demo), `".[lora]"` (LoRA)."""

from pathlib import Path

from setuptools import find_packages, setup

# The demo's runtime needs gradio only (gradio 6: the page's CSS and theme are launch() arguments there).
DEMO_REQUIREMENTS = ["gradio>=6,<7"]
# peft is an extra, not core: only LoRA configs (lora_vig.yaml, model.lora_config) use it. vigc/models/lora.py and
# vigc/models/hf_interop.py import it inside the functions that apply or save adapters, so generation, full
# training, the demo and both exports never load it; a LoRA config without it stops at validation with one line
# naming this extra (`vigc.models.lora.require_peft`).
LORA_REQUIREMENTS = ["peft"]
# Test tools: playwright drives the system Chromium in the demo's browser test (no browser download), datasets
# reads the Parquet export back, tensorboard checks the training event files; the tests cover LoRA and the demo.
DEV_REQUIREMENTS = ["pytest", "ruff", "mypy", "playwright>=1.40,<2", "datasets", "tensorboard"]

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
        "pyarrow",  # vigc export --format parquet
        # No protobuf: the LLaMA/Vicuna tokenizer is read with sentencepiece and its transformers twin built from
        # the pieces (vigc/models/tokenizers.py), and exported folders carry tokenizer.json. transformers needs
        # protobuf only to convert a sentencepiece-only folder into a fast tokenizer, which these paths never ask
        # of it (tests/test_dependencies.py runs them with protobuf hidden).
    ],
    entry_points={"console_scripts": ["vigc=vigc.cli.main:main"]},
    extras_require={
        "dev": [*DEV_REQUIREMENTS, *DEMO_REQUIREMENTS, *LORA_REQUIREMENTS],
        "demo": DEMO_REQUIREMENTS,
        "lora": LORA_REQUIREMENTS,
    },
)
