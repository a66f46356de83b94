"""The `vigc` command: help without torch, a real generation from an empty folder, the old scripts, --print-config."""

from __future__ import annotations

import ast
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import vigc
from vigc.cli import demo, export, report
from vigc.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(vigc.__file__).resolve().parent / "assets" / "sample_images"
DEFAULT_CFG = "vigc/projects/default/generate_qa.yaml"
FAST = ["run.generate_cfg.max_len=16", "run.generate_cfg.num_beams=1", "run.max_sentences=2", "run.fsync=false"]
HAS_DATA_EXPORT = importlib.util.find_spec("vigc.generation.data_export") is not None
# Runs `vigc.cli.main.main(argv)` and prints which heavy libraries that imported (argv: JSON in sys.argv[1]).
PROBE = """
import json, sys
from vigc.cli.main import main
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("torch", "transformers", "gradio", "omegaconf") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _env() -> dict[str, str]:
    """This checkout's package first, whatever is installed; one thread (the machine is shared)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(args: list[str], cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """The commands configure the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


HELP_CASES = [["--help"]] + [[name, "--help"] for name in COMMANDS if name != "export" or HAS_DATA_EXPORT]


@pytest.mark.parametrize("argv", HELP_CASES, ids=[" ".join(a) for a in HELP_CASES])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    result = _run([sys.executable, "-c", PROBE, json.dumps(argv)])
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe == {"code": 0, "heavy": []}, result.stderr
    assert "usage: " in result.stdout


def test_help_shows_examples_on_their_own_lines_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "\nexamples:\n  vigc report --model default --scenes 300 --seed 999\n" in text
    assert "(default: 200)" in text and "(default: compat default verify)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    for name in COMMANDS:
        assert f"\n    {name}" in listing


def test_the_report_command_knows_every_vic_mode() -> None:
    from vigc.eval.shapes_report import VIC_ANSWER_FIELDS

    assert report.VIC_MODES == tuple(VIC_ANSWER_FIELDS)


def test_generate_from_an_empty_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for sample in sorted(SAMPLES.glob("*.png"))[:2]:
        shutil.copy(sample, images)
    command = [sys.executable, "-m", "vigc.cli.main", "generate", "--cfg-path", DEFAULT_CFG]
    result = _run([*command, "--options", *FAST, "datasets.image_folder.images=images"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "output" / "default").iterdir()  # relative to the working directory
    relative = run_dir.relative_to(tmp_path)
    assert result.stdout.splitlines()[-1] == f"records: {relative}  (resume with --run-id {run_dir.name})"
    records = [json.loads(line) for line in (run_dir / "merged.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(p.name for p in images.iterdir())
    for record in records:  # greedy decoding of the packaged model: both images give valid QA
        assert record["valid"] and record["question"] and record["answer"]
        assert record["provenance"]["model"]["arch"] == "vigc_default"
    assert (run_dir / "result" / "eval_epochbest.json").is_file()
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["run"]["generate_cfg"]["max_len"] == 16  # the resolved config, overrides applied
    # the packaged scenes' ground truth, named as in the README, from this folder too
    report_args = ["report", "--records", str(relative), "--ground-truth", "vigc/assets/sample_images", "--json"]
    scored = _run([sys.executable, "-m", "vigc.cli.main", *report_args], cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert json.loads(scored.stdout)["header"] == f"2 records from {relative}"
    report_args[4] = "pkg://vigc/assets/sample_images"  # as the packaged configs name it
    rescored = _run([sys.executable, "-m", "vigc.cli.main", *report_args], cwd=tmp_path)
    assert rescored.returncode == 0, rescored.stderr[-3000:]
    assert json.loads(rescored.stdout) == json.loads(scored.stdout)


@pytest.mark.parametrize("script", ["evaluate.py", "train.py", "vigc_demo.py"])
def test_the_original_scripts_still_parse_their_arguments(script: str) -> None:
    result = _run([sys.executable, str(REPO / script), "--help"])
    assert result.returncode == 0, result.stderr
    assert f"usage: {script} " in result.stdout and "--cfg-path" in result.stdout
    assert _run([sys.executable, str(REPO / script), "--no-such-flag"]).returncode == 2


@pytest.mark.parametrize(
    "module", ["vigc.tools.merge_records", "vigc.tools.export_hf", "vigc.tools.check_parity", "vigc.eval.shapes_report"]
)
def test_the_python_m_programs_still_run(module: str) -> None:
    result = _run([sys.executable, "-m", module, "--help"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")


@pytest.mark.parametrize(
    ("command", "config", "option", "path"),
    [
        ("train", "vigc/projects/default/train_shapes.yaml", "run.max_iters=7", ("run", "max_iters")),
        ("generate", DEFAULT_CFG, "run.llava_task=conv", ("run", "llava_task")),
    ],
)
def test_print_config_prints_the_resolved_yaml_with_overrides(
    command: str, config: str, option: str, path: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--cfg-path", config, "--options", option, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert str(printed[path[0]][path[1]]) == option.split("=")[1]
    assert "model" in printed and "datasets" in printed


def test_demo_without_gradio_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name)
    )
    assert main(["demo", "--device0", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {demo.MISSING_GRADIO}\n" and "vigc[demo]" in err


def test_export_without_its_module_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "vigc.generation.data_export", None)  # import fails as if not installed
    assert main(["export", "RUN", "--format", "parquet", "--out", "x"]) == 2
    assert "vigc export needs the module 'vigc.generation.data_export'" in capsys.readouterr().err
    assert export.PASS_THROUGH


@pytest.mark.skipif(not HAS_DATA_EXPORT, reason="vigc.generation.data_export is not in this checkout")
def test_export_hands_its_arguments_to_the_exporter(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["export", "--help"])
    except SystemExit as exc:  # argparse's --help
        code = exc.code
    assert code == 0
    assert "--format" in capsys.readouterr().out


def test_the_console_script_is_this_main() -> None:
    setup = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    scripts = [
        node.value
        for node in ast.walk(setup)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("vigc=")
    ]
    assert scripts == ["vigc=vigc.cli.main:main"]
    module, _, function = scripts[0].removeprefix("vigc=").partition(":")
    assert getattr(importlib.import_module(module), function) is main
