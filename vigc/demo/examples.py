"""Example images for the page: the user's own folder (`--examples DIR`), or the scenes packaged with VIGC.

The packaged scenes (`vigc/assets/sample_images`) are held-out synthetic scenes of the kind the embedded default
model was trained on, so the examples give sensible QA with the demo's default model.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "MAX_EXAMPLES", "SAMPLE_IMAGES", "find_images"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_EXAMPLES = 12
SAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "assets" / "sample_images"


def find_images(folder: Path = SAMPLE_IMAGES, limit: int = MAX_EXAMPLES) -> list[Path]:
    """The first `limit` image files (by suffix, sorted by name) of `folder`; [] when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
