"""Synthetic scenes with exact ground truth: coloured shapes on a 3 x 3 grid, drawn with PIL.

A scene holds 1 to `MAX_OBJECTS` objects (nine: one per cell). Each object has a shape, a colour, a size and a
grid cell (its position word); no two objects share a cell or a (colour, shape) pair, so "the red circle" always
names one object. Objects in neighbouring cells may overlap (some scenes push a pair together on purpose); overlaps
are measured on the drawn masks. Everything comes from one `random.Random`, so a (seed, index) pair always gives
the same scene.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "COLORS",
    "MAX_OBJECTS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "Scene",
    "ShapeObject",
    "render_scene",
    "sample_scene",
    "scene_rng",
]

# Colour words and their RGB values: far apart, so a tiny vision encoder can tell them apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 170),
    "orange": (245, 130, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
# Grid cell (row * 3 + col) → position phrase, as it appears in sentences.
POSITIONS: tuple[str, ...] = (
    "in the top left corner",
    "at the top",
    "in the top right corner",
    "on the left",
    "in the center",
    "on the right",
    "in the bottom left corner",
    "at the bottom",
    "in the bottom right corner",
)
MAX_OBJECTS = 9
# For 1..MAX_OBJECTS objects: most scenes are busy, so descriptions and reasoning get long (VIC has work to do).
_OBJECT_COUNT_WEIGHTS = (1, 2, 2, 3, 3, 3, 3, 3, 3)
_HALF_EXTENT = {"small": 0.22, "large": 0.40}  # half the object's side, as a fraction of a grid cell
_JITTER = 0.05  # largest centre offset from the cell centre, as a fraction of a cell (never overlaps)
_PUSH = 0.25  # centre offset of a pair pushed together (two large objects then overlap)
_CANVAS = 224  # coordinates are stored for a 224 x 224 image
_OVERLAP_MIN_PIXELS = 12  # shared mask pixels (at 224 px) for two objects to count as overlapping


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene.

    Attributes:
        shape: One of `SHAPES`.
        color: One of `COLORS`.
        size: One of `SIZES`.
        cell: Grid cell, row * 3 + col (row 0 at the top, col 0 on the left).
        center: (x, y) of the centre in pixels of a 224 x 224 image.
        half_extent: Half the object's width in pixels of a 224 x 224 image.
    """

    shape: str
    color: str
    size: str
    cell: int
    center: tuple[float, float]
    half_extent: float

    @property
    def row(self) -> int:
        """Grid row, 0 at the top."""
        return self.cell // 3

    @property
    def col(self) -> int:
        """Grid column, 0 on the left."""
        return self.cell % 3

    @property
    def position(self) -> str:
        """The position phrase ("in the top left corner", ...)."""
        return POSITIONS[self.cell]

    @property
    def name(self) -> str:
        """ "{color} {shape}": unique within a scene."""
        return f"{self.color} {self.shape}"

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels of a 224 x 224 image."""
        x, y = self.center
        h = self.half_extent
        return (x - h, y - h, x + h, y + h)


@dataclass(frozen=True)
class Scene:
    """A scene and its ground truth.

    Attributes:
        image: The image file name (relative to the images folder).
        objects: The objects in drawing order (large ones first, so small ones stay visible).
        background: Background RGB.
        overlaps: Index pairs (i < j) of objects whose drawn masks overlap.
    """

    image: str
    objects: tuple[ShapeObject, ...]
    background: tuple[int, int, int]
    overlaps: tuple[tuple[int, int], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `scenes.json` record)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        """The inverse of `to_dict`."""
        objects = tuple(
            ShapeObject(
                shape=o["shape"],
                color=o["color"],
                size=o["size"],
                cell=int(o["cell"]),
                center=(float(o["center"][0]), float(o["center"][1])),
                half_extent=float(o["half_extent"]),
            )
            for o in data["objects"]
        )
        overlaps = tuple((int(a), int(b)) for a, b in data.get("overlaps", ()))
        background = (int(data["background"][0]), int(data["background"][1]), int(data["background"][2]))
        return cls(image=str(data["image"]), objects=objects, background=background, overlaps=overlaps)


def scene_rng(seed: int, index: int) -> random.Random:
    """The generator of scene `index` of a data set made with `seed` (independent of the other scenes)."""
    return random.Random(seed * 1_000_003 + index)


def sample_scene(rng: random.Random, image: str) -> Scene:
    """Draw a scene's layout (not its pixels).

    Args:
        rng: The scene's generator (see `scene_rng`).
        image: The file name the scene will be written to.
    """
    count = rng.choices(range(1, MAX_OBJECTS + 1), weights=_OBJECT_COUNT_WEIGHTS)[0]
    cells = rng.sample(range(9), count)
    kinds = rng.sample([(c, s) for c in COLORS for s in SHAPES], count)
    cell_size = _CANVAS / 3
    push = _push_pair(rng, cells)
    objects = []
    for cell, (color, shape) in zip(cells, kinds, strict=True):
        size = rng.choice(SIZES)
        dx, dy = (rng.uniform(-_JITTER, _JITTER) * cell_size for _ in range(2))
        if cell in push:
            dx, dy = push[cell][0] * _PUSH * cell_size, push[cell][1] * _PUSH * cell_size
            size = "large"
        center = ((cell % 3 + 0.5) * cell_size + dx, (cell // 3 + 0.5) * cell_size + dy)
        objects.append(ShapeObject(shape, color, size, cell, center, _HALF_EXTENT[size] * cell_size))
    objects.sort(key=lambda o: (o.size != "large", o.cell))
    shade = rng.randint(25, 60)
    background = (shade, shade, shade)
    scene = Scene(image=image, objects=tuple(objects), background=background)
    return Scene(image, scene.objects, background, find_overlaps(scene))


def _push_pair(rng: random.Random, cells: list[int]) -> dict[int, tuple[int, int]]:
    """In about a third of the scenes, move two horizontally or vertically adjacent objects towards each other."""
    pairs = [(a, b) for a in cells for b in cells if a < b and (b - a == 3 or (b - a == 1 and a % 3 != 2))]
    if not pairs or rng.random() > 0.35:
        return {}
    a, b = rng.choice(pairs)
    step = (1, 0) if b - a == 1 else (0, 1)
    return {a: step, b: (-step[0], -step[1])}


def _outline(obj: ShapeObject, scale: float) -> tuple[str, list[tuple[float, float]]]:
    """The PIL primitive and points of an object at `scale` times the 224 px coordinates."""
    x0, y0, x1, y1 = (v * scale for v in obj.bbox())
    if obj.shape == "circle":
        return "ellipse", [(x0, y0), (x1, y1)]
    if obj.shape == "square":
        return "rectangle", [(x0, y0), (x1, y1)]
    return "polygon", [((x0 + x1) / 2, y0), (x1, y1), (x0, y1)]


def _draw(draw: ImageDraw.ImageDraw, obj: ShapeObject, scale: float, fill: Any) -> None:
    kind, points = _outline(obj, scale)
    if kind == "ellipse":
        draw.ellipse(points, fill=fill)
    elif kind == "rectangle":
        draw.rectangle(points, fill=fill)
    else:
        draw.polygon(points, fill=fill)


def find_overlaps(scene: Scene) -> tuple[tuple[int, int], ...]:
    """Pairs of objects whose filled shapes share at least a few pixels (at 224 px)."""
    masks = []
    for obj in scene.objects:
        mask = Image.new("L", (_CANVAS, _CANVAS), 0)
        _draw(ImageDraw.Draw(mask), obj, 1.0, 255)
        masks.append(np.asarray(mask) > 0)  # (224, 224) bool
    pairs = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if np.count_nonzero(masks[i] & masks[j]) >= _OVERLAP_MIN_PIXELS:
                pairs.append((i, j))
    return tuple(pairs)


def render_scene(scene: Scene, size: int = _CANVAS) -> Image.Image:
    """Draw a scene (anti-aliased: drawn at twice the size, then downsampled).

    Args:
        scene: The scene.
        size: Output side in pixels.
    """
    big = Image.new("RGB", (2 * size, 2 * size), scene.background)
    draw = ImageDraw.Draw(big)
    for obj in scene.objects:
        _draw(draw, obj, 2 * size / _CANVAS, COLORS[obj.color])
    return big.resize((size, size), Image.Resampling.LANCZOS)
