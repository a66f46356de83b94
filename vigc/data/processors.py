"""Image processors of the original (BLIP eval / BLIP-2 train), re-implemented without torchvision.

torchvision's `Resize` on a PIL image calls `PIL.Image.resize` and `ToTensor` divides uint8 by 255, so doing
the same steps with PIL and torch gives bitwise-identical tensors (the parity fixture checks this).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vigc.config_checks import AT_LEAST_ONE, PROBABILITY, check_ranges

# Largest width x height any image source decodes by default (checked from the file's header): 64 million pixels,
# 8000 x 8000, is far above any photo collection's images while a decompression bomb of 13000 x 13000 (a few KB
# of PNG) would cost over a GB. Every source has a ``max_pixels`` config key to change it.
DEFAULT_MAX_PIXELS = 64_000_000

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_normalized_tensor(
    image: Image.Image, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD
) -> torch.Tensor:
    """Convert an RGB PIL image to a normalised float tensor, as `ToTensor` + `Normalize` do.

    Args:
        image: RGB image.
        mean: per-channel mean.
        std: per-channel standard deviation.

    Returns:
        Tensor of shape (3, H, W), float32.
    """
    array = np.array(image, dtype=np.uint8, copy=True)  # (H, W, 3)
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return tensor.sub_(mean_t).div_(std_t)


@dataclass(frozen=True)
class EvalImageProcessor:
    """Resize to `image_size` x `image_size` (bicubic, aspect ratio not kept) and normalise (CLIP stats).

    Args:
        image_size: output side in pixels.
    """

    image_size: int = 224

    def __post_init__(self) -> None:
        check_ranges("blip_image_eval", [("image_size", self.image_size, AT_LEAST_ONE)])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Process one image; returns (3, S, S) float32."""
        return to_normalized_tensor(resize_bicubic(image.convert("RGB"), self.image_size, self.image_size))


def resize_bicubic(image: Image.Image, width: int, height: int) -> Image.Image:
    """Bicubic resize giving the same pixels under every Pillow version.

    Pillow resamples one axis at a time and rounds to 8 bits in between. Pillow 13 (which made the parity
    fixture) starts with the axis that leaves the smaller intermediate image; earlier versions always start
    horizontally, which changes some pixels by one level. Doing the two passes ourselves in Pillow 13's order
    makes the result independent of the installed version (gradio, for one, pins Pillow < 13).
    """
    in_width, in_height = image.size
    if (in_width, in_height) == (width, height):
        return image.copy()
    resample = Image.Resampling.BICUBIC
    if width * in_height > in_width * height:  # vertical first leaves the smaller intermediate image
        return image.resize((in_width, height), resample).resize((width, height), resample)
    return image.resize((width, in_height), resample).resize((width, height), resample)


@dataclass(frozen=True)
class TrainImageProcessor:
    """Random resized crop (bicubic) + optional horizontal flip + CLIP normalisation (BLIP-2 training).

    The original always flipped; a flip contradicts "left"/"right" in the instruction texts, so it is optional
    and off by default.

    Args:
        image_size: output side in pixels.
        min_scale: smallest crop area as a fraction of the image.
        max_scale: largest crop area as a fraction of the image.
        horizontal_flip: flip with probability 0.5.
    """

    image_size: int = 224
    min_scale: float = 0.5
    max_scale: float = 1.0
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        check_ranges(
            "blip2_image_train",
            [
                ("image_size", self.image_size, AT_LEAST_ONE),
                ("min_scale", self.min_scale, PROBABILITY),
                ("max_scale", self.max_scale, (lambda v: self.min_scale <= v <= 1, "in [min_scale, 1]")),
            ],
        )

    def __call__(self, image: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        """Process one image with `rng` (the module's `random` when None); returns (3, S, S) float32."""
        rng = rng or random.Random(random.getrandbits(64))
        image = image.convert("RGB")
        left, top, width, height = self._crop_box(image.width, image.height, rng)
        cropped = image.resize(
            (self.image_size, self.image_size),
            Image.Resampling.BICUBIC,
            box=(left, top, left + width, top + height),
        )
        if self.horizontal_flip and rng.random() < 0.5:
            cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_normalized_tensor(cropped)

    def _crop_box(self, width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
        """Sample a crop like torchvision's RandomResizedCrop (ratio 3/4 to 4/3, 10 tries then centre)."""
        area = width * height
        log_ratio = (math.log(3 / 4), math.log(4 / 3))
        for _ in range(10):
            target_area = area * rng.uniform(self.min_scale, self.max_scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, width - w), rng.randint(0, height - h), w, h
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
