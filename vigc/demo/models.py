"""The models the demo serves: built from a config's `model` section, each on its own device."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
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

__all__ = ["DEFAULT_CFG_PATH", "DemoModel", "load_demo_model", "resolve_device"]

logger = logging.getLogger(__name__)

# The embedded default model's config; `--cfg-path` picks any other config with a `model` section.
DEFAULT_CFG_PATH = Path(__file__).resolve().parents[1] / "projects" / "default" / "generate_qa.yaml"


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


def load_demo_model(cfg_path: str | os.PathLike[str], device: str = "auto", options: tuple[str, ...] = ()) -> DemoModel:
    """Build the model of a config (only its `model` and `run` sections are read) and move it to `device`.

    Args:
        cfg_path: any config with a `model` section (a generation config, a training config, ...).
        device: see `resolve_device`.
        options: `--options` overrides (`model.finetuned=/path/...`).

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
        name=path.stem,
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
