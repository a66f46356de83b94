"""Exports: the original's result files, LLaVA's training format, and the merge tool for array jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vigc.cli.merge import main
from vigc.generation.export import (
    ExportError,
    export_llava,
    export_original,
    llava_conversation,
)
from vigc.generation.inputs import KEY_SEPARATOR, read_inputs
from vigc.generation.records import RecordWriter, RunPaths, write_run_info, writer_tag

REPO_ROOT = Path(__file__).resolve().parents[2]


def _llava_record(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "image": key,
        "image_id": 7,
        "instruction": "Generate a question based on the content of the given image and then answer it.",
        "question": "What is on the table?",
        "answer": "A red cup. It is full.",
        "original_answer": "A cup.",
        "answer_given_question": "A red cup. It is full. The",
        "whole_text": "... Question: What is on the table? Answer: A red cup. It is full.",
        "answer_lst": [],
        "valid": True,
        **extra,
    }


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_llava_result_keeps_input_and_original_fields_and_drops_invalid(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        _llava_record("a.jpg", provenance={"model": "m"}),
        _llava_record("b.jpg", question=None, valid=False),
        _llava_record("c.jpg"),
    ]
    summary = export_original("llava_vig", records, tmp_path)
    assert summary.path == tmp_path / "llava_qa_result.json" and (summary.written, summary.skipped) == (2, 1)
    first = _load(summary.path)[0]
    expected = {k: v for k, v in _llava_record("a.jpg").items() if k not in ("key", "valid")}
    assert first == expected


def test_question_json_is_the_original_format_and_feeds_the_answer_pass(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"key": "x.jpg", "image": "x.jpg", "image_id": 1, "question": "what is it?", "ori_answer": "cat"},
        {"key": "y.jpg", "image": "y.jpg", "question": None, "ori_answer": None},  # VIG gave no QA pair
        {"key": "z.jpg", "image": "z.jpg", "question": "", "ori_answer": "x"},  # empty question: not data
        {"key": "w.jpg", "image": "w.jpg", "question": "why?", "ori_answer": ""},
    ]
    summary = export_original("vqg_question", records, tmp_path)
    assert (summary.written, summary.skipped) == (2, 2)
    assert _load(tmp_path / "question.json") == [
        {"image": "x.jpg", "question": "what is it?", "ori_answer": "cat", "image_id": 1},
        {"image": "w.jpg", "question": "why?", "ori_answer": ""},
    ]
    items = read_inputs(tmp_path / "question.json", tmp_path, kind="questions")
    assert [item.key for item in items] == [f"x.jpg{KEY_SEPARATOR}what is it?", f"w.jpg{KEY_SEPARATOR}why?"]


def test_question_answer_json_has_every_beam_and_an_image_id(tmp_path: Path) -> None:
    base = {"question": "what?", "ori_answer": "a", "answer": ["cat", "a cat"], "weight": [80.0, 10.5]}
    records: list[dict[str, Any]] = [
        {"key": "k1", "image": "train2017/000000082363.jpg", "image_id": 5, **base},
        {"key": "k2", "image": "train2017/000000082363.jpg", **base},  # no id: COCO digits of the file name
        {"key": "k3", "image": "my_photos/beach.png", **base},  # neither: the path
    ]
    export_original("vqg_answer", records, tmp_path)
    entries = _load(tmp_path / "question_answer.json")
    assert entries[0] == {
        "image": "train2017/000000082363.jpg",
        "image_id": 5,
        "question": "what?",
        "weight": [80.0, 10.5],
        "answer": ["cat", "a cat"],
    }
    assert [e["image_id"] for e in entries] == [5, 82363, "my_photos/beach.png"]
    with pytest.raises(ExportError, match="'k9' is not an answer-pass record"):
        export_original("vqg_answer", [{"key": "k9", "image": "a", "question": "q", "answer": "x"}], tmp_path)
    with pytest.raises(ExportError, match="Unknown generation task 'vqa'"):
        export_original("vqa", [], tmp_path)


def test_llava_export_format_ids_and_skips(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        _llava_record("train2017/1.jpg"),
        _llava_record("train2017/2.jpg", answer="   "),
        _llava_record("train2017/3.jpg", question=""),
        _llava_record("train2017/4.jpg", valid=False),
        {"key": "q1", "image": "b.jpg", "question": "what?", "answer": ["dog", "cat"], "weight": [1.0, 9.0]},
    ]
    summary = export_llava(records, tmp_path / "out" / "llava.json")
    assert (summary.written, summary.skipped) == (2, 3)
    assert _load(summary.path) == [
        {
            "id": "train2017/1.jpg",
            "image": "train2017/1.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat is on the table?"},
                {"from": "gpt", "value": "A red cup. It is full."},
            ],
        },
        {
            "id": "q1",
            "image": "b.jpg",
            "conversations": [{"from": "human", "value": "<image>\nwhat?"}, {"from": "gpt", "value": "cat"}],
        },
    ]
    assert llava_conversation({"key": "k", "image": "i", "question": None, "answer": "a"}) is None
    assert not list((tmp_path / "out").glob(".*tmp"))  # the atomic write left no temporary file


def _make_sharded_run(tmp_path: Path, task: str, records: list[dict[str, Any]], shards: int = 3) -> Path:
    paths = RunPaths(tmp_path / "runs", "job-42")
    write_run_info(paths, task=task, config={"run": {"task": task}})
    for index in range(shards):
        with RecordWriter(paths.records(writer_tag(0, 1, (index, shards)))) as writer:
            for record in records[index::shards]:
                writer.write(record)
    with RecordWriter(paths.records(writer_tag(0, 1, (0, shards)))) as writer:
        writer.write_error("broken.jpg", "broken.jpg", "broken.jpg: empty file (0 bytes)")
    return paths.run_dir


def test_merge_tool_merges_shards_and_writes_original_and_llava_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [_llava_record(f"img/{i:03d}.jpg") for i in range(10)]
    run_dir = _make_sharded_run(tmp_path, "llava_vig", records)
    assert main([str(run_dir), "--llava-export", str(tmp_path / "llava.json")]) == 0
    out = capsys.readouterr().out
    assert "llava_vig: 10 record(s)" in out and "1 input(s) failed" in out
    merged = [json.loads(line)["key"] for line in (run_dir / "merged.jsonl").read_text().splitlines()]
    assert merged == sorted(r["key"] for r in records)
    assert len(_load(run_dir / "llava_qa_result.json")) == 10
    assert len(_load(tmp_path / "llava.json")) == 10
    assert main([str(run_dir)]) == 0  # idempotent


def test_records_without_vig_answer_merge_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Default-mode runs without `run.vig_answer` write `original_answer: null`: merging keeps it, the original's
    result file has the field (null), and the LLaVA export, which takes VIC's answer, is unchanged."""
    records = [_llava_record(f"img/{i:03d}.jpg", image_id=i, original_answer=None) for i in range(4)]
    run_dir = _make_sharded_run(tmp_path, "llava_vig", records)
    assert main([str(run_dir), "--llava-export", str(tmp_path / "llava.json")]) == 0
    assert "llava_vig: 4 record(s)" in capsys.readouterr().out
    merged = [json.loads(line) for line in (run_dir / "merged.jsonl").read_text().splitlines()]
    assert [r["original_answer"] for r in merged] == [None] * 4
    result = _load(run_dir / "result" / "eval_epochbest.json")
    assert len(result) == 4 and all("original_answer" in e and e["original_answer"] is None for e in result)
    llava = _load(tmp_path / "llava.json")
    assert [e["conversations"][1]["value"] for e in llava] == ["A red cup. It is full."] * 4


def test_merge_tool_writes_question_json_for_the_question_task(tmp_path: Path) -> None:
    records = [
        {"key": f"{i}.jpg", "image": f"{i}.jpg", "question": f"q{i}?", "ori_answer": "a"}
        | {"question_answer": f"Question: q{i}? Answer: a"}  # the raw output: the original's question.json parses it
        for i in range(4)
    ]
    run_dir = _make_sharded_run(tmp_path, "vqg_question", records, shards=2)
    assert main([str(run_dir)]) == 0
    assert [e["question"] for e in _load(run_dir / "question.json")] == ["q0?", "q1?", "q2?", "q3?"]
    assert _load(run_dir / "result" / "question.json") == [
        {"image": f"{i}.jpg", "question": f"q{i}?", "ori_answer": "a"} for i in range(4)
    ]


def test_merge_tool_bad_input_exits_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "run.json does not exist" in capsys.readouterr().err
    (tmp_path / "run.json").write_text(json.dumps({"task": "caption"}))
    assert main([str(tmp_path)]) == 2
    assert "names the task 'caption'" in capsys.readouterr().err
    (tmp_path / "run.json").write_text(json.dumps({"task": "llava_vig"}))
    assert main([str(tmp_path)]) == 2
    assert "No records.*.jsonl files" in capsys.readouterr().err


def test_merge_tool_runs_as_a_module(tmp_path: Path) -> None:
    run_dir = _make_sharded_run(tmp_path, "llava_vig", [_llava_record("a.jpg")], shards=1)
    result = subprocess.run(
        [sys.executable, "-m", "vigc.tools.merge_records", str(run_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 1 element(s)" in result.stdout
