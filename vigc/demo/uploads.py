"""Turning what the page receives into an RGB image, or into one message for the page.

The checks run before any pixel is decoded where they can: the file's size in bytes, then (in `load_rgb`) its
width x height from the header, so a decompression bomb or a huge scan costs nothing.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from vigc.data.images import BadImageError, load_rgb
from vigc.demo.limits import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_PIXELS
from vigc.demo.settings import DemoInputError

__all__ = ["DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_UPLOAD_PIXELS", "load_upload"]


def load_upload(
    path: str | Path | None,
    max_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
) -> Image.Image:
    """Read an uploaded (or example) file into an RGB image.

    Args:
        path: the file Gradio stored, or None when nothing was uploaded.
        max_mb: largest file accepted, in megabytes.
        max_pixels: largest width x height accepted.

    Returns:
        The image, RGB, EXIF orientation applied.

    Raises:
        DemoInputError: With a message for the page naming the file (not the server's temporary path).
    """
    if path is None or not str(path).strip():
        raise DemoInputError("No image yet: upload one, or pick an example below the upload box.")
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError:
        raise DemoInputError(f"The upload {file.name!r} is no longer on the server; upload it again.") from None
    if size > max_mb * 1e6:
        raise DemoInputError(
            f"{file.name!r} is {size / 1e6:.1f} MB; the demo takes images up to {max_mb:g} MB (--max-upload-mb)."
        )
    try:
        return load_rgb(file, max_pixels=max_pixels)
    except BadImageError as exc:
        reason = str(exc).removeprefix(f"{file}: ")
        raise DemoInputError(f"{file.name!r} cannot be used as an image: {reason}.") from None
