"""Mixed precision: the autocast context and the gradient scaler of a run.

``amp: True`` (the original configs) means mixed precision: autocast in bf16, or fp16 with a gradient scaler on
CUDA (fp16 gradients underflow without one). ``amp: False`` computes in the parameters' own dtypes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["Precision"]

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """Autocast settings and gradient scaler for one device.

    Attributes:
        device_type: ``"cuda"`` or ``"cpu"``.
        dtype: The autocast dtype, or None for no autocast.
        scaler: Gradient scaler; enabled only for fp16 on CUDA (a pass-through otherwise).
    """

    device_type: str
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    @classmethod
    def create(cls, *, amp: bool, amp_dtype: Literal["bf16", "fp16"], device: torch.device) -> Precision:
        """Settings for ``amp``/``amp_dtype`` on ``device``.

        bf16 on a CUDA GPU without bf16 support falls back to fp16 (with a scaler), with a warning.
        """
        dtype = AMP_DTYPES[amp_dtype] if amp else None
        if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            logger.warning("this GPU has no bf16 support: mixed precision uses fp16 with a gradient scaler")
            dtype = torch.float16
        use_scaler = dtype is torch.float16 and device.type == "cuda"
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        logger.info("mixed precision: %s%s", dtype or "off", " with gradient scaling" if use_scaler else "")
        return cls(device_type=device.type, dtype=dtype, scaler=scaler)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to ``dtype`` (nothing when ``dtype`` is None)."""
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            yield
