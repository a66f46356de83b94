"""CHAIR (Rohrbach et al., 2018): object hallucination of generated text about COCO images, as the authors compute it.

    python -m vigc.eval.chair --records output/.../<run id> --instances instances_val2014.json \
        --coco-captions captions_val2014.json
    python -m vigc.eval.chair --captions generated.json --instances ... --coco-captions ... --json

This reproduces the reference implementation (LisaAnne/Hallucination, `utils/chair.py`) exactly, quirks included,
so that numbers compare with published ones:

* A text is lower-cased, tokenized as `nltk.word_tokenize` and every token singularised as `pattern.en.singularize`
  (both re-expressed in `vigc.eval.chair_text`: "buses" → "bus" but "bus" → "bu", "glass" → "glas").
* Adjacent token pairs that are two-word objects ("hot dog", "teddy bear", "wine glas") or qualified objects
  ("baby bird" → "bird", "passenger jet" → "jet", "bow tie" → "tie", "toilet seat" → "toilet") are merged,
  greedily from the left. "seat" counts as a chair only when the text does not say "toilet".
* Every remaining token that is an entry of the synonym file (one category per line, the COCO name first, entries
  separated by ", ", kept as written: " motor bike" with its leading space never matches) is one mention of that
  line's category; repeats count each time. The reference's file ships in `vigc/assets/chair/` and is the default.
* The ground truth of an image is the categories of its instance annotations plus the objects found the same way in
  its COCO reference captions (`--coco-captions`).
* CHAIR_i = mentions of categories not in the image / mentions; CHAIR_s = texts with such a mention / texts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigc.errors import EvalInputError
from vigc.eval.chair_text import singularize, word_tokenize

__all__ = [
    "SYNONYMS",
    "CaptionChair",
    "ChairResult",
    "CocoObjects",
    "TextObjects",
    "Vocabulary",
    "chair",
    "main",
    "read_json",
    "read_synonyms",
]

# The reference's own synonym list (data/synonyms.txt), used when none is given.
SYNONYMS = Path(__file__).resolve().parents[1] / "assets" / "chair" / "synonyms.txt"

# The reference's fixed rules for COCO (utils/chair.py): token pairs read as one word, and what they become.
_TWO_WORD_OBJECTS = (
    "motor bike, motor cycle, air plane, traffic light, street light, traffic signal, stop light, fire hydrant, "
    "stop sign, parking meter, suit case, sports ball, baseball bat, baseball glove, tennis racket, wine glass, "
    "hot dog, cell phone, mobile phone, teddy bear, hair drier, potted plant, laptop computer, stove top oven, "
    "home plate, train track"
).split(", ")
# "baby bird" is a bird, not a person; "passenger jet" is a jet.
_QUALIFIED = {"baby": "bird cat dog horse sheep cow elephant bear zebra giraffe animal cub", "passenger": "jet train"}
_QUALIFIED["adult"] = _QUALIFIED["baby"]
_MERGES: dict[tuple[str, str], str] = {
    **{(first, second): f"{first} {second}" for first, second in (w.split(" ", 1) for w in _TWO_WORD_OBJECTS)},
    **{(qualifier, word): word for qualifier, words in _QUALIFIED.items() for word in words.split()},
    ("bow", "tie"): "tie",
    ("toilet", "seat"): "toilet",
    ("wine", "glas"): "wine glass",  # the singulariser's "glass" → "glas"
}


@dataclass(frozen=True)
class TextObjects:
    """The objects CHAIR finds in one text.

    Attributes:
        mentioned: (word, category) per mention, in text order; `word` as the reference sees it ("puppy",
            "laptop computer").
        positions: Token index of each mention in the singularised tokens before merging (the reference's
            `mention_idxs`).
        words: All tokens after singularising and merging, objects or not (the reference's `words`).
    """

    mentioned: list[tuple[str, str]]
    positions: list[int]
    words: list[str]


@dataclass(frozen=True)
class Vocabulary:
    """CHAIR's object vocabulary: every synonym-file entry → its line's category (the COCO name)."""

    category_of: Mapping[str, str]

    def objects(self, text: str) -> TextObjects:
        """Find the object mentions of `text` as the reference's `caption_to_words` does."""
        tokens = [singularize(token) for token in word_tokenize(text.lower())]
        words: list[str] = []
        starts: list[int] = []
        i = 0
        while i < len(tokens):
            starts.append(i)
            merged = _MERGES.get((tokens[i], tokens[i + 1])) if i + 1 < len(tokens) else None
            words.append(merged if merged is not None else tokens[i])
            i += 2 if merged is not None else 1
        drop_seat = "toilet" in words and "seat" in words  # "the seat of the toilet" is no chair
        visible = [w for w in words if not (drop_seat and w == "seat")]
        # The reference numbers the remaining words against the start positions from before dropping "seat", so
        # mentions after a dropped seat get the position of the word before them; kept for identical output.
        kept = [(w, starts[k]) for k, w in enumerate(visible) if w in self.category_of]
        return TextObjects([(w, self.category_of[w]) for w, _ in kept], [s for _, s in kept], words)

    def category(self, name: str, source: str) -> str:
        """The category of a COCO category name (it must be an entry of the synonym file)."""
        if name not in self.category_of:
            raise EvalInputError(
                f"{source}: category {name!r} is not in the synonym list; is it the COCO synonyms.txt?"
            )
        return self.category_of[name]


def read_synonyms(path: str | Path) -> Vocabulary:
    """Read a synonym file: one category per line, `name, synonym, ...` (entries split on ", " exactly)."""
    category_of: dict[str, str] = {}
    for line in _read_text(path).splitlines():
        entries = line.strip().split(", ")
        if entries[0]:
            category_of.update((entry, entries[0]) for entry in entries)  # a later line wins, as in the reference
    if not category_of:
        raise EvalInputError(f"{path} holds no synonyms (expected lines 'category, synonym, ...').")
    return Vocabulary(category_of)


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"cannot read {path}: {exc}") from exc


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, with one-line errors."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{path} is not valid JSON: {exc}") from exc


@dataclass
class CocoObjects:
    """Ground-truth categories per image, reachable by image id or file name."""

    by_id: dict[int, set[str]] = field(default_factory=dict)
    id_of_file: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_files(
        cls, instances: str | Path, vocabulary: Vocabulary, captions: str | Path | None = None
    ) -> CocoObjects:
        """Read COCO instance annotations and, optionally, reference captions (COCO captions format)."""
        data = read_json(instances)
        try:
            names = {c["id"]: vocabulary.category(c["name"], str(instances)) for c in data["categories"]}
            objects = cls(
                by_id={int(im["id"]): set() for im in data["images"]},
                id_of_file={Path(im["file_name"]).name: int(im["id"]) for im in data["images"]},
            )
            for ann in data["annotations"]:
                objects.by_id.setdefault(int(ann["image_id"]), set()).add(names[ann["category_id"]])
        except (KeyError, TypeError, ValueError) as exc:
            raise EvalInputError(
                f"{instances} is not a COCO instances file (images, annotations, categories): {exc!r}"
            ) from exc
        if captions is not None:
            try:
                for ann in read_json(captions)["annotations"]:
                    objects.by_id.setdefault(int(ann["image_id"]), set()).update(
                        category for _, category in vocabulary.objects(ann["caption"]).mentioned
                    )
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise EvalInputError(
                    f"{captions} is not a COCO captions file (annotations with caption): {exc!r}"
                ) from exc
        return objects

    def lookup(self, record: Mapping[str, Any]) -> int | None:
        """The image id of a record (its `image_id`, else the file name of `image`), None if not annotated."""
        image_id = record.get("image_id")
        if isinstance(image_id, int | str) and str(image_id).isdigit() and int(image_id) in self.by_id:
            return int(image_id)
        return self.id_of_file.get(Path(str(record.get("image", ""))).name)


@dataclass(frozen=True)
class CaptionChair:
    """CHAIR's verdict on one text.

    Attributes:
        image_id: The image it is about.
        caption: The text.
        objects: What CHAIR found in it.
        hallucinated: The (word, category) mentions whose category is not in the image, in text order.
        hallucinated_positions: Their token positions (as `TextObjects.positions`).
        truth: The image's ground-truth categories.
    """

    image_id: int
    caption: str
    objects: TextObjects
    hallucinated: list[tuple[str, str]]
    hallucinated_positions: list[int]
    truth: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form with the reference's field names."""
        mentions = len(self.objects.mentioned)
        return {
            "image_id": self.image_id,
            "caption": self.caption,
            "mentioned": [list(m) for m in self.objects.mentioned],
            "mscoco_generated_words": [category for _, category in self.objects.mentioned],
            "mscoco_hallucinated_words": [list(h) for h in self.hallucinated],
            "hallucination_idxs": self.hallucinated_positions,
            "mention_idxs": self.objects.positions,
            "words": self.objects.words,
            "mscoco_gt_words": sorted(self.truth),
            "CHAIRs": int(bool(self.hallucinated)),
            "CHAIRi": len(self.hallucinated) / mentions if mentions else 0.0,
        }


@dataclass(frozen=True)
class ChairResult:
    """CHAIR over a set of texts.

    Attributes:
        captions: Per-text verdicts, in input order.
        skipped: Inputs without text or whose image is not in the annotations.
    """

    captions: list[CaptionChair]
    skipped: int = 0

    @property
    def mentions(self) -> int:
        """Object mentions over all texts."""
        return sum(len(c.objects.mentioned) for c in self.captions)

    @property
    def hallucinated(self) -> int:
        """Mentions of objects not in their image."""
        return sum(len(c.hallucinated) for c in self.captions)

    @property
    def hallucinated_captions(self) -> int:
        """Texts with at least one hallucinated mention."""
        return sum(bool(c.hallucinated) for c in self.captions)

    @property
    def chair_i(self) -> float:
        """Hallucinated mentions / mentions."""
        return self.hallucinated / self.mentions if self.mentions else float("nan")

    @property
    def chair_s(self) -> float:
        """Texts with a hallucination / texts."""
        return self.hallucinated_captions / len(self.captions) if self.captions else float("nan")

    def summary(self) -> dict[str, Any]:
        """Overall numbers and the counts behind them."""
        return {
            "CHAIR_s": self.chair_s,
            "CHAIR_i": self.chair_i,
            "captions": len(self.captions),
            "hallucinated_captions": self.hallucinated_captions,
            "object_mentions": self.mentions,
            "hallucinated_mentions": self.hallucinated,
            "skipped": self.skipped,
        }


def chair(
    records: Iterable[Mapping[str, Any]], objects: CocoObjects, vocabulary: Vocabulary, text_field: str = "caption"
) -> ChairResult:
    """CHAIR of `record[text_field]` over records; records without the text or a known image are skipped."""
    captions: list[CaptionChair] = []
    skipped = 0
    for record in records:
        text = record.get(text_field)
        image_id = objects.lookup(record)
        if not isinstance(text, str) or image_id is None:
            skipped += 1
            continue
        truth = frozenset(objects.by_id[image_id])
        found = vocabulary.objects(text)
        wrong = [(m, at) for m, at in zip(found.mentioned, found.positions, strict=True) if m[1] not in truth]
        captions.append(CaptionChair(image_id, text, found, [m for m, _ in wrong], [at for _, at in wrong], truth))
    return ChairResult(captions, skipped)


def _read_caption_list(path: Path) -> list[dict[str, Any]]:
    """`[{image_id, caption}, ...]`, or a coco-caption evaluation file (`{"imgToEval": {key: {...}}}`)."""
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("imgToEval"), dict):
        data = list(data["imgToEval"].values())
    if not isinstance(data, list) or not all(isinstance(x, dict) and {"image_id", "caption"} <= x.keys() for x in data):
        raise EvalInputError(f"{path}: expected a JSON list of {{'image_id': ..., 'caption': ...}} entries.")
    return data


def _read_run(path: Path) -> list[dict[str, Any]]:
    from vigc.eval.shapes_report import read_records

    if not path.exists():
        raise EvalInputError(f"{path} does not exist (give a generation run folder or a records .jsonl/.json file).")
    try:
        records = read_records(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalInputError(f"cannot read records from {path}: {exc}") from exc
    if not records or not all(isinstance(r, dict) for r in records):
        raise EvalInputError(f"{path} holds no generation records (merged.jsonl or records.*.jsonl).")
    return records


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def score_run(
    records: Sequence[Mapping[str, Any]], objects: CocoObjects, vocabulary: Vocabulary
) -> list[tuple[str, ChairResult, ChairResult]]:
    """CHAIR of VIG's answer (`original_answer`) and VIC's (`answer`) per task, then over all tasks ("all")."""
    tasks = sorted({str(r.get("task", "-")) for r in records})
    groups = [(t, [r for r in records if str(r.get("task", "-")) == t]) for t in tasks]
    if len(groups) > 1:
        groups.append(("all", list(records)))
    return [
        (task, chair(rows, objects, vocabulary, "original_answer"), chair(rows, objects, vocabulary, "answer"))
        for task, rows in groups
    ]


def format_run(rows: Sequence[tuple[str, ChairResult, ChairResult]]) -> str:
    """A Markdown table: per task, VIG and VIC side by side (percentages)."""
    lines = [
        "| task | texts | VIG CHAIR_s | VIG CHAIR_i | VIC CHAIR_s | VIC CHAIR_i | VIG mentions | VIC mentions "
        "| skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, vig, vic in rows:
        cells = [task, str(len(vic.captions)), _pct(vig.chair_s), _pct(vig.chair_i), _pct(vic.chair_s)]
        cells += [_pct(vic.chair_i), str(vig.mentions), str(vic.mentions), str(vic.skipped)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_report(args: argparse.Namespace, objects: CocoObjects, vocabulary: Vocabulary) -> str:
    rows = score_run(_read_run(args.records), objects, vocabulary)
    if not any(vic.captions or vig.captions for _, vig, vic in rows):
        raise EvalInputError(
            f"no record of {args.records} has an image of {args.instances} (by image_id or file name)."
        )
    if not args.json:
        return format_run(rows)
    groups = [
        {"task": task, "field": name, **result.summary(), "sentences": [c.as_dict() for c in result.captions]}
        for task, vig, vic in rows
        for name, result in (("original_answer", vig), ("answer", vic))
    ]
    return json.dumps({"groups": groups}, indent=1)


def _caption_report(args: argparse.Namespace, objects: CocoObjects, vocabulary: Vocabulary) -> str:
    result = chair(_read_caption_list(args.captions), objects, vocabulary, "caption")
    if not result.captions:
        raise EvalInputError(f"no caption of {args.captions} has an image of {args.instances} (by image_id).")
    if args.json:
        sentences = [{"index": i, **c.as_dict()} for i, c in enumerate(result.captions)]
        return json.dumps({"overall": result.summary(), "sentences": sentences}, indent=1)
    return (
        f"{len(result.captions)} captions ({result.skipped} skipped): CHAIR_s {_pct(result.chair_s)}, "
        f"CHAIR_i {_pct(result.chair_i)} ({result.hallucinated}/{result.mentions} mentions)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--records", type=Path, help="generation run folder or records file (VIG vs VIC per task)")
    source.add_argument("--captions", type=Path, help="JSON list of {image_id, caption}")
    parser.add_argument("--instances", type=Path, required=True, help="COCO instances_*.json")
    parser.add_argument("--coco-captions", type=Path, default=None, help="COCO captions_*.json (adds their objects)")
    parser.add_argument("--synonyms", type=Path, default=SYNONYMS, help="synonym list (default: the reference's)")
    parser.add_argument("--json", action="store_true", help="print overall numbers and per-text details as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Score a generation run or a caption list and print the result."""
    args = parse_args(argv)
    try:
        vocabulary = read_synonyms(args.synonyms)
        objects = CocoObjects.from_files(args.instances, vocabulary, args.coco_captions)
        report = _run_report if args.records is not None else _caption_report
        print(report(args, objects, vocabulary))
    except EvalInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
