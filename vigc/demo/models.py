"""The models the demo serves: built from a config's `model` section, each on its own device.

`PAPER_MODELS` is the original demo's `MODEL_CKPT`: its two models (a MiniGPT-4 VIGC for LLaVA-style QA and an
InstructBLIP VIGC for OKVQA) with the weight paths they need. `choose_models` serves them when those files are
present, and the embedded default model otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

from vigc.builtins import register_all
from vigc.config import build_model, load_config
from vigc.data.processors import EvalImageProcessor
from vigc.demo.settings import DemoSettings
from vigc.errors import ConfigError
from vigc.generation.runner import model_provenance
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "DEFAULT_CFG_PATH",
    "PAPER_MODELS",
    "DemoModel",
    "ModelChoice",
    "NamedModel",
    "choose_models",
    "load_demo_model",
    "resolve_device",
]

logger = logging.getLogger(__name__)

PROJECTS = Path(__file__).resolve().parents[1] / "projects"
# The embedded default model's config; `--cfg-path` picks any other config with a `model` section.
DEFAULT_CFG_PATH = PROJECTS / "default" / "generate_qa.yaml"


@dataclass(frozen=True)
class NamedModel:
    """A model the demo loads by name: a generation config and the weight files it needs.

    Attributes:
        name: shown above the model's results.
        cfg_path: the config (its `model` section is built, its `run` section gives the page's settings).
        weights: model key → local path (`--options model.<key>=<path>`); all must exist for the model to load.
    """

    name: str
    cfg_path: Path
    weights: Mapping[str, str]

    def options(self) -> tuple[str, ...]:
        """The weight paths as `--options` overrides."""
        return tuple(f"model.{key}={path}" for key, path in self.weights.items())

    def missing(self) -> list[str]:
        """The weight paths that do not exist here."""
        return [path for path in self.weights.values() if not Path(path).exists()]


_VICUNA7B = {"llm_model": "/models/vicuna-7b-v1.1", "qformer_tokenizer": "/models/bert-base-uncased"}
# The original demo's MODEL_CKPT: edit these paths to where your weights are (or start the demo with --cfg-path and
# --options instead). Served by default when every file exists.
PAPER_MODELS: tuple[NamedModel, ...] = (
    NamedModel(
        "MiniGPT-4 VIGC (LLaVA-style QA)",
        PROJECTS / "mini_gpt4_vicuna7b" / "generate_qa" / "llava-150k" / "generate_llava_qa_conv.yaml",
        MappingProxyType(
            {
                **_VICUNA7B,
                "pretrained": "/ckpt/blip2_pretrained_flant5xxl.pth",
                "finetuned": "/ckpt/vigc7b_minigpt4_llava.pth",
            }
        ),
    ),
    NamedModel(
        "InstructBLIP VIGC (OKVQA)",
        PROJECTS / "instruct_blip_vicuna7b" / "generate_qa" / "okvqa" / "generate_question.yaml",
        MappingProxyType(
            {**_VICUNA7B, "vit_model": "/ckpt/eva_vit_g.pth", "pretrained": "/ckpt/vigc7b_instructblip_okvqa.pth"}
        ),
    ),
)


@dataclass(frozen=True)
class ModelChoice:
    """One model to load: its config, overrides, device and (for a named model) its name."""

    cfg_path: Path
    options: tuple[str, ...] = ()
    device: str = "auto"
    name: str | None = None


def choose_models(
    cfg_path: str | None,
    cfg_path2: str | None,
    devices: tuple[str, str | None],
    options: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    named: tuple[NamedModel, ...] = PAPER_MODELS,
) -> list[ModelChoice]:
    """The models to serve, from the command line.

    Without a config, the `named` models when all their weights are present, else the embedded default model. A
    second model is served when `cfg_path2` or its device (`devices[1]`) is given: `cfg_path2`, else the first
    model's config again.

    Args:
        cfg_path: the first model's config (`--cfg-path`), or None.
        cfg_path2: the second model's config (`--cfg-path2`), or None.
        devices: `--device0` and `--device1` (None: not given).
        options: `--options` and `--options2`.
        named: the models served by default.
    """
    device0, device1 = devices
    if cfg_path is None and cfg_path2 is None and named:
        missing = list(dict.fromkeys(path for model in named for path in model.missing()))
        if not missing:
            return [
                ModelChoice(m.cfg_path, (*m.options(), *extra), device, m.name)
                for m, device, extra in zip(named, (device0, device1 or "auto"), options, strict=False)
            ]
        logger.info("serving the embedded default model: the paper's models need %s", ", ".join(missing))
    first = ModelChoice(Path(cfg_path) if cfg_path else DEFAULT_CFG_PATH, options[0], device0)
    if cfg_path2 is None and device1 is None:
        return [first]
    second = Path(cfg_path2) if cfg_path2 else first.cfg_path
    return [first, ModelChoice(second, options[1] if cfg_path2 else (*first.options, *options[1]), device1 or "auto")]


@dataclass
class DemoModel:
    """A loaded model with what the page needs to run it.

    Attributes:
        name: shown above its results (the config file's name).
        model: the VIGC model, in eval mode on `device`.
        processor: the evaluation image processor at the model's input size.
        device: where the model runs.
        cfg_path: the config it was built from.
        provenance: model keys saved with each record (arch, weight paths, precision).
        defaults: the page's initial settings, from the config's `run` section.
    """

    name: str
    model: VIGCModel
    processor: EvalImageProcessor
    device: torch.device
    cfg_path: str
    provenance: dict[str, Any] = field(default_factory=dict)
    defaults: DemoSettings = field(default_factory=DemoSettings)

    @property
    def label(self) -> str:
        """The name shown above the model's results: config name and device."""
        return f"{self.name} · {self.device}"


def resolve_device(spec: str) -> torch.device:
    """A device from the command line: "auto", a GPU id as in the original ("0", "1"), "cpu" or "cuda:N".

    "auto" and a bare GPU id fall back to the CPU when CUDA is missing (the original demo did the same).

    Raises:
        ConfigError: For an explicit CUDA device that is not available, or a spec torch does not know.
    """
    spec = spec.strip().lower()
    cuda = torch.cuda.is_available()
    if spec == "auto" or spec.isdigit():
        index = int(spec) if spec.isdigit() else 0
        if not cuda:
            if spec.isdigit():
                logger.warning("CUDA is not available; GPU %s falls back to the CPU", spec)
            return torch.device("cpu")
        return torch.device("cuda", index)
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ConfigError(f"Unknown device {spec!r}: use auto, a GPU id (0, 1, ...), cpu or cuda:N.") from exc
    if device.type == "cuda" and not cuda:
        raise ConfigError(f"Device {spec!r} asked for CUDA, which is not available here; use cpu or auto.")
    return device


def load_demo_model(
    cfg_path: str | os.PathLike[str], device: str = "auto", options: tuple[str, ...] = (), name: str | None = None
) -> DemoModel:
    """Build the model of a config (only its `model` and `run` sections are read) and move it to `device`.

    Args:
        cfg_path: any config with a `model` section (a generation config, a training config, ...).
        device: see `resolve_device`.
        options: `--options` overrides (`model.finetuned=/path/...`).
        name: shown above its results (default: the config file's name).

    Raises:
        ConfigError: When the config is missing or wrong, or the weights cannot be found (one message naming the keys).
    """
    path = Path(cfg_path)
    if not path.is_file() and path.resolve() == DEFAULT_CFG_PATH:
        raise ConfigError(
            f"The default model config {path} is not installed; give a config with --cfg-path (any config with a "
            "'model' section, for example a generation config with your checkpoint paths)."
        )
    register_all()
    cfg = load_config(path, options)
    if not isinstance(cfg.get("model"), DictConfig):
        raise ConfigError(f"{path}: the demo needs a config with a 'model' section.")
    target = resolve_device(device)
    model_cfg = cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True))
    logger.info("building the model of %s on %s", path, target)
    model = cast(VIGCModel, build_model(cfg.model, source=str(path))).to(target).eval()
    run = cfg.get("run")
    run_cfg = cast(dict[str, Any], OmegaConf.to_container(run, resolve=True)) if isinstance(run, DictConfig) else {}
    return DemoModel(
        name=name or path.stem,
        model=model,
        processor=EvalImageProcessor(image_size=_input_size(model)),
        device=target,
        cfg_path=str(path),
        provenance={**model_provenance(model_cfg), "config": str(path)},
        defaults=DemoSettings.from_run_config(run_cfg),
    )


def _input_size(model: VIGCModel) -> int:
    """The vision encoder's input side in pixels (configs may store it as a pair)."""
    size = model.vision_model.config.image_size
    return int(size[0] if isinstance(size, list | tuple) else size)
