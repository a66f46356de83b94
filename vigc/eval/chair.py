"""CHAIR (Rohrbach et al., 2018) for generated text about COCO images: object hallucination against annotations.

    python -m vigc.eval.chair --records output/.../<run id> --instances instances_train2017.json \
        --synonyms synonyms.txt [--captions captions_train2017.json] [--fields original_answer answer]

Object words of each text are mapped to COCO categories with a synonym list (one category per line: the
category's name first, then its synonyms, comma-separated, as CHAIR's `synonyms.txt`). The ground-truth objects
of an image are the categories of its instance annotations (and, with `--captions`, those named in its reference
captions, as CHAIR does). Then, over all texts: CHAIR_i = mentions of objects not in the image / object mentions,
CHAIR_s = texts with at least one such mention / texts.

Differences from the original script, which needs NLTK and `pattern`: words are lower-cased regex tokens and
plurals are reduced with a few rules and an irregular list instead of a lemmatiser; multi-word synonyms ("hot
dog", "teddy bear") are matched longest first wherever the list has them; "baby"/"adult" before an animal word
does not count as a person (the original's rule).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChairResult", "CocoObjects", "Synonyms", "chair", "read_synonyms", "singular"]

_IRREGULAR = {
    "men": "man",
    "women": "woman",
    "children": "child",
    "people": "person",
    "feet": "foot",
    "teeth": "tooth",
    "mice": "mouse",
    "geese": "goose",
    "knives": "knife",
    "skis": "ski",
    "buses": "bus",
    "glasses": "glass",
    "benches": "bench",
    "sandwiches": "sandwich",
    "couches": "couch",
    "boxes": "box",
    "dishes": "dish",
    "leaves": "leaf",
    "shelves": "shelf",
    "scissors": "scissors",
    "skies": "sky",
}
_ANIMALS = {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub"}
_WORD = re.compile(r"[a-z]+")


def singular(word: str) -> str:
    """A crude singular: irregular forms, then -ies → -y, -ses/-xes/-ches/-shes → drop -es, -s → drop -s."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


@dataclass(frozen=True)
class Synonyms:
    """Synonym phrase (singular words) → COCO category."""

    to_category: Mapping[tuple[str, ...], str]
    longest: int

    def categories(self, text: str) -> list[str]:
        """The category of every object mention in `text`, in order (repeats kept: CHAIR counts mentions)."""
        words = [singular(w) for w in _WORD.findall(text.lower())]
        found: list[str] = []
        i = 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 0, -1):
                category = self.to_category.get(tuple(words[i : i + n]))
                if category is None:
                    continue
                baby_animal = n == 1 and words[i] in ("baby", "adult") and words[i + 1 : i + 2] != []
                if category == "person" and baby_animal and words[i + 1] in _ANIMALS:
                    break  # "baby elephant" is an elephant, not a person
                found.append(category)
                i += n - 1
                break
            i += 1
        return found

    def category_of(self, name: str) -> str:
        """The category a COCO category name belongs to (the name itself when it heads no line)."""
        return self.to_category.get(tuple(singular(w) for w in _WORD.findall(name.lower())), name)


def read_synonyms(path: str | Path) -> Synonyms:
    """Read a synonym list: one category per line, `name, synonym, synonym, ...`."""
    mapping: dict[tuple[str, ...], str] = {}
    for line in Path(path).read_text("utf-8").splitlines():
        names = [n.strip().lower() for n in line.split(",") if n.strip()]
        if not names:
            continue
        for name in names:
            mapping.setdefault(tuple(singular(w) for w in _WORD.findall(name)), names[0])
    if not mapping:
        raise ValueError(f"{path} holds no synonyms (expected lines 'category, synonym, ...')")
    return Synonyms(mapping, max(len(k) for k in mapping))


@dataclass
class CocoObjects:
    """Ground-truth categories per image, reachable by image id or file name."""

    by_id: dict[int, set[str]] = field(default_factory=dict)
    id_of_file: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_files(cls, instances: str | Path, synonyms: Synonyms, captions: str | Path | None = None) -> CocoObjects:
        """Read COCO instance annotations (and optionally reference captions)."""
        data = json.loads(Path(instances).read_text("utf-8"))
        names = {c["id"]: synonyms.category_of(c["name"]) for c in data["categories"]}
        objects = cls(
            by_id={int(im["id"]): set() for im in data["images"]},
            id_of_file={Path(im["file_name"]).name: int(im["id"]) for im in data["images"]},
        )
        for ann in data["annotations"]:
            objects.by_id.setdefault(int(ann["image_id"]), set()).add(names[ann["category_id"]])
        if captions is not None:
            for ann in json.loads(Path(captions).read_text("utf-8"))["annotations"]:
                objects.by_id.setdefault(int(ann["image_id"]), set()).update(synonyms.categories(ann["caption"]))
        return objects

    def lookup(self, record: Mapping[str, Any]) -> set[str] | None:
        """The objects of a record's image (by `image_id`, else by the file name of `image`), None if unknown."""
        image_id = record.get("image_id")
        if image_id is not None and int(image_id) in self.by_id:
            return self.by_id[int(image_id)]
        file_id = self.id_of_file.get(Path(str(record.get("image", ""))).name)
        return None if file_id is None else self.by_id[file_id]


@dataclass(frozen=True)
class ChairResult:
    """CHAIR over a set of texts.

    Attributes:
        texts: Texts scored.
        mentions: Object mentions.
        hallucinated: Mentions of objects not in their image.
        hallucinated_texts: Texts with at least one.
        skipped: Records whose image has no annotation, or without the text field.
    """

    texts: int
    mentions: int
    hallucinated: int
    hallucinated_texts: int
    skipped: int

    @property
    def chair_i(self) -> float:
        """Hallucinated mentions / mentions."""
        return self.hallucinated / self.mentions if self.mentions else float("nan")

    @property
    def chair_s(self) -> float:
        """Texts with a hallucination / texts."""
        return self.hallucinated_texts / self.texts if self.texts else float("nan")


def chair(
    records: Iterable[Mapping[str, Any]], objects: CocoObjects, synonyms: Synonyms, text_field: str
) -> ChairResult:
    """CHAIR_i and CHAIR_s of `record[text_field]` over records (records without the field are skipped)."""
    texts = mentions = hallucinated = bad_texts = skipped = 0
    for record in records:
        text = record.get(text_field)
        truth = objects.lookup(record)
        if not isinstance(text, str) or truth is None:
            skipped += 1
            continue
        said = synonyms.categories(text)
        wrong = sum(category not in truth for category in said)
        texts += 1
        mentions += len(said)
        hallucinated += wrong
        bad_texts += wrong > 0
    return ChairResult(texts, mentions, hallucinated, bad_texts, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Print CHAIR for each text field of a generation run."""
    from vigc.eval.shapes_report import read_records

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=Path, required=True, help="generation run folder or records file")
    parser.add_argument("--instances", type=Path, required=True, help="COCO instances_*.json")
    parser.add_argument("--synonyms", type=Path, required=True, help="synonym list (CHAIR's synonyms.txt format)")
    parser.add_argument("--captions", type=Path, default=None, help="COCO captions_*.json (adds caption objects)")
    parser.add_argument("--fields", nargs="+", default=["original_answer", "answer"])
    args = parser.parse_args(argv)
    synonyms = read_synonyms(args.synonyms)
    objects = CocoObjects.from_files(args.instances, synonyms, args.captions)
    records = read_records(args.records)
    print("| field | texts | mentions | CHAIR_i | CHAIR_s | skipped |\n|---|---|---|---|---|---|")
    for name in args.fields:
        r = chair(records, objects, synonyms, name)
        print(f"| {name} | {r.texts} | {r.mentions} | {100 * r.chair_i:.1f} | {100 * r.chair_s:.1f} | {r.skipped} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
