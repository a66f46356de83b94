"""Generation inputs: every source, keys that never merge distinct images, clear errors, shards."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from vigc.errors import ConfigError
from vigc.generation.inputs import (
    KEY_SEPARATOR,
    GenerationInputError,
    GenerationItem,
    parse_shard,
    read_inputs,
    shard,
)


def _write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


def test_annotation_array_keeps_records_and_keys_by_path_not_image_id(tmp_path: Path, images: Path) -> None:
    records = [
        {"image": "train2017/000000082363.jpg", "image_id": 82363, "question": "ignored"},
        {"image": "patch0/objects365_v1_00000001.jpg", "image_id": 1},
        {"image": "patch1/objects365_v1_00000001.jpg", "image_id": 1},  # same id, different image: both kept
    ]
    items = read_inputs(_write_json(tmp_path / "ann.json", records), images)
    assert [item.key for item in items] == [r["image"] for r in records]
    assert items[0] == GenerationItem(
        image="train2017/000000082363.jpg",
        image_path=images / "train2017/000000082363.jpg",
        record=records[0],
        key="train2017/000000082363.jpg",
    )
    assert items[0].record == records[0] and items[0].question is None


def test_annotation_json_lines_and_absolute_paths(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "ann.jsonl"
    path.write_text('{"image": "a.jpg"}\n\n{"image": "/abs/b.png", "image_id": 2}\n', encoding="utf-8")
    items = read_inputs(path, images)
    assert [item.image_path for item in items] == [images / "a.jpg", Path("/abs/b.png")]


def test_duplicate_keys_are_dropped_and_logged(tmp_path: Path, images: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [{"image": "a.jpg", "image_id": 1}, {"image": "b.jpg"}, {"image": "a.jpg", "image_id": 9}]
    with caplog.at_level(logging.WARNING):
        items = read_inputs(_write_json(tmp_path / "ann.json", records), images)
    assert [(item.key, item.record.get("image_id")) for item in items] == [("a.jpg", 1), ("b.jpg", None)]
    assert "dropped 1 duplicate" in caplog.text


def test_questions_file_keys_by_image_and_question(tmp_path: Path, images: Path) -> None:
    questions = [
        {"image": "x.jpg", "question": "what is this?", "ori_answer": "a cat"},
        {"image": "x.jpg", "question": "why is it here?", "ori_answer": "to eat"},
        {"image": "x.jpg", "question": "what is this?", "ori_answer": "a dog"},  # duplicate question: dropped
    ]
    items = read_inputs(_write_json(tmp_path / "question.json", questions), images, kind="questions")
    assert [item.key for item in items] == [
        f"x.jpg{KEY_SEPARATOR}what is this?",
        f"x.jpg{KEY_SEPARATOR}why is it here?",
    ]
    assert [item.question for item in items] == ["what is this?", "why is it here?"]
    assert items[0].record["ori_answer"] == "a cat"


def test_folder_is_recursive_sorted_case_insensitive_and_skips_others(images: Path) -> None:
    for name in ["b/2.PNG", "a.jpg", "b/1.JpEg", "c/d/e.webp", "x.tiff", "notes.txt", ".hidden.jpg", ".cache/z.jpg"]:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(b"")
    items = read_inputs(None, images)
    assert [item.key for item in items] == ["a.jpg", "b/1.JpEg", "b/2.PNG", "c/d/e.webp", "x.tiff"]
    assert items[1].image_path == images / "b/1.JpEg" and items[1].record == {"image": "b/1.JpEg", "image_id": 1}
    assert "image_id" not in items[0].record  # "a.jpg" gives no id


def test_image_ids_come_from_file_names_as_the_original_derived_them(tmp_path: Path, images: Path) -> None:
    """COCO and Objects365 names give their numeric ids; an input's own image_id is kept."""
    for name in ["000000082363.jpg", "objects365_v2_01805760.jpg", "cat.png"]:
        (images / name).write_bytes(b"")
    by_image = {item.image: item.record.get("image_id") for item in read_inputs(None, images)}
    assert by_image == {"000000082363.jpg": 82363, "objects365_v2_01805760.jpg": 1805760, "cat.png": None}
    listed = _write_json(
        tmp_path / "ann.json", [{"image": "000000082363.jpg", "image_id": 7}, {"image": "objects365_v2_01805760.jpg"}]
    )
    assert [item.record["image_id"] for item in read_inputs(listed, images)] == [7, 1805760]
    list_file = tmp_path / "list.txt"
    list_file.write_text("000000082363.jpg\n", encoding="utf-8")
    assert read_inputs(list_file, images)[0].record["image_id"] == 82363


def test_folder_survives_a_symlink_loop(images: Path) -> None:
    (images / "sub").mkdir()
    (images / "sub/a.jpg").write_bytes(b"")
    os.symlink(images, images / "sub/loop")
    assert [item.key for item in read_inputs(None, images)] == ["sub/a.jpg"]


def test_list_file_relative_to_its_folder_or_the_images_root(tmp_path: Path, images: Path) -> None:
    listing = tmp_path / "lists" / "todo.txt"
    listing.parent.mkdir()
    listing.write_text("# first batch\nA/1.jpg\n\n  B/2.jpg  \n/data/3.jpg\n", encoding="utf-8")
    alone = read_inputs(listing, None)
    assert [item.image_path for item in alone] == [
        listing.parent / "A/1.jpg",
        listing.parent / "B/2.jpg",
        Path("/data/3.jpg"),
    ]
    assert [item.key for item in alone] == ["A/1.jpg", "B/2.jpg", "/data/3.jpg"]
    rooted = read_inputs(listing, images)
    assert rooted[0].image_path == images / "A/1.jpg"
    assert [item.key for item in read_inputs(None, listing)] == ["A/1.jpg", "B/2.jpg", "/data/3.jpg"]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"image": "a.jpg"}, {"image_id": 3}], r"record 1, field 'image' must be a non-empty string \(missing\)"),
        ([{"image": 5}], r"record 0, field 'image' must be a non-empty string \(int 5\)"),
        (["a.jpg"], "record 0 must be a JSON object"),
        ({"image": "a.jpg"}, "expected a JSON array"),
    ],
)
def test_malformed_annotation_names_file_index_and_field(
    tmp_path: Path, images: Path, records: object, message: str
) -> None:
    path = _write_json(tmp_path / "ann.json", records)
    with pytest.raises(GenerationInputError, match=message) as info:
        read_inputs(path, images)
    assert str(path) in str(info.value)


def test_malformed_question_and_invalid_json_lines(tmp_path: Path, images: Path) -> None:
    path = _write_json(tmp_path / "question.json", [{"image": "a.jpg", "question": ""}])
    with pytest.raises(GenerationInputError, match="record 0, field 'question'"):
        read_inputs(path, images, kind="questions")
    lines = tmp_path / "ann.jsonl"
    lines.write_text('{"image": "a.jpg"}\n{"image": \n', encoding="utf-8")
    with pytest.raises(GenerationInputError, match="line 2 is not valid JSON"):
        read_inputs(lines, images)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image": "a.jpg"},\n oops]', encoding="utf-8")
    with pytest.raises(GenerationInputError, match="invalid JSON at line 2"):
        read_inputs(broken, images)


def test_missing_paths_name_the_config_key(tmp_path: Path, images: Path) -> None:
    prefix = "datasets.coco2017_gen.build_info"
    with pytest.raises(ConfigError, match=rf"{prefix}.images = '.*nope' does not exist"):
        read_inputs(None, tmp_path / "nope", config_key_prefix=prefix)
    with pytest.raises(ConfigError, match=rf"{prefix}.annotation = '.*ann.json' does not exist"):
        read_inputs(tmp_path / "ann.json", images, config_key_prefix=prefix)
    with pytest.raises(ConfigError, match=rf"set {prefix}.images"):
        read_inputs(None, None, config_key_prefix=prefix)
    with pytest.raises(ConfigError, match=rf"set {prefix}.annotation"):
        read_inputs(None, images, kind="questions", config_key_prefix=prefix)
    ann = _write_json(tmp_path / "ann.json", [{"image": "a.jpg"}])
    with pytest.raises(GenerationInputError, match=rf"no images root is set; set {prefix}.images"):
        read_inputs(ann, None, config_key_prefix=prefix)
    with pytest.raises(ConfigError, match=rf"{prefix}.images = .* is not a folder"):
        read_inputs(ann, ann, config_key_prefix=prefix)


def test_shards_cover_every_item_exactly_once() -> None:
    items = list(range(10))
    shards = [shard(items, index, 4) for index in range(4)]
    assert shards[1] == [1, 5, 9]
    assert sorted(x for part in shards for x in part) == items
    assert shard(items, 0, 1) == items
    for index, count in [(4, 4), (-1, 4), (0, 0)]:
        with pytest.raises(ConfigError, match="0-based"):
            shard(items, index, count)


def test_parse_shard_is_zero_based() -> None:
    assert parse_shard("2/8") == (2, 8)
    assert parse_shard(" 0 / 1 ") == (0, 1)
    with pytest.raises(ConfigError, match="0-based, so use 0/8 … 7/8"):
        parse_shard("8/8")
    with pytest.raises(ConfigError, match="at least 1"):
        parse_shard("0/0")
    for text in ["3", "a/b", "-1/4", "1/2/3", ""]:
        with pytest.raises(ConfigError, match="must look like i/N"):
            parse_shard(text)
