"""POPE (Li et al., 2023): object hallucination probed with yes/no questions, for any configured VIGC model.

    python -m vigc.eval.pope --model default --instances instances_val2014.json --images /data/coco/val2014 \
        --images-count 500 --per-image 3 --seed 0
    python -m vigc.eval.pope --model vigc/projects/.../generate_llava_qa_conv.yaml --options model.llm_model=... \
        --instances ... --images ... --device cuda

For each drawn image, the model is asked "Is there a {object} in the image?" for up to `--per-image` objects that
its instance annotations hold (answer: yes), and for as many objects it does not hold (answer: no), drawn three
ways:

* random: uniformly among the categories absent from the image;
* popular: the categories present in the most images of the annotation file, most frequent first;
* adversarial: the categories that co-occur most often with the image's own objects, most frequent first.

Questions are answered with the model's VQA-style generation (greedy, the ga prompt "Question: {q} Short answer:"
unless `--prompt` says otherwise). An answer counts as "no" when it contains the word "no" or "not", else "yes"
(POPE's rule). Each way reports accuracy, precision, recall and F1 of "yes" and the ratio of "yes" answers.
Drawing is seeded: the same seed and annotations give the same questions.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vigc.data.datasets import load_image
from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GA_PROMPT
from vigc.errors import EvalInputError, VIGCError
from vigc.eval.chair import read_json
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "QUESTION",
    "WAYS",
    "CocoImages",
    "PopeScores",
    "Probe",
    "answer_probes",
    "format_table",
    "is_yes",
    "main",
    "pope_scores",
    "read_coco_instances",
    "sample_probes",
    "score_probes",
]

logger = logging.getLogger(__name__)

WAYS: tuple[str, ...] = ("random", "popular", "adversarial")
QUESTION = "Is there a {object} in the image?"
_NEGATION = re.compile(r"\b(no|not)\b")


@dataclass(frozen=True)
class CocoImages:
    """The objects of each image of a COCO instances file.

    Attributes:
        objects: Image id → names of the categories annotated in it.
        files: Image id → file name.
        categories: Every category name of the file.
    """

    objects: Mapping[int, frozenset[str]]
    files: Mapping[int, str]
    categories: tuple[str, ...]

    def image_frequency(self) -> Counter[str]:
        """Category → number of images that hold it."""
        return Counter(name for names in self.objects.values() for name in names)

    def cooccurrence(self) -> dict[str, Counter[str]]:
        """Category → how many images hold it together with each other category."""
        counts: dict[str, Counter[str]] = {name: Counter() for name in self.categories}
        for names in self.objects.values():
            for name in names:
                counts[name].update(other for other in names if other != name)
        return counts


def read_coco_instances(path: str | Path) -> CocoImages:
    """Read a COCO instances file (`images`, `annotations`, `categories`)."""
    data = read_json(path)
    try:
        names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        objects: dict[int, set[str]] = {int(im["id"]): set() for im in data["images"]}
        files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        for ann in data["annotations"]:
            objects.setdefault(int(ann["image_id"]), set()).add(names[int(ann["category_id"])])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalInputError(f"{path} is not a COCO instances file (images, annotations, categories): {exc!r}") from exc
    frozen = {image_id: frozenset(found) for image_id, found in objects.items()}
    return CocoImages(frozen, files, tuple(sorted(set(names.values()))))


@dataclass(frozen=True)
class Probe:
    """One question of POPE.

    Attributes:
        image_id: The image asked about.
        object: The category name asked for.
        present: Whether the image holds it (the right answer is "yes").
        way: "random", "popular" or "adversarial" (positives belong to every way).
    """

    image_id: int
    object: str
    present: bool
    way: str


def _negatives(ranked: Sequence[str], present: frozenset[str], count: int) -> list[str]:
    return [name for name in ranked if name not in present][:count]


def sample_probes(
    coco: CocoImages, *, images: int | None = None, per_image: int = 3, seed: int = 0, ways: Sequence[str] = WAYS
) -> list[Probe]:
    """Draw POPE's questions: per image, up to `per_image` present objects and as many absent ones per way.

    Args:
        coco: The annotations.
        images: How many images to draw (among those with at least one object); None takes them all.
        per_image: Present objects asked per image (fewer when the image holds fewer).
        seed: Seed of every random choice (images, present objects, random negatives).
        ways: Which negative samplings to draw.

    Returns:
        Image by image (ascending id), for each way the image's positives then its negatives. The random
        negatives are drawn whichever `ways` are asked for, so a seed gives the same questions either way.
    """
    rng = random.Random(seed)
    candidates = sorted(image_id for image_id, names in coco.objects.items() if names)
    chosen = candidates if images is None or images >= len(candidates) else sorted(rng.sample(candidates, images))
    frequency = coco.image_frequency()
    popular = sorted(coco.categories, key=lambda name: (-frequency[name], name))
    together = coco.cooccurrence()
    probes: list[Probe] = []
    for image_id in chosen:
        present = coco.objects[image_id]
        positives = sorted(rng.sample(sorted(present), min(per_image, len(present))))
        absent = [name for name in coco.categories if name not in present]
        drawn = {
            "random": rng.sample(absent, min(len(positives), len(absent))),
            "popular": _negatives(popular, present, len(positives)),
            "adversarial": _negatives(
                sorted(popular, key=lambda c: -sum(together[p][c] for p in present)), present, len(positives)
            ),
        }
        for way in ways:
            probes += [Probe(image_id, name, True, way) for name in positives]
            probes += [Probe(image_id, name, False, way) for name in drawn[way]]
    return probes


def is_yes(answer: str) -> bool:
    """POPE's reading of an answer: "no" when it contains the word "no" or "not", otherwise "yes"."""
    return _NEGATION.search(answer.lower()) is None


@dataclass(frozen=True)
class PopeScores:
    """Yes/no counts of one way; "yes" is the positive class."""

    true_yes: int
    false_yes: int
    true_no: int
    false_no: int

    @property
    def total(self) -> int:
        """Questions asked."""
        return self.true_yes + self.false_yes + self.true_no + self.false_no

    @property
    def accuracy(self) -> float:
        """Right answers / questions."""
        return (self.true_yes + self.true_no) / self.total if self.total else float("nan")

    @property
    def precision(self) -> float:
        """Right "yes" / all "yes" (nan when the model never said yes)."""
        said_yes = self.true_yes + self.false_yes
        return self.true_yes / said_yes if said_yes else float("nan")

    @property
    def recall(self) -> float:
        """Right "yes" / questions whose answer is yes."""
        positives = self.true_yes + self.false_no
        return self.true_yes / positives if positives else float("nan")

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when there is no right "yes")."""
        if self.true_yes == 0:
            return 0.0 if self.total else float("nan")
        return 2 * self.precision * self.recall / (self.precision + self.recall)

    @property
    def yes_ratio(self) -> float:
        """Share of "yes" answers."""
        return (self.true_yes + self.false_yes) / self.total if self.total else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        """Counts and metrics, JSON-ready."""
        metrics = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return {**asdict(self), "total": self.total, **{name: getattr(self, name) for name in metrics}}


def pope_scores(present: Sequence[bool], said_yes: Sequence[bool]) -> PopeScores:
    """Count right and wrong answers: `present[i]` is the truth, `said_yes[i]` the model's reading."""
    if len(present) != len(said_yes):
        raise ValueError(f"{len(present)} labels but {len(said_yes)} answers")
    pairs = Counter(zip(present, said_yes, strict=True))
    return PopeScores(pairs[True, True], pairs[False, True], pairs[False, False], pairs[True, False])


def score_probes(probes: Sequence[Probe], answers: Mapping[tuple[int, str], str]) -> dict[str, PopeScores]:
    """Scores per way (in `WAYS` order) from the answer to each (image id, object) question."""
    ways = [way for way in WAYS if any(p.way == way for p in probes)]
    return {
        way: pope_scores(
            [p.present for p in probes if p.way == way],
            [is_yes(answers[p.image_id, p.object]) for p in probes if p.way == way],
        )
        for way in ways
    }


def _rows(probes: Sequence[Probe]) -> list[tuple[int, str]]:
    """Each distinct (image id, object) question once, grouped by image: ways share their positives."""
    return list(dict.fromkeys((p.image_id, p.object) for p in sorted(probes, key=lambda p: p.image_id)))


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def answer_probes(
    model: VIGCModel,
    image_paths: Mapping[int, Path],
    probes: Sequence[Probe],
    *,
    prompt: str = GA_PROMPT,
    settings: DecodingSettings | None = None,
    batch_size: int = 16,
) -> dict[tuple[int, str], str]:
    """Ask the model every distinct question of `probes`; each image is encoded once per batch.

    Args:
        model: Any VIGC model.
        image_paths: Image id → image file.
        probes: The questions (from `sample_probes`).
        prompt: The VQA prompt, with `{q}` where the question goes.
        settings: Decoding (default: greedy, at most 10 new tokens).
        batch_size: Questions decoded together.

    Returns:
        (image id, object) → the model's answer text.
    """
    settings = settings or DecodingSettings(max_new_tokens=10)
    processor = EvalImageProcessor(int(model.vision_model.config.image_size))  # type: ignore[arg-type]
    answers: dict[tuple[int, str], str] = {}
    rows_all = _rows(probes)
    logger.info("POPE: %d distinct questions about %d images", len(rows_all), len({i for i, _ in rows_all}))
    for rows in _batches(rows_all, batch_size):
        image_ids = list(dict.fromkeys(image_id for image_id, _ in rows))
        pixels = torch.stack([processor(load_image(image_paths[image_id])) for image_id in image_ids])
        with torch.no_grad():
            embeds = model.encode_images(pixels.to(model.device))  # (I, N, Dv)
            row_embeds = embeds[[image_ids.index(image_id) for image_id, _ in rows]]  # (B, N, Dv)
            prompts = [prompt.format(q=QUESTION.format(object=name)) for _, name in rows]
            out = model.generate(row_embeds, prompts, settings)
        answers.update(zip(rows, (texts[0] for texts in out.texts), strict=True))
    return answers


def _cell(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def format_table(scores: Mapping[str, PopeScores]) -> str:
    """A Markdown table: one row per way, percentages."""
    lines = ["| way | questions | accuracy | precision | recall | F1 | yes ratio |", "|---|---|---|---|---|---|---|"]
    for way, s in scores.items():
        cells = [_cell(v) for v in (s.accuracy, s.precision, s.recall, s.f1, s.yes_ratio)]
        lines.append(f"| {way} | {s.total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="'default' (the packaged model) or a config YAML")
    parser.add_argument("--finetuned", default=None, help="weights to apply over the model's")
    parser.add_argument("--options", nargs="+", default=[], help="config overrides section.key=value")
    parser.add_argument("--instances", type=Path, required=True, help="COCO instances_*.json of the images")
    parser.add_argument("--images", type=Path, required=True, help="folder holding the images' file_name")
    parser.add_argument("--images-count", type=int, default=500, help="images to draw (POPE: 500); 0 takes all")
    parser.add_argument("--per-image", type=int, default=3, help="present objects asked per image (POPE: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    parser.add_argument("--prompt", default=GA_PROMPT, help="VQA prompt with {q} for the question")
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--out", type=Path, default=None, help="write answers.jsonl and scores.json here")
    return parser.parse_args(argv)


def _check(args: argparse.Namespace) -> None:
    if args.images_count < 0 or args.per_image < 1 or args.batch_size < 1 or args.max_new_tokens < 1:
        raise EvalInputError("--images-count must be >= 0; --per-image, --batch-size and --max-new-tokens >= 1.")
    if "{q}" not in args.prompt:
        raise EvalInputError(f"--prompt must contain {{q}} where the question goes, got {args.prompt!r}.")
    if not args.images.is_dir():
        raise EvalInputError(f"--images {args.images} is not a folder.")


def _image_paths(coco: CocoImages, probes: Sequence[Probe], folder: Path) -> dict[int, Path]:
    paths = {p.image_id: folder / coco.files[p.image_id] for p in probes}
    missing = sorted(str(path) for path in paths.values() if not path.is_file())
    if missing:
        raise EvalInputError(f"{len(missing)} drawn images are not in {folder}, e.g. {missing[0]}; is --images right?")
    return paths


def _write(out: Path, probes: Sequence[Probe], answers: Mapping[tuple[int, str], str], report: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({**asdict(p), "answer": answers[p.image_id, p.object], "yes": is_yes(answers[p.image_id, p.object])})
        for p in probes
    ]
    (out / "answers.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (out / "scores.json").write_text(report + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the questions, ask the model, print the scores per way."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        _check(args)
        coco = read_coco_instances(args.instances)
        probes = sample_probes(coco, images=args.images_count or None, per_image=args.per_image, seed=args.seed)
        probes = [p for p in probes if p.way in args.ways]
        if not probes:
            raise EvalInputError(f"{args.instances} has no image with an annotated object.")
        paths = _image_paths(coco, probes, args.images)
        from vigc.eval.shapes_report import build_model_by_name

        model = build_model_by_name(args.model, args.finetuned, args.device, args.options)
        settings = DecodingSettings(max_new_tokens=args.max_new_tokens)
        answers = answer_probes(model, paths, probes, prompt=args.prompt, settings=settings, batch_size=args.batch_size)
        scores = score_probes(probes, answers)
        as_json = json.dumps({way: s.as_dict() for way, s in scores.items()}, indent=1)
        print(as_json if args.json else format_table(scores))
        if args.out is not None:
            _write(args.out, probes, answers, as_json)
    except (VIGCError, OSError) as exc:  # bad annotations, a missing image or config, an unwritable --out
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # called in-process (tests, notebooks): leave the caller's setting alone
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
