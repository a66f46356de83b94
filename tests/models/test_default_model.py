"""The embedded default model: the shipped weights load, generate grounded QA, and the default configs work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vigc.builtins import register_all
from vigc.config import load_config, validate_builder_kwargs, validate_config
from vigc.data.images import load_rgb
from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.data.shapes import read_scenes
from vigc.data.shapes_questions import parse_question
from vigc.generation.parsing import parse_question_answer
from vigc.generation.sources import image_folder
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import DEFAULT_ASSETS, DEFAULT_DIMS, vigc_default
from vigc.models.vigc_model import VIGCModel
from vigc.registry import MODELS, TASKS

REPO = Path(__file__).resolve().parents[2]
SAMPLES = DEFAULT_ASSETS.parent / "sample_images"


@pytest.fixture(scope="module")
def model() -> VIGCModel:
    return vigc_default()


def test_assets_are_small_and_complete() -> None:
    files = [p for p in DEFAULT_ASSETS.rglob("*") if p.is_file()]
    names = {p.relative_to(DEFAULT_ASSETS).as_posix() for p in files}
    assert {"model.safetensors", "llm/model.safetensors", "llm/tokenizer.model", "qformer_tokenizer/vocab.txt"} <= names
    assert "README.md" in names
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20


def test_registered_with_packaged_defaults() -> None:
    register_all()
    assert MODELS.get("vigc_default") is vigc_default
    validate_builder_kwargs(vigc_default, {"device": "cpu", "finetuned": "x.safetensors"}, section="model", source="t")


def test_shipped_weights_load_completely(model: VIGCModel) -> None:
    (report,) = model.load_reports
    assert report.loaded and not report.unexpected and not report.mismatched
    assert all(name.startswith("language_model.") for name in report.missing)  # the LLM has its own directory
    assert model.vision_model.config.image_size == DEFAULT_DIMS["image_size"]
    assert model.llm_tokenizer.bos_token_id == model.llm_tokenizer.eos_token_id == 2


def test_generates_questions_about_the_sample_images(model: VIGCModel) -> None:
    scenes = read_scenes(SAMPLES)
    names = sorted(scenes)
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    pixels = torch.stack([processor(load_rgb(SAMPLES / name)) for name in names])
    with torch.no_grad():
        out = model.generate(model.encode_images(pixels), GENERATION_INSTRUCTIONS["conv"], DecodingSettings())
    valid = 0
    for name, (text,) in zip(names, out.texts, strict=True):
        parsed = parse_question_answer(text)
        assert parsed is not None, text  # "Question: ... Answer: ..."
        question = parse_question(parsed[0], scenes[name])
        assert question is not None, parsed[0]  # a question of the scene language
        valid += question.valid
    assert valid >= len(names) // 2  # it asks about objects that are there (grounding, not just syntax)


def test_image_folder_reads_the_packaged_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the working directory plays no part
    source = image_folder(images="pkg://vigc/assets/sample_images", image_size=DEFAULT_DIMS["image_size"])
    assert len(source.items) == len(read_scenes(SAMPLES))


def test_generation_config_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("vigc_evaluate_entry", REPO / "evaluate.py")
    assert spec is not None and spec.loader is not None
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    cfg_path = REPO / "vigc" / "projects" / "default" / "generate_qa.yaml"
    register_all()
    cfg = load_config(cfg_path)
    validate_config(cfg, source=str(cfg_path))
    assert cfg.run.task in TASKS and cfg.run.generate_cfg.num_beams == 5
    options = [f"run.output_dir={tmp_path}", "run.generate_cfg.num_beams=1", "run.generate_cfg.max_len=60"]
    assert evaluate.main(["--cfg-path", str(cfg_path), "--options", *options]) == 0
    assert f"records: {tmp_path}" in capsys.readouterr().out
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (run_dir / "merged.jsonl").read_text().splitlines()]
    assert len(records) == len(read_scenes(SAMPLES))
    assert all(r["task"] == "desc" and r["question"] for r in records)
