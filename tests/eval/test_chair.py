"""CHAIR on a tiny hand-made COCO-style annotation (two images) and synonym list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigc.eval.chair import CocoObjects, chair, main, read_synonyms, singular

SYNONYMS = """person, girl, boy, man, woman, people, baby, child
dog, puppy, pup
elephant
hot dog, hotdog, frankfurter
teddy bear, teddybear
dining table, table
"""

INSTANCES = {
    "images": [{"id": 1, "file_name": "COCO_1.jpg"}, {"id": 2, "file_name": "sub/COCO_2.jpg"}],
    "categories": [
        {"id": 1, "name": "person"},
        {"id": 18, "name": "dog"},
        {"id": 22, "name": "elephant"},
        {"id": 58, "name": "hot dog"},
        {"id": 67, "name": "dining table"},
    ],
    "annotations": [
        {"image_id": 1, "category_id": 1},
        {"image_id": 1, "category_id": 18},
        {"image_id": 2, "category_id": 22},
        {"image_id": 2, "category_id": 58},
    ],
}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    synonyms = tmp_path / "synonyms.txt"
    synonyms.write_text(SYNONYMS)
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps(INSTANCES))
    return synonyms, instances


def test_words_map_to_categories(files: tuple[Path, Path]) -> None:
    synonyms = read_synonyms(files[0])
    assert synonyms.categories("Two men walk their puppies past a table.") == ["person", "dog", "dining table"]
    assert synonyms.categories("A hot dog and a dog.") == ["hot dog", "dog"]  # longest match first
    assert synonyms.categories("A baby elephant next to a baby.") == ["elephant", "person"]
    assert synonyms.categories("Nothing here.") == []
    plurals = ("women", "puppies", "buses", "glass", "dogs")
    assert [singular(w) for w in plurals] == ["woman", "puppy", "bus", "glass", "dog"]


def test_chair_counts_mentions_and_texts(files: tuple[Path, Path]) -> None:
    synonyms = read_synonyms(files[0])
    objects = CocoObjects.from_files(files[1], synonyms)
    records = [
        # image 1 (person, dog): one hallucinated elephant out of three mentions
        {"image_id": 1, "answer": "A woman and her dog look at an elephant."},
        # image 2 by file name (elephant, hot dog): all right
        {"image": "train/COCO_2.jpg", "answer": "An elephant eats a frankfurter."},
        # image 2: the dog and the table are not there
        {"image": "COCO_2.jpg", "answer": "A dog sits at a dining table."},
        {"image": "unknown.jpg", "answer": "A dog."},
    ]
    result = chair(records, objects, synonyms, "answer")
    counts = (result.texts, result.mentions, result.hallucinated, result.hallucinated_texts, result.skipped)
    assert counts == (3, 7, 3, 2, 1)
    assert result.chair_i == pytest.approx(3 / 7) and result.chair_s == pytest.approx(2 / 3)


def test_captions_add_ground_truth(files: tuple[Path, Path], tmp_path: Path) -> None:
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"annotations": [{"image_id": 2, "caption": "A man feeds an elephant."}]}))
    synonyms = read_synonyms(files[0])
    objects = CocoObjects.from_files(files[1], synonyms, captions)
    assert objects.by_id[2] == {"elephant", "hot dog", "person"}


def test_cli_prints_the_table(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = tmp_path / "records.jsonl"
    lines = [{"image_id": 1, "original_answer": "A man and an elephant.", "answer": "A man and a dog."}]
    records.write_text("".join(json.dumps(r) + "\n" for r in lines))
    args = ["--records", str(records), "--instances", str(files[1]), "--synonyms", str(files[0])]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| original_answer | 1 | 2 | 50.0 | 100.0 | 0 |" in out
    assert "| answer | 1 | 2 | 0.0 | 0.0 | 0 |" in out
