"""Synthetic scene data sets with ground truth, in the original annotation formats (SPEC §4).

    python -m vigc.data.shapes --out data/shapes --count 1000 --seed 0

writes, under ``--out``:

* ``images/shapes_<seed>_<index>.png``: the scenes (224 x 224 px);
* ``scenes.json``: the ground truth of every image (objects with shape, colour, size, grid cell, centre, extent;
  overlapping pairs), read back with `read_scenes`;
* ``llava_conv.json``, ``llava_desc.json``, ``llava_comp.json``: LLaVA-150k "cocoformat" records
  ``{image, question, answer: [str], dataset}`` (conversation, detailed description, complex reasoning; the
  ``dataset`` field names the LLaVA file of the subset, so the files work as VIG evaluation sets too);
* ``okvqa.json``: OKVQA-style records ``{image, question, answer: [10 short answers], question_id, image_id}``;
* ``images.json``: a generation input ``{image, image_id}`` per scene.

A data set is a pure function of (seed, count, questions per scene): scene ``i`` is drawn from its own generator
(`vigc.data.shapes_scene.scene_rng`), so the first N scenes of a bigger set are the N scenes of a smaller one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigc.data.shapes_questions import TASKS, planned_question, sample_question
from vigc.data.shapes_scene import Scene, render_scene, sample_scene, scene_rng

__all__ = [
    "LLAVA_SUBSETS",
    "ShapesDataset",
    "make_scenes",
    "qa_records",
    "read_scenes",
    "short_answers",
    "write_dataset",
]

logger = logging.getLogger(__name__)

# LLaVA subset → the LLaVA file name the original's `dataset` field holds.
LLAVA_SUBSETS = {"conv": "conversation_58k.json", "desc": "detail_23k.json", "comp": "complex_reasoning_77k.json"}
SCENES_FILE = "scenes.json"
IMAGES_DIR = "images"


def image_name(seed: int, index: int) -> str:
    """The file name of scene `index` (relative to the images folder)."""
    return f"shapes_{seed}_{index:06d}.png"


def make_scenes(count: int, seed: int) -> list[Scene]:
    """Scenes 0 .. count-1 of the data set made with `seed` (layouts only; see `render_scene` for pixels)."""
    return [sample_scene(scene_rng(seed, i), image_name(seed, i)) for i in range(count)]


def short_answers(answer: str, rng: random.Random) -> list[str]:
    """Ten annotator answers around one short answer (numbers sometimes spelled out, as people do)."""
    words = {str(i): w for i, w in enumerate(("zero", "one", "two", "three", "four", "five"))}
    variant = words.get(answer)
    if variant is None:
        return [answer] * 10
    spelled = rng.randint(1, 3)
    return [answer] * (10 - spelled) + [variant] * spelled


def qa_records(scenes: Sequence[Scene], seed: int, questions_per_scene: int = 2) -> dict[str, list[dict[str, Any]]]:
    """The annotation records of every format (file stem → records) for `scenes`.

    Args:
        scenes: The scenes.
        seed: The data set's seed (questions are drawn from their own generator, not the scenes').
        questions_per_scene: Questions per scene for conv and comp (desc has one: the description). The first
            is `planned_question` (its kind follows from the image), the others `sample_question`. The planned
            conv and comp questions are also written on their own (`llava_conv_planned`, `llava_comp_planned`):
            the training config's VIG samples read those, so the question writer learns one question per image,
            while the VIC samples read every question (VIC answers whatever is asked).
    """
    out: dict[str, list[dict[str, Any]]] = {f"llava_{t}": [] for t in TASKS}
    out.update({f"llava_{t}_planned": [] for t in TASKS if t != "desc"})
    out["okvqa"] = []
    for index, scene in enumerate(scenes):
        rng = random.Random(f"shapes-qa:{seed}:{index}")
        for task in TASKS:
            seen: set[str] = set()
            for k in range(1 if task == "desc" else questions_per_scene):
                # The first question is the one the image calls for (a model can learn to ask it), the others
                # are drawn at random (variety under sampling).
                question, parsed = (planned_question if k == 0 else sample_question)(scene, task, rng)
                if question in seen:
                    continue
                seen.add(question)
                answer = " ".join(parsed.answer(scene))
                record = {"image": scene.image, "question": question, "answer": [answer]}
                out[f"llava_{task}"].append({**record, "dataset": LLAVA_SUBSETS[task]})
                if k == 0 and task != "desc":  # the VIG samples' file: a writer learns to ask what the image calls for
                    out[f"llava_{task}_planned"].append({**record, "dataset": LLAVA_SUBSETS[task]})
                if task != "desc":
                    short = parsed.qtype.short(scene, parsed.slots)
                    out["okvqa"].append(
                        {
                            "image": scene.image,
                            "question": question,
                            "answer": short_answers(short, rng),
                            "question_id": len(out["okvqa"]),
                            "image_id": index,
                        }
                    )
    return out


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_dataset(out: str | Path, count: int, seed: int, questions_per_scene: int = 2, size: int = 224) -> Path:
    """Render `count` scenes and write their images, ground truth and annotations under `out`.

    Args:
        out: Destination folder (created).
        count: Number of scenes.
        seed: Data-set seed.
        questions_per_scene: Questions per scene for conv and comp.
        size: Image side in pixels.

    Returns:
        The destination folder.
    """
    root = Path(out)
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    scenes = make_scenes(count, seed)
    for scene in scenes:
        render_scene(scene, size).save(root / IMAGES_DIR / scene.image)
    _write_json(root / SCENES_FILE, [scene.to_dict() for scene in scenes])
    for stem, records in qa_records(scenes, seed, questions_per_scene).items():
        _write_json(root / f"{stem}.json", records)
    _write_json(root / "images.json", [{"image": s.image, "image_id": i} for i, s in enumerate(scenes)])
    logger.info("wrote %d scenes to %s", count, root)
    return root


def read_scenes(path: str | Path) -> dict[str, Scene]:
    """Ground truth by image file name, from a `scenes.json` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / SCENES_FILE
    try:
        return {scene.image: scene for scene in (Scene.from_dict(d) for d in json.loads(path.read_text("utf-8")))}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a scenes.json written by vigc.data.shapes ({exc!r})") from exc


@dataclass(frozen=True)
class ShapesDataset:
    """A written data set: its folder and ground truth."""

    root: Path
    scenes: dict[str, Scene]

    @classmethod
    def open(cls, root: str | Path) -> ShapesDataset:
        """Open a folder written by `write_dataset`."""
        return cls(Path(root), read_scenes(root))

    def image_path(self, image: str) -> Path:
        """The file of an image name."""
        return self.root / IMAGES_DIR / image


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: write a data set and print where it went."""
    parser = argparse.ArgumentParser(description="Write a synthetic scene data set (images, ground truth, QA).")
    parser.add_argument("--out", required=True, help="destination folder")
    parser.add_argument("--count", type=int, default=100, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0, help="data-set seed")
    parser.add_argument("--questions-per-scene", type=int, default=2, help="conv and comp questions per scene")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = write_dataset(args.out, args.count, args.seed, args.questions_per_scene, args.size)
    sizes = {p.name: len(json.loads(p.read_text("utf-8"))) for p in sorted(root.glob("*.json"))}
    print(f"{args.count} scenes (seed {args.seed}) in {root}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
