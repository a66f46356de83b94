"""`vigc export` (python -m vigc.generation.data_export) on real run folders of every generation task."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from test_export import _llava_record, _make_sharded_run

from vigc.generation.data_export import main
from vigc.generation.records import read_run_records

REPO = Path(__file__).resolve().parents[2]


def _generate_helpers() -> ModuleType:
    """tests/tasks/test_generate.py's run builders (tiny model, images, evaluate.py in a subprocess)."""
    spec = importlib.util.spec_from_file_location("vigc_generate_helpers", REPO / "tests/tasks/test_generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(reference_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three small real runs: conv (3 sampled QA per image, compat VIC in paragraph mode), the gq -> ga passes."""
    gen = _generate_helpers()
    tmp = tmp_path_factory.mktemp("export_runs")
    images = gen.make_images(tmp / "images", reference_fixture, 3)
    conv = {**gen.LLAVA_RUN, "batch_size_eval": 3, "samples_per_image": 3, "diversity": "sampling"}
    conv |= {"vic_mode": "compat", "in_section": True, "answer_length": 2}  # compat paragraphs fill answer_lst
    gq = {"task": "instruct_blip_vqg", "generate_task": "gq", "data_type": "okvqa", "generate_cfg": {"max_len": 20}}
    for run_id, run in [("conv", conv), ("gq", gq)]:
        gen.evaluate("--cfg-path", str(gen.write_config(tmp, reference_fixture, images, run)), "--run-id", run_id)
    ga = {"task": "instruct_blip_vqg", "generate_task": "ga", "generate_cfg": {"max_len": 10, "num_beams": 3}}
    dataset = {
        "instruct_blip_given_q_coco2017_vig_test": {
            "annotation": str(tmp / "out" / "gq" / "question.json"),
            "build_info": {"images": str(images)},
            "vis_processor": {"eval": {"name": "blip_image_eval", "image_size": 56}},
        }
    }
    gen.evaluate("--cfg-path", str(gen.write_config(tmp, reference_fixture, images, ga, dataset)), "--run-id", "ga")
    return {run_id: tmp / "out" / run_id for run_id in ("conv", "gq", "ga")}


def _export(run_dir: Path, out: Path, *formats: str, extra: tuple[str, ...] = ()) -> Path:
    assert main([str(run_dir), "--format", *formats, "--out", str(out), *extra]) == 0
    return out


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_parquet_has_one_schema_for_every_task_and_loads_with_datasets(runs: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from datasets import load_dataset

    files = [_export(run, tmp_path / name, "parquet") / "data.parquet" for name, run in runs.items()]
    schemas = [pq.read_schema(file) for file in files]
    assert all(schema.equals(schemas[0]) for schema in schemas)
    data = load_dataset("parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(tmp_path / "c"))
    assert str(data.features["answer_lst"]) == "List(Value('string'))"
    assert str(data.features["weights"]) == "List(Value('float64'))"
    assert sorted(set(data["task"])) == ["conv", "ga", "gq"]
    assert len(data) == sum(pq.read_metadata(f).num_rows for f in files)
    rows = {(row["run_id"], row["id"]): row for row in data}
    records = {(name, r["key"]): r for name, run in runs.items() for r in read_run_records(run)}
    for (run_id, key), row in rows.items():
        record = records[(run_id, key)]
        assert row["question"] == record["question"].strip() and record.get("valid") is not False
        if run_id == "conv":
            assert (row["answer"], row["original_answer"]) == (record["answer"], record["original_answer"])
            assert row["answer_lst"] == record["answer_lst"] and row["answers"] == row["weights"] == []
        if run_id == "ga":
            assert (row["answers"], row["weights"]) == (record["answer"], record["weight"])
            assert row["answer"] == record["answer"][record["weight"].index(max(record["weight"]))].strip()
    conv_rows = [row for row in rows.values() if row["task"] == "conv"]
    assert conv_rows and all(row["answer_lst"] for row in conv_rows)  # compat paragraph mode fills it


def test_llava_groups_the_qa_of_an_image_and_no_group_matches_the_runs_llava_file(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    grouped = _load(_export(runs["conv"], tmp_path / "grouped", "llava") / "llava.json")
    records = read_run_records(runs["conv"])
    assert len(grouped) == len({r["image"] for r in records}) == 3
    for entry in grouped:
        turns = entry["conversations"]
        assert entry["id"] == entry["image"] and len(turns) % 2 == 0 and len(turns) >= 2
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<image>\n")
        assert not any("<image>" in t["value"] for t in turns[1:])
    distinct = {(r["image"], r["question"].strip(), r["answer"]) for r in records if r["valid"]}
    assert sum(len(e["conversations"]) for e in grouped) == 2 * len(distinct) > 2 * len(grouped)
    single = _load(_export(runs["conv"], tmp_path / "single", "llava", extra=("--no-group",)) / "llava.json")
    assert single == _load(runs["conv"] / "llava_train.json")  # what the run's own LLaVA export holds


def test_sharegpt_uses_messages_and_registers_with_llama_factory(runs: dict[str, Path], tmp_path: Path) -> None:
    out = _export(runs["ga"], tmp_path / "sharegpt", "sharegpt", "llava")
    entries, llava = _load(out / "sharegpt.json"), _load(out / "llava.json")
    assert len(entries) == len(llava)
    for entry, twin in zip(entries, llava, strict=True):
        assert entry["images"] == [twin["image"]] and entry["id"] == twin["id"]
        assert [m["content"] for m in entry["messages"]] == [t["value"] for t in twin["conversations"]]
        assert [m["role"] for m in entry["messages"]][:2] == ["user", "assistant"]
    info = _load(out / "dataset_info.json")
    assert info == {
        "vigc_ga": {
            "file_name": "sharegpt.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    }


def test_dpo_pairs_vic_corrections_against_vig_answers(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _export(runs["conv"], tmp_path / "dpo", "dpo")
    pairs = _load(out / "dpo.json")
    records = {r["key"]: r for r in read_run_records(runs["conv"])}
    usable = [r for r in records.values() if r["valid"] and r["question"].strip() and r["answer"].strip()]
    changed = [r for r in usable if " ".join(r["answer"].split()) != " ".join(r["original_answer"].split())]
    assert [p["id"] for p in pairs] == [r["key"] for r in changed] and pairs
    for pair in pairs:
        record = records[pair["id"]]
        assert pair["conversations"] == [{"from": "human", "value": f"<image>\n{record['question'].strip()}"}]
        assert (pair["chosen"]["value"], pair["rejected"]["value"]) == (record["answer"], record["original_answer"])
        assert pair["images"] == [record["image"]]
    assert f"dpo: {len(pairs)} pairs" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert f"Preference pairs (`dpo`): {len(pairs)} where VIC changed" in card
    assert f"{len(usable) - len(pairs)} QA left out as unchanged" in card
    assert _load(out / "dataset_info.json")["vigc_conv_dpo"]["ranking"] is True
    assert main([str(runs["ga"]), "--format", "dpo", "--out", str(tmp_path / "ga_dpo")]) == 2
    assert "only LLaVA-style (llava_vig) runs" in capsys.readouterr().err


def test_the_card_names_model_settings_counts_and_says_when_no_report_was_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = _export(runs["conv"], tmp_path / "card", "parquet", "llava")
    card = (out / "README.md").read_text()
    info = _load(runs["conv"] / "run.json")
    assert card.startswith("---\npretty_name: VIGC run conv\n")
    assert "- config_name: parquet\n  data_files: data.parquet\n  default: true" in card
    for key in ("llm_model", "vit_model", "pretrained"):
        assert f"- `{key}`: `{info['provenance']['model'][key]}`" in card
    assert '"num_beams": 2' in card and '"samples_per_image": 3' in card
    records = read_run_records(runs["conv"])
    usable = sum(bool(r["valid"] and r["question"].strip() and r["answer"].strip()) for r in records)
    assert f"| conv | {len(records)} | {usable} |" in card
    assert f"| `data.parquet` | parquet | {usable} | {usable} |" in card
    assert "## Quality\n\nNone: no quality report was run on this run." in card
    assert "| `answer_lst` | list<string> |" in card


def test_the_card_reports_quality_numbers_of_a_shapes_report(tmp_path: Path) -> None:
    from vigc.cli import report as shapes_report

    scenes = REPO / "vigc/assets/sample_images"
    image = sorted(scenes.glob("*.png"))[0].name
    answer = "There is a square."  # scored against the image's scene by the real report
    record = _llava_record(f"{image}#desc#0", image=image, task="desc", answer=answer, original_answer=answer)
    run_dir = _make_sharded_run(tmp_path, "llava_vig", [record], shards=1)
    assert shapes_report.main(["--records", str(run_dir), "--ground-truth", str(scenes), "--out", str(run_dir)]) == 0
    report = _load(run_dir / "report.json")
    card = (_export(run_dir, tmp_path / "out", "llava") / "README.md").read_text()
    assert f"From `{run_dir / 'report.json'}` ({report['header']})" in card
    label, values = next(iter(report["summary"]["all"].items()))
    precision = values["sentence_precision"]
    assert f"| all | {label} | {100 * values['fully_correct']:.1f} | {100 * precision:.1f} |" in card


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def error(*args: str) -> str:
        assert main(list(args)) == 2
        message = capsys.readouterr().err
        assert message.count("\n") == 1
        return message

    out = str(tmp_path / "out")
    assert "does not exist" in error(str(tmp_path / "missing"), "--format", "llava", "--out", out)
    assert "run.json does not exist" in error(str(tmp_path), "--format", "llava", "--out", out)
    empty = _make_sharded_run(tmp_path / "empty", "llava_vig", [], shards=1)
    assert "has no records yet" in error(str(empty), "--format", "llava", "--out", out)
    invalid = _make_sharded_run(tmp_path / "invalid", "llava_vig", [_llava_record("a.jpg", valid=False)], shards=1)
    assert "None of the 1 record(s)" in error(str(invalid), "--format", "parquet", "--out", out)
    run_dir = _make_sharded_run(tmp_path / "ok", "llava_vig", [_llava_record("a.jpg")], shards=1)
    (tmp_path / "a_file").write_text("x")
    assert "is a file" in error(str(run_dir), "--format", "llava", "--out", str(tmp_path / "a_file"))
    assert "Cannot write in --out" in error(str(run_dir), "--format", "llava", "--out", str(tmp_path / "a_file/sub"))
    with pytest.raises(SystemExit) as exit_info:
        main([str(run_dir), "--format", "csv", "--out", out])
    assert exit_info.value.code == 2 and "invalid choice: 'csv'" in capsys.readouterr().err
    assert not Path(out).exists()  # nothing was written on any error


def test_out_dir_must_be_empty_unless_overwriting_an_earlier_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _make_sharded_run(tmp_path, "llava_vig", [_llava_record("a.jpg"), _llava_record("b.jpg")], shards=1)
    out = _export(run_dir, tmp_path / "out", "llava", "dpo")
    assert main([str(run_dir), "--format", "parquet", "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err and not (out / "data.parquet").exists()
    _export(run_dir, out, "parquet", extra=("--overwrite",))
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data.parquet"]  # the earlier export is gone
    (out / "notes.txt").write_text("mine")
    assert main([str(run_dir), "--format", "llava", "--out", str(out), "--overwrite"]) == 2
    assert "not from an export (notes.txt)" in capsys.readouterr().err and (out / "data.parquet").exists()


def test_the_module_runs_and_parses_arguments_without_torch(tmp_path: Path) -> None:
    run_dir = _make_sharded_run(tmp_path, "llava_vig", [_llava_record("a.jpg")], shards=1)
    code = (
        "import sys; from vigc.generation import data_export as d; "
        "d.build_parser().parse_args(['RUN', '--format', 'parquet', '--out', 'X']); "
        "assert not {'torch', 'transformers'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
    command = [sys.executable, "-m", "vigc.generation.data_export", str(run_dir), "--format", "parquet"]
    result = subprocess.run([*command, "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "parquet: 1 rows (1 QA)" in result.stdout


def test_dpo_says_how_to_keep_vig_answers_when_a_run_has_none(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default VIC keeps VIG's answer only with run.vig_answer=true: without it there is nothing to pair."""
    run = tmp_path / "no_vig_answer"
    shutil.copytree(runs["conv"], run)
    (run / "merged.jsonl").unlink(missing_ok=True)
    for file in run.glob("records.*.jsonl"):
        records = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        file.write_text("".join(json.dumps({**r, "original_answer": None}) + "\n" for r in records), encoding="utf-8")
    _export(run, tmp_path / "dpo", "dpo")
    assert _load(tmp_path / "dpo" / "dpo.json") == []
    out = capsys.readouterr().out
    assert "dpo: 0 pairs" in out and "--options run.vig_answer=true" in out
