"""Loading images, for training and generation alike: every file gives an RGB image or one clear `BadImageError`.

A generation run reads hundreds of thousands of images it has never seen (COCO, Objects365, a user's folder), so
one bad file must cost one error record, not the run. `load_rgb` normalises what PIL can open into 8-bit RGB the
way a viewer shows it: EXIF orientation applied, CMYK converted, 16-bit scaled (not clipped to white),
transparency composited on white, greyscale and 1-bit expanded.

Truncated files raise instead of loading grey: this module never sets `ImageFile.LOAD_TRUNCATED_IMAGES` (a
process-wide switch); if some other library has set it, truncated files load as PIL decides.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vigc.data.processors import DEFAULT_MAX_PIXELS
from vigc.errors import VIGCError

__all__ = ["DEFAULT_MAX_PIXELS", "BadImageError", "load_rgb", "to_rgb"]

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_WHITE = (255, 255, 255, 255)

logger = logging.getLogger(__name__)


class BadImageError(VIGCError):
    """An image file is missing, empty, truncated, not an image, too large, or in a mode that cannot become RGB."""


def load_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image file into an 8-bit RGB image, fully decoded and detached from the file.

    Args:
        path: The image file.
        max_pixels: Largest width x height accepted, checked from the header before decoding. PIL's own hard limit
            (2 x `Image.MAX_IMAGE_PIXELS`) still applies above it.

    Returns:
        An RGB image, EXIF orientation applied.

    Raises:
        BadImageError: With a one-line reason naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise BadImageError(f"{path}: file does not exist")
    if not path.is_file():
        raise BadImageError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise BadImageError(f"{path}: empty file (0 bytes)")
    try:
        # PIL warns between its soft and hard limits; our own limit decides instead (a warning would pass silently).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(image, max_pixels)
                image.load()
                return to_rgb(_upright(image, path))
    except BadImageError as exc:
        raise BadImageError(f"{path}: {exc}") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not an image file PIL can identify") from None
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"{path}: too large ({exc})") from None
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, struct.error, ... on corrupt files
        raise BadImageError(f"{path}: cannot decode ({type(exc).__name__}: {_one_line(exc)})") from exc


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any PIL mode to 8-bit RGB as a viewer would show it.

    16-bit greyscale is scaled to 8 bits (PIL's `convert` clips it, turning most images white); 32-bit integer and
    float greyscale are scaled from their value range; transparency is composited on white.

    Args:
        image: A loaded image.

    Returns:
        A new RGB image (a copy when `image` is already RGB).

    Raises:
        BadImageError: When the mode cannot be converted.
    """
    if image.mode == "RGB":
        return image.copy()
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return _high_depth_to_rgb(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise BadImageError(f"cannot convert mode {image.mode} to RGB ({_one_line(exc)})") from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float greyscale image to 8-bit RGB."""
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    if image.mode in _SIXTEEN_BIT_MODES or (image.mode == "I" and values.min() >= 0 and values.max() <= 65535):
        scaled = values / 257.0  # 65535 / 255: full 16-bit range onto 0..255
    elif image.mode == "F" and values.min() >= 0 and values.max() <= 1:
        scaled = values * 255.0
    else:  # no known range (negative or beyond 16 bits): stretch what is there
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    grey = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _upright(image: Image.Image, path: Path) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the pixels as stored (with a warning)."""
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception as exc:  # malformed EXIF must not cost a readable image
        logger.warning("%s: EXIF orientation ignored (%s)", path, _one_line(exc))
        return image
    return transposed if transposed is not None else image


def _check_size(image: Image.Image, max_pixels: int) -> None:
    """Refuse an image larger than `max_pixels` from its header alone."""
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise BadImageError(
            f"too large: {image.width}x{image.height} = {pixels} pixels exceeds max_pixels={max_pixels} "
            "(a decompression bomb or a scan; raise max_pixels if it is wanted)"
        )


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__
