"""AdamW with the usual weight-decay groups, and the learning-rate schedule of the original recipe.

Schedule (SPEC §4): linear warm-up from ``warmup_lr`` to ``init_lr`` over ``warmup_steps`` iterations, then a
cosine from ``init_lr`` down to ``min_lr`` at ``max_iters``. The original (LAVIS) stepped the cosine once per
(inner) epoch, a staircase; this one is evaluated at every iteration, which ends at the same values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["LRSchedule", "build_optimizer", "decay_groups"]

logger = logging.getLogger(__name__)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters into a decayed group and a non-decayed one.

    Biases, normalisation weights and every other parameter with fewer than 2 dimensions are not decayed
    (LayerNorm/RMSNorm weights are 1-D; ``query_tokens`` is 3-D and is decayed, as in the original).

    Args:
        model: The model; frozen parameters (``requires_grad=False``) are left out.
        weight_decay: Decay of the first group.

    Returns:
        Two optimizer parameter groups (the second with ``weight_decay=0``); empty groups are kept so that
        optimizer state dicts always have the same layout.
    """
    decayed: list[nn.Parameter] = []
    not_decayed: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith(".bias") or "norm" in name.lower():
            not_decayed.append(param)
        else:
            decayed.append(param)
    logger.info(
        "trainable parameters: %d in %d tensors (%d decayed, %d not decayed)",
        sum(p.numel() for p in decayed + not_decayed),
        len(decayed) + len(not_decayed),
        len(decayed),
        len(not_decayed),
    )
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` with `decay_groups`.

    Args:
        model: The model (not a DDP wrapper: names are read from it).
        lr: Initial learning rate (the schedule overwrites it every iteration).
        weight_decay: Decoupled weight decay of the decayed group.
        betas: Adam betas.

    Raises:
        ValueError: If the model has no trainable parameter (everything frozen).
    """
    groups = decay_groups(model, weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError("The model has no trainable parameter: check the freeze_* settings of the model section.")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)


@dataclass(frozen=True)
class LRSchedule:
    """Linear warm-up then cosine decay, as a pure function of the iteration.

    Args:
        init_lr: Peak learning rate, reached at the end of the warm-up.
        min_lr: Learning rate at ``max_iters``.
        warmup_lr: Learning rate at iteration 0.
        warmup_steps: Length of the warm-up in iterations (0 for none).
        max_iters: Total iterations of the run.
    """

    init_lr: float
    min_lr: float
    warmup_lr: float
    warmup_steps: int
    max_iters: int

    def lr_at(self, iteration: int) -> float:
        """The learning rate used by the update at ``iteration`` (0-based)."""
        if iteration < self.warmup_steps:
            return self.warmup_lr + (self.init_lr - self.warmup_lr) * iteration / self.warmup_steps
        span = max(self.max_iters - self.warmup_steps, 1)
        progress = min((iteration - self.warmup_steps) / span, 1.0)
        return self.min_lr + (self.init_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> float:
        """Set every group's learning rate for ``iteration``; returns it."""
        lr = self.lr_at(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
