"""LoRA adapters on the LLM (peft), as the original's ``lora_vig.yaml`` recipes configure them.

The adapters are injected into ``model.language_model`` in place (``peft.inject_adapter_in_model``), so the
model keeps its type and its ``language_model`` attribute; the LLM's own weights stay frozen. Adapter names
look like ``language_model.model.layers.0.self_attn.q_proj.lora_A.default.weight``. Saving only trainable
parameters therefore saves the adapters and the other trainable parts, never the LLM (the original saved the
whole LLM with every LoRA checkpoint).

peft is an optional dependency (``pip install "vigc[lora]"``): only LoRA configs need it, and `require_peft`
says so in one line when a config asks for LoRA without it, at config validation, before any weight is read.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from vigc.errors import ConfigError

__all__ = ["LoraSettings", "apply_lora", "lora_parameter_names", "require_peft"]

logger = logging.getLogger(__name__)

LORA_MARKER = ".lora_"
PEFT_MISSING = 'model.lora_config needs peft, which is not installed: pip install "vigc[lora]" (or pip install peft).'


@dataclass(frozen=True)
class LoraSettings:
    """The ``model.lora_config`` section of the original LoRA configs (key names kept).

    Args:
        lora_r: Rank of the adapters.
        lora_alpha: Scaling numerator (the update is scaled by ``lora_alpha / lora_r``).
        lora_dropout: Dropout on the adapter input while training.
        target_modules: Module name suffixes that get adapters (peft matching). Names absent from the LLM are
            ignored, as the original's list mixes LLaMA and other architectures' names; at least one must match.
    """

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")


def apply_lora(language_model: nn.Module, settings: LoraSettings) -> list[str]:
    """Inject LoRA adapters into the LLM, freeze everything else in it, and keep the adapters in float32.

    Args:
        language_model: The causal LM (``VIGCModel.language_model``); modified in place.
        settings: Adapter rank, scaling, dropout and targets.

    Returns:
        Names (within ``language_model``) of the new trainable adapter parameters.

    Raises:
        ConfigError: If no module of the LLM matches ``target_modules``.
    """
    require_peft()
    from peft import LoraConfig, inject_adapter_in_model  # import here: only LoRA runs need peft

    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
    )
    try:
        inject_adapter_in_model(config, language_model)
    except ValueError as exc:
        raise ConfigError(
            f"model.lora_config.target_modules={list(settings.target_modules)} matches no module of the LLM: {exc}"
        ) from exc
    names = lora_parameter_names(language_model)
    for name, param in language_model.named_parameters():
        is_adapter = name in names
        param.requires_grad_(is_adapter)
        if is_adapter and param.dtype != torch.float32:
            # peft creates adapters in the base layer's dtype; fp16 adapters cannot be trained with a GradScaler.
            param.data = param.data.float()
    logger.info(
        "LoRA r=%d alpha=%s dropout=%s on %d modules: %d trainable parameters",
        settings.lora_r,
        settings.lora_alpha,
        settings.lora_dropout,
        len(names) // 2,
        sum(p.numel() for n, p in language_model.named_parameters() if n in names),
    )
    return sorted(names)


def require_peft() -> None:
    """Check that peft can be imported (without importing it).

    Raises:
        ConfigError: It is not installed; the message says how to install it.
    """
    if importlib.util.find_spec("peft") is None:
        raise ConfigError(PEFT_MISSING)


def lora_parameter_names(module: nn.Module) -> set[str]:
    """Names of the LoRA adapter parameters in ``module``."""
    return {name for name, _ in module.named_parameters() if LORA_MARKER in name}
