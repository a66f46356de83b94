"""Build the model to train from a config's ``model`` section, and the pieces the training loop wraps around it.

The original read three model keys in its training task, not in the model: ``lora_config`` (LoRA on the LLM),
``freeze_q_former`` and ``freeze_llm_proj``. ``lora_config`` is a model-builder argument now (so LoRA checkpoints
load for generation too); the other two are read here, unless the builder takes them, and every other key goes
to the builder named by ``arch``. ``freeze_q_former`` is the original spelling of the builder's
``freeze_qformer`` and is passed to it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vigc.config import build_model, validate_builder_kwargs
from vigc.errors import ConfigError
from vigc.models.vigc_model import VIGCModel
from vigc.registry import MODELS

__all__ = ["LossStep", "TrainingModelOptions", "build_training_model", "set_train_mode"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingModelOptions:
    """Model keys that the training task applies after building (the original's task-side keys but LoRA).

    Args:
        freeze_q_former: Freeze the Q-Former and its queries (same as the builder's ``freeze_qformer``).
        freeze_llm_proj: Freeze the projection to the LLM.
    """

    freeze_q_former: bool | None = None
    freeze_llm_proj: bool = False


def build_training_model(model_section: DictConfig | Mapping[str, Any], *, source: str) -> VIGCModel:
    """Build the model of a training config, with its frozen parts (LoRA adapters come from the builder).

    Args:
        model_section: The config's ``model`` section (``arch`` + builder keys + training keys).
        source: The config file, for messages.

    Returns:
        The model on the builder's device, with ``requires_grad`` set on exactly what is trained.

    Raises:
        ConfigError: On unknown keys or bad values (naming the key).
    """
    if isinstance(model_section, DictConfig):
        plain = cast(dict[str, Any], OmegaConf.to_container(model_section, resolve=True))
    else:
        plain = dict(model_section)
    arch = plain.get("arch")
    accepted = inspect.signature(MODELS.get(str(arch))).parameters if arch in MODELS else {}
    # Keys the builder takes itself stay with it; the others are applied here.
    task_keys = {k: plain.pop(k) for k in TrainingModelOptions.__dataclass_fields__ if k in plain and k not in accepted}
    validate_builder_kwargs(TrainingModelOptions, task_keys, section="model", source=source)
    options = TrainingModelOptions(**task_keys)
    if options.freeze_q_former is not None:
        plain["freeze_qformer"] = options.freeze_q_former
    model = cast(VIGCModel, build_model(plain, source=source))
    if options.freeze_llm_proj:
        model.language_projection.requires_grad_(False)
    _log_trainable(model)
    return model


def _log_trainable(model: nn.Module) -> None:
    parts: dict[str, list[int]] = {}
    for name, param in model.named_parameters():
        counts = parts.setdefault(name.split(".")[0], [0, 0])
        counts[0] += param.numel() if param.requires_grad else 0
        counts[1] += param.numel()
    for part, (trained, total) in parts.items():
        logger.info("%s: %d of %d parameters trained", part, trained, total)
    if not any(trained for trained, _ in parts.values()):
        raise ConfigError("Every parameter of the model is frozen: nothing to train. Check the model's freeze_* keys.")


def set_train_mode(model: VIGCModel, *, disable_dropout: bool = False) -> None:
    """Training mode for the parts that are trained; frozen parts stay in eval mode (as the original did).

    Args:
        model: The model.
        disable_dropout: Keep the whole model in eval mode: no dropout anywhere (deterministic training, for checks).
    """
    if disable_dropout:
        # Attention dropout is functional (it reads `module.training`), so only eval mode turns all of it off; the
        # model has no other train/eval difference (no batch norm).
        model.eval()
        return
    model.train()
    parts: Sequence[nn.Module] = (
        model.vision_model.embeddings,
        model.vision_model.encoder,
        model.vision_model.post_layernorm,
        model.qformer,
        model.language_projection,
        model.language_model,
    )
    for part in parts:
        if not any(p.requires_grad for p in part.parameters()):
            part.eval()


class LossStep(nn.Module):
    """One training forward as a module, so that DistributedDataParallel can wrap it.

    ``VIGCModel`` has no ``forward``; DDP synchronises gradients of what runs inside its wrapped ``forward``.

    Args:
        model: The model.
    """

    def __init__(self, model: VIGCModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, images: torch.Tensor, text_input: list[str], text_output: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss of a batch and the number of LLM tokens it processed (prefix, prompt and target).

        Args:
            images: (B, 3, S, S) pixels.
            text_input: B prompts.
            text_output: B targets.

        Returns:
            The mean token loss (scalar) and the token count (scalar, long).
        """
        out = self.model.loss(self.model.encode_images(images), text_input, text_output)
        return out.loss, out.batch.attention_mask.sum()
