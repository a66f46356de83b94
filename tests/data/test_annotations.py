"""Annotation readers: every format, JSON and JSON Lines, and a clear error for each kind of bad record."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vigc.data.annotations import (
    READERS,
    AnnotationError,
    QAAnnotation,
    load_records,
    read_aokvqa,
    read_coco_pseudo,
    read_image_id_groups,
    read_llava,
    read_okvqa,
    read_vqav2,
)
from vigc.errors import VIGCError


def write_json(tmp_path: Path, records: Any, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def test_llava(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        [
            {
                "image": "000000033471.jpg",
                "question": "What is it?",
                "answer": ["A bus."],
                "dataset": "detail_23k.json",
            },
            {"image": "any name (2).png", "question": "Why?", "answer": ["Because."], "question_id": "q1"},
        ],
    )
    first, second = read_llava(path)
    assert first == QAAnnotation(
        image="000000033471.jpg", question="What is it?", answers=["A bus."], subset="detail_23k.json"
    )
    assert second.image == "any name (2).png" and second.question_id == "q1" and second.image_id is None


def test_okvqa_and_vqav2(tmp_path: Path) -> None:
    record = {"image": "val2014/x.jpg", "question": "q?", "answer": ["a"] * 6 + ["b"] * 4, "question_id": 7}
    path = write_json(tmp_path, [record])
    for reader in (read_okvqa, read_vqav2):
        (annotation,) = reader(path)
        assert annotation.answers == record["answer"] and annotation.question_id == 7 and annotation.weights is None


def test_aokvqa(tmp_path: Path) -> None:
    record = {
        "image_path": "train2017/1.jpg",
        "question": "What sport?",
        "direct_answers": ["tennis", "tennis", "squash"],
        "image_id": 1,
        "choices": ["golf", "tennis"],
        "correct_choice_idx": 1,
    }
    (annotation,) = read_aokvqa(write_json(tmp_path, [record]))
    assert annotation.image == "train2017/1.jpg" and annotation.answers == ["tennis", "tennis", "squash"]
    assert annotation.choices == ["golf", "tennis"] and annotation.correct_choice_idx == 1 and annotation.image_id == 1


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "ann.jsonl"
    path.write_text(
        '{"image": "a.jpg", "question": "q", "answer": ["x"]}\n\n{"image": "b.jpg", "question": "r", "answer": ["y"]}\n'
    )
    assert [a.image for a in read_okvqa(path)] == ["a.jpg", "b.jpg"]


def test_single_record_and_empty_files(tmp_path: Path) -> None:
    assert len(read_okvqa(write_json(tmp_path, [{"image": "a", "question": "q", "answer": ["x"]}]))) == 1
    assert read_okvqa(write_json(tmp_path, [], "empty.json")) == []


def test_coco_pseudo_weights_threshold_topk_and_exclusion(tmp_path: Path) -> None:
    records = [
        {"image": "a.jpg", "image_id": 1, "question": "q1", "answer": ["x", "y", "z"], "weight": [90.0, 5.0, 1.0]},
        {"image": "b.jpg", "image_id": 2, "question": "q2", "answer": ["x", "y"], "weight": [10.0, 9.0]},
        {"image": "c.jpg", "image_id": 3, "question": "q3", "answer": "single"},
        {"image": "d.jpg", "image_id": 4, "question": "q4", "answer": ["u", "v"]},
    ]
    path = write_json(tmp_path, records)
    everything = read_coco_pseudo(path)
    assert [a.image_id for a in everything] == [1, 2, 3, 4]
    assert everything[2].answers == ["single"] and everything[2].weights is None
    assert everything[3].weights is None  # a list without weights is weighted by frequency

    kept = read_coco_pseudo(path, score_thr=50.0, topk=2, exclude_image_ids={4})
    assert [a.image_id for a in kept] == [1, 3]  # 2: max weight 10 <= 50; 4 excluded; 3 has no weights: kept
    assert kept[0].answers == ["x", "y"] and kept[0].weights == [90.0, 5.0]
    with pytest.raises(ValueError, match="topk"):
        read_coco_pseudo(path, topk=0)


def test_image_id_groups(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"llava": [1, 2], "okvqa": [3]}, "ids.json")
    assert read_image_id_groups(path, ["llava", "okvqa"]) == {1, 2, 3}
    with pytest.raises(AnnotationError, match="no group 'llavaa'; its groups are llava, okvqa"):
        read_image_id_groups(path, ["llavaa"])


def test_readers_table() -> None:
    assert set(READERS) == {"llava", "okvqa", "a_okvqa", "vqav2", "coco_pseudo"}


GOOD = {"image": "a.jpg", "question": "q?", "answer": ["x"]}


@pytest.mark.parametrize(
    ("reader", "record", "field", "expected"),
    [
        (
            read_okvqa,
            {k: v for k, v in GOOD.items() if k != "image"},
            "image",
            "is missing; expected a non-empty string",
        ),
        (read_okvqa, {**GOOD, "image": ""}, "image", "is ''; expected a non-empty string"),
        (read_okvqa, {**GOOD, "question": 3}, "question", "is 3; expected a string"),
        (read_okvqa, {**GOOD, "answer": "x"}, "answer", "is 'x'; expected a non-empty list of strings"),
        (read_okvqa, {**GOOD, "answer": []}, "answer", "is []; expected a non-empty list of strings"),
        (read_vqav2, {**GOOD, "answer": ["x", 2]}, "answer", "expected a non-empty list of strings"),
        (read_llava, {**GOOD, "question_id": 1.5}, "question_id", "expected an integer or a string"),
        (read_llava, {**GOOD, "dataset": 5}, "dataset", "expected a string"),
        (read_okvqa, {**GOOD, "image_id": True}, "image_id", "expected an integer or a string"),
        (
            read_aokvqa,
            {"image_path": "a.jpg", "question": "q", "direct_answers": ["x"], "correct_choice_idx": 0},
            "correct_choice_idx",
            "expected an index into 'choices'",
        ),
        (
            read_aokvqa,
            {
                "image_path": "a.jpg",
                "question": "q",
                "direct_answers": ["x"],
                "choices": ["a"],
                "correct_choice_idx": 1,
            },
            "correct_choice_idx",
            "is 1; expected an index into 'choices'",
        ),
        (read_aokvqa, GOOD, "image_path", "is missing"),
        (
            read_coco_pseudo,
            {**GOOD, "answer": ["x", "y"], "weight": [1.0]},
            "weight",
            "expected a list of 2 numbers, one per answer",
        ),
        (read_coco_pseudo, {**GOOD, "answer": 4}, "answer", "expected a non-empty list of strings"),
    ],
)
def test_malformed_record_names_file_index_and_field(
    tmp_path: Path, reader: Callable[[Path], list[QAAnnotation]], record: dict[str, Any], field: str, expected: str
) -> None:
    path = write_json(tmp_path, [GOOD | {"image_path": "a.jpg", "direct_answers": ["x"]}, record])
    with pytest.raises(AnnotationError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}: record 1: field {field!r}"), message
    assert expected in message
    assert isinstance(info.value, VIGCError)


def test_record_that_is_not_an_object(tmp_path: Path) -> None:
    path = write_json(tmp_path, [GOOD, ["not", "an", "object"]])
    with pytest.raises(
        AnnotationError, match=re.escape(f"{path}: record 1 is ['not', 'an', 'object']; expected a JSON object")
    ):
        read_okvqa(path)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="does not exist; set the dataset's build_info.annotation"):
        load_records(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    with pytest.raises(AnnotationError, match="bad.json: invalid JSON at line 1, column 3"):
        load_records(bad)
    lines_as_json = tmp_path / "lines.json"  # JSON Lines under a .json name read as generation inputs are
    lines_as_json.write_text('{"image": "a"}\n{"image": "b"}\n')
    assert load_records(lines_as_json) == [{"image": "a"}, {"image": "b"}]
    with pytest.raises(AnnotationError, match="the top level is a dict; expected a JSON array"):
        load_records(write_json(tmp_path, {"image": "a"}, "obj.json"))
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"image": "a"}\n{oops\n')
    with pytest.raises(AnnotationError, match="bad.jsonl: line 2 is not valid JSON"):
        load_records(lines)
