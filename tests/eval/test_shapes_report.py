"""The data-quality report end to end on the embedded default model (few scenes, greedy), and its errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from vigc.cli.report import main
from vigc.data.shapes import image_name, read_scenes, write_dataset
from vigc.data.shapes_questions import QUESTION_TYPES


def test_generates_scores_and_rescores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    threads = torch.get_num_threads()
    argv = ["--scenes", "3", "--seed", "999", "--beams", "1", "--max-len", "80", "--threads", "2", "--out", str(out)]
    assert main(argv) == 0
    assert torch.get_num_threads() == threads  # the caller's setting is left alone (other tests compare bitwise)
    table = capsys.readouterr().out
    vig = ["VIG only (original_answer)", "default VIG only (original_answer)"]  # whole output; default's continued
    columns = [*vig, "compat VIC (answer)", "default VIC (answer)", "verify VIC (answer)"]
    for task in ("all", "conv", "desc", "comp"):
        for row in columns:
            assert f"| {task} | {row} |" in table
    assert "| task | answers | s1 |" in table and "| mode | task | questions | distinct/100 |" in table
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 3 * 3  # scenes x tasks x modes
    assert {r["mode"] for r in records} == {"compat", "default", "verify"} and all(r["question"] for r in records)
    for record in (r for r in records if r["mode"] == "default" and r["valid"]):  # VIG's answer after its question
        assert record["original_answer"] and record["vig_output"].endswith(f"Answer: {record['original_answer']}")
    assert (out / "report.md").read_text().strip() == table.strip()

    truth = write_dataset(tmp_path / "scenes", 3, 999)  # the same held-out scenes, with their ground truth on disk
    assert main(["--records", str(out / "records.jsonl"), "--ground-truth", str(truth)]) == 0
    rescored = capsys.readouterr().out
    assert "27 records from" in rescored
    assert rescored.split("\n\n", 1)[1] == table.split("\n\n", 1)[1]  # the same tables, after the header
    assert main(["--records", str(out / "records.jsonl"), "--ground-truth", str(truth), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == {**json.loads((out / "report.json").read_text()), "header": data["header"]}
    assert list(data["summary"]["all"]) == columns
    assert data["diversity"]["default"]["all"]["questions"] == 9


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = Path(__file__).resolve().parents[2] / "vigc" / "assets" / "sample_images"
    assert main(["--records", str(tmp_path / "missing"), "--ground-truth", str(samples)]) == 2
    assert "error:" in capsys.readouterr().err
    run = tmp_path / "run.jsonl"
    run.write_text(json.dumps({"image": "elsewhere.png", "question": "q", "answer": "a"}) + "\n")
    assert main(["--records", str(run), "--ground-truth", str(samples)]) == 2
    assert "no ground truth for image 'elsewhere.png'" in capsys.readouterr().err
    assert main(["--records", str(run), "--ground-truth", str(samples / "README.md")]) == 2
    assert "is not a scenes.json" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["--records", str(tmp_path / "empty.jsonl"), "--ground-truth", str(samples)]) == 2
    assert "no records in" in capsys.readouterr().err
    assert main(["--records", str(run)]) == 2
    assert "--records needs --ground-truth" in capsys.readouterr().err


def test_json_output_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = write_dataset(tmp_path / "scenes", 1, 5)
    scene = read_scenes(truth)[image_name(5, 0)]
    description = " ".join(QUESTION_TYPES["q_describe"].answer(scene, {}))
    record = {"image": scene.image, "task": "desc", "question": "Describe the image in detail."}
    run = tmp_path / "run.jsonl"
    run.write_text(json.dumps({**record, "original_answer": description, "answer": description}) + "\n")
    assert main(["--records", str(run), "--ground-truth", str(truth), "--json"]) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert data["summary"]["desc"]["VIC (answer)"]["fully_correct"] == 1.0
    assert data["summary"]["conv"]["VIC (answer)"]["fully_correct"] is None  # no conv records: undefined
    assert data["diversity"]["run"]["desc"]["questions"] == 1


def test_sampled_vig_is_seeded_and_vic_keeps_the_beams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--sampled-vig` draws VIG as `run.samples_per_image`'s later samples do (VIC steps keep the beams), the same
    way on every run of the same seed."""
    from vigc.cli.report import add_arguments
    from vigc.eval import shapes_report

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = shapes_report._settings(
        "default", parser.parse_args(["--sampled-vig", "--beams", "3", "--verify-margin", "0.5"])
    )
    assert settings.vig_decoding.do_sample and settings.vig_decoding.num_beams == 1
    assert settings.vic_decoding is not None and settings.vic_decoding.num_beams == 3
    assert not settings.vic_decoding.do_sample and settings.vig_answer  # VIG's sampled answer is the VIG row

    runs = []
    for name in ("a", "b"):
        argv = ["--scenes", "2", "--modes", "default", "--beams", "2", "--max-len", "60", "--sampled-vig"]
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        assert "VIG sampled" in capsys.readouterr().out
        runs.append((tmp_path / name / "records.jsonl").read_text())
    assert runs[0] == runs[1]


def test_vic_early_stopping_flag_reaches_the_settings() -> None:
    """`--vic-early-stopping` / `--no-vic-early-stopping` set `run.vic_early_stopping`; without either, its default."""
    from vigc.cli.report import add_arguments
    from vigc.eval import shapes_report
    from vigc.generation.vic import VICSettings

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for argv, expected in (
        (["--vic-early-stopping"], True),
        (["--no-vic-early-stopping"], False),
        ([], VICSettings.vic_early_stopping),
    ):
        settings = shapes_report._settings("default", parser.parse_args([*argv, "--verify-margin", "0.5"]))
        assert settings.vic_early_stopping is expected, argv
