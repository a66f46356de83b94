"""The original's result files (result/eval_epochbest.json, question.json, question_answer.json) from records."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from vigc.cli.merge import main
from vigc.data.prompts import GQ_INSTRUCTION
from vigc.generation.export import ExportError
from vigc.generation.records import RecordWriter, RunPaths, write_run_info, writer_tag
from vigc.generation.result_files import eval_result_entries, remove_duplicate, write_result_files

LLAVA_FIELDS = [
    "image",
    "instruction",
    "image_id",
    "whole_text",
    "answer",
    "original_answer",
    "answer_given_question",
    "question",
    "answer_lst",
]


def _lavis_save_result(rank_results: list[list[dict[str, Any]]], result_dir: Path, filename: str) -> Path:
    """The original's ``save_result(..., remove_duplicate="image_id")`` merge step, line for line (single host)."""
    result: list[dict[str, Any]] = []
    for res in rank_results:
        result += res
    result_new, id_list = [], []
    for res in result:
        if res["image_id"] not in id_list:
            id_list.append(res["image_id"])
            result_new.append(res)
    final_result_file = result_dir / f"{filename}.json"
    with open(final_result_file, "w") as handle:
        json.dump(result_new, handle)
    return final_result_file


def _llava(key: str, image: str, image_id: int | None, **extra: Any) -> dict[str, Any]:
    record = {
        "image": image,
        "key": key,
        "task": "conv",
        "sample_index": int(key.rsplit("#", 1)[1]),
        "valid": True,
        "instruction": "Generate a question based on the content of the given image and then answer it.",
        "whole_text": f"... Question: q {key}? Answer: A red cup.",
        "answer": "A red cup.",
        "original_answer": "A cup. é",
        "answer_given_question": "A red cup. The",
        "question": f"q {key}?",
        "answer_lst": [],
        "vig_output": "raw",
        "vic_steps": 1,
        "provenance": {"model": {"arch": "x"}},
        **extra,
    }
    if image_id is not None:
        record["image_id"] = image_id
    return record


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_llava_eval_result_is_the_originals_fields_one_per_image_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [  # merged.jsonl order: sorted by key
        _llava("other/000000000007.jpg#conv#0", "other/000000000007.jpg", None),  # id 7 from the name
        _llava("train2017/000000000007.jpg#conv#0", "train2017/000000000007.jpg", 7),  # distinct image, same id
        _llava("train2017/000000000009.jpg#conv#0", "train2017/000000000009.jpg", 9),
        _llava("train2017/000000000009.jpg#conv#1", "train2017/000000000009.jpg", 9),  # second sample: dropped
        _llava("train2017/000000000011.jpg#conv#0", "train2017/000000000011.jpg", 11, valid=False, question=None),
        _llava("zz/photo.png#conv#0", "zz/photo.png", None),  # no id, no digits: the path
    ]
    with caplog.at_level(logging.INFO):
        summaries = write_result_files("llava_vig", records, tmp_path)
    path = tmp_path / "result" / "eval_epochbest.json"
    assert [s.path for s in summaries] == [path] and (summaries[0].written, summaries[0].skipped) == (3, 3)
    entries = _read(path)
    assert [list(e) for e in entries] == [LLAVA_FIELDS] * 3
    assert [(e["image"], e["image_id"]) for e in entries] == [
        ("other/000000000007.jpg", 7),
        ("train2017/000000000009.jpg", 9),
        ("zz/photo.png", "zz/photo.png"),
    ]
    assert entries[1]["question"] == "q train2017/000000000009.jpg#conv#0?"  # the first sample is kept
    assert "1 distinct image(s) share an image_id" in caplog.text
    # Byte for byte what the original's save_result writes from the same valid_step output (plus a final newline).
    valid = eval_result_entries("llava_vig", records)
    (tmp_path / "lavis").mkdir()
    reference = _lavis_save_result([valid[:2], valid[2:]], tmp_path / "lavis", "eval_epochbest")
    assert path.read_text(encoding="utf-8") == reference.read_text(encoding="utf-8") + "\n"
    assert "\\u00e9" in path.read_text(encoding="utf-8")  # json.dump's ASCII escapes


def test_question_pass_writes_eval_result_and_question_json(tmp_path: Path) -> None:
    outputs = {
        "a/000000000001.jpg": "Question: what is it? Answer: a cat",
        "a/000000000002.jpg": "Question: what colour",  # no answer: not in question.json
        "a/000000000003.jpg": "Question:  Answer: x",  # empty question: the answer pass cannot ask it
        "a/000000000004.jpg": "Question: why? Answer: Question: how? Answer: rain",  # after the last Question:
    }
    records = [
        {"key": image, "image": image, "question_answer": text, "question": None, "valid": False, "prompt": "p"}
        for image, text in outputs.items()
    ]
    summaries = write_result_files("vqg_question", records, tmp_path)
    assert [s.path.name for s in summaries] == ["eval_epochbest.json", "question.json"]
    entries = _read(tmp_path / "result" / "eval_epochbest.json")
    assert entries[0] == {
        "image": "a/000000000001.jpg",
        "instruction": GQ_INSTRUCTION,
        "image_id": 1,
        "question_answer": "Question: what is it? Answer: a cat",
    }
    assert len(entries) == 4 and [list(e) for e in entries] == [list(entries[0])] * 4
    assert _read(tmp_path / "result" / "question.json") == [
        {"image": "a/000000000001.jpg", "question": "what is it?", "ori_answer": "a cat"},
        {"image": "a/000000000004.jpg", "question": "how?", "ori_answer": "rain"},
    ]


def test_answer_pass_writes_eval_result_and_question_answer_json(tmp_path: Path) -> None:
    base = {"question_answer": ["Answer: cat", "a dog ", "answer : cow"], "weight": [80.0, 10.5, 1.0]}
    records = [
        {"key": "x/000000000005.jpg\u241fwhat?", "image": "x/000000000005.jpg", "question": "what?", **base},
        {"key": "x/000000000005.jpg\u241fwhy?", "image": "x/000000000005.jpg", "question": "why?", **base},
        {"key": "y.jpg\u241fwho?", "image": "y.jpg", "image_id": 3, "question": "who?", **base},
    ]
    write_result_files("vqg_answer", records, tmp_path)
    entries = _read(tmp_path / "result" / "eval_epochbest.json")
    assert [list(e) for e in entries] == [["image", "image_id", "question", "question_answer", "weight"]] * 2
    assert [e["question"] for e in entries] == ["what?", "who?"]  # one element per image_id, as the original
    answers = _read(tmp_path / "result" / "question_answer.json")
    assert answers[0] == {
        "image": "x/000000000005.jpg",
        "image_id": 5,
        "question": "what?",
        "weight": [80.0, 10.5, 1.0],
        "answer": ["cat", "a dog ", "cow"],  # only a leading "answer" is cleaned (and then stripped)
    }
    with pytest.raises(ExportError, match="'k' is not an answer-pass record"):
        write_result_files("vqg_answer", [{"key": "k", "image": "i", "question": "q", "answer": ["a"]}], tmp_path)
    with pytest.raises(ExportError, match="Unknown generation task 'caption'"):
        write_result_files("caption", [], tmp_path)
    with pytest.raises(ExportError, match="'k#conv#0' has no 'instruction' field"):
        write_result_files("llava_vig", [{"key": "k#conv#0", "image": "i", "question": "q"}], tmp_path)


def test_remove_duplicate_keeps_the_first_and_tells_ids_of_other_types_apart() -> None:
    entries = [{"image_id": 1, "n": 0}, {"image_id": "1", "n": 1}, {"image_id": 1, "n": 2}]
    assert [e["n"] for e in remove_duplicate(entries)] == [0, 1]


def _append(run_dir: Path, tag: str, records: list[dict[str, Any]]) -> None:
    with RecordWriter(run_dir / f"records.{tag}.jsonl", fsync=False) as writer:
        for record in records:
            writer.write(record)


def test_merge_writes_result_files_atomically_and_again_after_a_resume(tmp_path: Path) -> None:
    images = [f"train2017/{i:012d}.jpg" for i in range(6)]
    records = [_llava(f"{image}#conv#0", image, i) for i, image in enumerate(images)]
    paths = RunPaths(tmp_path / "runs", "job")
    write_run_info(paths, task="llava_vig", config={})
    _append(paths.run_dir, writer_tag(0, 2), records[:2])  # the first start, killed after two records
    _append(paths.run_dir, writer_tag(1, 2), records[3:4])
    with open(paths.run_dir / "records.rank1.jsonl", "a") as handle:
        handle.write('{"key": "train2017/000000000005.jpg#conv#0", "ans')  # a torn last line
    assert main([str(paths.run_dir)]) == 0
    result = paths.run_dir / "result" / "eval_epochbest.json"
    assert [e["image_id"] for e in _read(result)] == [0, 1, 3]
    first_inode = os.stat(result).st_ino
    _append(paths.run_dir, writer_tag(0, 1), [records[2], records[4], records[5]])  # resumed on one process
    assert main([str(paths.run_dir)]) == 0
    assert [e["image_id"] for e in _read(result)] == [0, 1, 2, 3, 4, 5]
    assert os.stat(result).st_ino != first_inode  # replaced whole, never rewritten in place
    assert not list((paths.run_dir / "result").glob(".*"))  # no temporary file left behind
    assert (paths.run_dir / "llava_qa_result.json").is_file()  # the deprecated name is still written
