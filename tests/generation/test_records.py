"""Run folders and record files: unique run ids, durable appends, exactly-once across crashes and resumes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from vigc.generation.records import (
    RecordsError,
    RecordWriter,
    RunPaths,
    busy_record_files,
    json_line,
    merge_run,
    new_run_id,
    read_errors,
    read_records,
    read_run_info,
    write_run_info,
    writer_tag,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS = [f"train2017/{i:012d}.jpg" for i in range(40)]


def _raw_keys(run_dir: Path) -> list[str]:
    """Every complete record line's key in every records file (duplicates included)."""
    keys = []
    for path in sorted(run_dir.glob("records.*.jsonl")):
        keys += [json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines(keepends=True)]
    return keys


def test_run_ids_are_unique_and_safe() -> None:
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_id) for run_id in ids)


def test_run_paths_layout_and_explicit_run_id(tmp_path: Path) -> None:
    paths = RunPaths.create(tmp_path, "my-run_1")
    assert paths.run_dir == tmp_path / "my-run_1"
    assert paths.records(writer_tag(3, 8)) == tmp_path / "my-run_1" / "records.rank3.jsonl"
    assert paths.errors(writer_tag(0, 1, (2, 8))) == tmp_path / "my-run_1" / "errors.shard2of8.jsonl"
    assert paths.records(writer_tag(1, 4, (2, 8))).name == "records.shard2of8.rank1.jsonl"
    assert paths.run_info.name == "run.json" and paths.merged.name == "merged.jsonl"
    assert RunPaths.create(tmp_path).run_id != RunPaths.create(tmp_path).run_id
    for bad in ["..", "a/b", "", "-x", "a b"]:
        with pytest.raises(RecordsError, match="not usable as a folder name"):
            RunPaths(tmp_path, bad)


def test_writer_appends_utf8_lines_and_refuses_bad_records(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run")
    with RecordWriter(paths.records("rank0"), fsync=False) as writer:
        writer.write({"key": "a.jpg", "answer": "Ein Bär — 熊"})
        bad_records: list[dict[str, Any]] = [{"answer": "x"}, {"key": ""}, {"key": 3}]
        for bad in bad_records:
            with pytest.raises(ValueError, match="non-empty string 'key'"):
                writer.write(bad)
        with pytest.raises(ValueError, match="already in the run"):
            writer.write({"key": "a.jpg"})
        writer.write_error("b.jpg", "b.jpg", "b.jpg: empty file (0 bytes)")
    text = paths.records("rank0").read_text(encoding="utf-8")
    assert text == '{"key": "a.jpg", "answer": "Ein Bär — 熊"}\n'
    assert [(e["key"], e["reason"]) for e in read_errors(paths.run_dir)] == [("b.jpg", "b.jpg: empty file (0 bytes)")]
    with pytest.raises(ValueError, match="records.<tag>.jsonl"):
        RecordWriter(tmp_path / "out.jsonl")
    with pytest.raises(RuntimeError, match="not open"):
        RecordWriter(paths.records("rank1")).write({"key": "x"})


def test_crash_mid_line_then_resume_gives_each_key_exactly_once(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run")
    with RecordWriter(paths.records("rank0")) as writer:
        for key in KEYS[:10]:
            writer.write({"key": key, "question": "q", "answer": "a"})
    with open(paths.records("rank0"), "ab") as handle:  # the crash: half of the 11th record
        handle.write(json.dumps({"key": KEYS[10], "answer": "cut"}).encode()[:17])

    with RecordWriter(paths.records("rank0")) as writer:
        done = writer.done_keys()
        assert done == set(KEYS[:10])  # the torn record is not done
        for key in KEYS:
            if key not in done:
                writer.write({"key": key, "question": "q", "answer": "a"})

    assert sorted(_raw_keys(paths.run_dir)) == sorted(KEYS)  # the file is valid JSON Lines again, no duplicates
    merged = merge_run(paths.run_dir)
    assert [record["key"] for record in merged] == sorted(KEYS)
    assert [json.loads(line)["key"] for line in paths.merged.read_text().splitlines()] == sorted(KEYS)


def test_torn_tail_of_invalid_json_with_newline_is_removed_too(tmp_path: Path) -> None:
    path = RunPaths(tmp_path, "run").records("rank0")
    path.parent.mkdir()
    path.write_bytes(b'{"key": "a"}\n{"key": "b", "ans\n\x00\x00\x00')
    with RecordWriter(path) as writer:
        assert writer.done_keys() == {"a"}
        writer.write({"key": "b"})
    assert path.read_text() == '{"key": "a"}\n{"key": "b"}\n'


def test_resume_with_another_world_size_skips_keys_of_every_writer(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run")
    for rank in range(4):  # first run: 4 ranks, each did its first two items
        with RecordWriter(paths.records(writer_tag(rank, 4))) as writer:
            for key in KEYS[rank::4][:2]:
                writer.write({"key": key})
    for rank in range(2):  # resumed with 2 ranks
        with RecordWriter(paths.records(writer_tag(rank, 2))) as writer:
            done = writer.done_keys()
            for key in KEYS[rank::2]:
                if key not in done:
                    writer.write({"key": key})
    assert sorted(_raw_keys(paths.run_dir)) == sorted(KEYS)


def test_merge_drops_duplicates_keeps_first_and_sorts(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "records.rank0.jsonl").write_text('{"key": "b", "v": 0}\n{"key": "a", "v": 0}\n')
    (run_dir / "records.rank1.jsonl").write_text('{"key": "a", "v": 1}\n{"key": "c", "v": 1}\n{"key": "d"')
    assert [(r["key"], r.get("v")) for r in merge_run(run_dir)] == [("a", 0), ("b", 0), ("c", 1)]
    with pytest.raises(RecordsError, match="No records"):
        merge_run(tmp_path)


def test_second_writer_of_the_same_file_is_refused(tmp_path: Path) -> None:
    path = RunPaths(tmp_path, "run").records("shard0of2")
    with RecordWriter(path), pytest.raises(RecordsError, match="Another process is writing"):
        RecordWriter(path).open()
    with RecordWriter(path) as writer:  # released on close
        writer.write({"key": "x"})
        assert busy_record_files(path.parent) == [path]  # what the merge tool warns about
    assert busy_record_files(path.parent) == []


def test_run_info_is_written_and_resume_checks_the_task(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run")
    info = write_run_info(paths, task="llava_vig", config={"run": {"num_beams": 5}}, provenance={"model": "m"})
    assert read_run_info(paths.run_dir) == info
    assert info["task"] == "llava_vig" and info["config"] == {"run": {"num_beams": 5}}
    assert info["provenance"]["model"] == "m" and "python" in info["provenance"]
    again = write_run_info(paths, task="llava_vig", config={"run": {"num_beams": 5}})
    assert again["created"] == info["created"] and len(again["starts"]) == 2
    with pytest.raises(RecordsError, match="cannot be resumed as 'vqg_answer'"):
        write_run_info(paths, task="vqg_answer", config={})
    with pytest.raises(RecordsError, match="does not exist"):
        read_run_info(tmp_path)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from vigc.generation.records import RecordWriter
    path, index, count, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    keys = [f"img/{i:05d}.jpg" for i in range(total)][index::count]
    with RecordWriter(path) as writer:
        done = writer.done_keys()
        for key in keys:
            if key in done:
                continue
            time.sleep(0.003)  # the "model"
            writer.write({"key": key, "question": "q?", "answer": "a. " * (int(key[4:9]) % 300)})
    """
)


def test_sigkilled_writers_resumed_many_times_write_every_key_exactly_once(tmp_path: Path) -> None:
    total, rng = 1000, random.Random(1234)
    paths = RunPaths(tmp_path, "run")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for round_index in range(8):
        count = rng.choice([1, 2, 3])  # each resume uses another number of writers
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(paths.records(f"shard{i}of{count}")),
                    str(i),
                    str(count),
                    str(total),
                ],
                env=env,
            )
            for i in range(count)
        ]
        time.sleep(rng.uniform(0.15, 0.5))
        for child in children:
            child.send_signal(signal.SIGKILL)
            assert child.wait() == -signal.SIGKILL  # killed mid-run, not finished
        files = sorted(paths.run_dir.glob("records.*.jsonl"))
        if files and round_index % 2:  # and sometimes a torn write, as a power loss would leave
            with open(rng.choice(files), "ab") as handle:
                handle.write(b'{"key": "img/99999.jpg", "answ')
    final = subprocess.run(
        [sys.executable, "-c", _CHILD, str(paths.records("rank0")), "0", "1", str(total)], env=env, timeout=120
    )
    assert final.returncode == 0
    expected = [f"img/{i:05d}.jpg" for i in range(total)]
    done = [record["key"] for path in paths.run_dir.glob("records.*.jsonl") for record in read_records(path)]
    assert sorted(done) == expected  # no key written twice, none lost
    assert [record["key"] for record in merge_run(paths.run_dir)] == expected


def test_undecodable_file_names_are_written_losslessly_as_json_escapes(tmp_path: Path) -> None:
    name = os.fsdecode(b"photos/caf\xe9 \xff.jpg")  # surrogateescape: U+DCE9, U+DCFF
    line = json_line({"key": name, "image": name, "text": "naïve 東京"})
    line.encode("utf-8")  # strict UTF-8: no lone surrogate left
    assert "\\udce9" in line and "\\udcff" in line and "naïve 東京" in line  # other text stays readable
    assert os.fsencode(json.loads(line)["image"]) == b"photos/caf\xe9 \xff.jpg"
    with RecordWriter(tmp_path / "run" / "records.rank0.jsonl", fsync=False) as writer:
        writer.write({"key": name, "valid": True})
        writer.write_error(name + "#2", name, "cannot decode")
        assert writer.done_keys() == {name}  # a resume recognises the record
    merged = merge_run(tmp_path / "run")
    assert [os.fsencode(r["key"]) for r in merged] == [b"photos/caf\xe9 \xff.jpg"]
