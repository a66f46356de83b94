"""Example images for the page: the user's own folder (`--examples DIR`), or simple scenes drawn at start-up.

The drawn scenes are coloured shapes on plain backgrounds, the kind of picture the tiny test models were trained
on, so the examples give sensible QA with them too. Drawing them costs milliseconds and keeps binary files out of
the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

__all__ = ["IMAGE_SUFFIXES", "MAX_EXAMPLES", "SCENES", "Scene", "draw_examples", "find_images"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_EXAMPLES = 12


@dataclass(frozen=True)
class Scene:
    """One coloured shape on a plain background; `where` is "left", "center" or "right"."""

    name: str
    shape: str
    color: str
    big: bool
    where: str
    background: str


SCENES = (
    Scene("red_circle", "circle", "red", True, "center", "white"),
    Scene("blue_square", "square", "blue", False, "left", "gray"),
    Scene("green_triangle", "triangle", "green", True, "right", "black"),
    Scene("yellow_circle", "circle", "yellow", False, "right", "black"),
)


def _draw(scene: Scene, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), scene.background)
    radius = size * (0.3 if scene.big else 0.13)
    cx = {"left": size * 0.27, "center": size * 0.5, "right": size * 0.73}[scene.where]
    cy = size * 0.5
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    draw = ImageDraw.Draw(image)
    if scene.shape == "circle":
        draw.ellipse(box, fill=scene.color)
    elif scene.shape == "square":
        draw.rectangle(box, fill=scene.color)
    else:
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=scene.color)
    return image


def draw_examples(folder: Path, size: int = 224) -> list[Path]:
    """Draw `SCENES` as PNG files in `folder` (kept when already there); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for scene in SCENES:
        path = folder / f"{scene.name}.png"
        if not path.exists():
            _draw(scene, size).save(path)
        paths.append(path)
    return paths


def find_images(folder: Path, limit: int = MAX_EXAMPLES) -> list[Path]:
    """The first `limit` image files (by suffix, sorted by name) of `folder`; [] when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
