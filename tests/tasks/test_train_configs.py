"""Every shipped training config validates, and trains 2 iterations on tiny weights with paths set by --options."""

from __future__ import annotations

from pathlib import Path

import pytest
from _train_helpers import (
    REPO_ROOT,
    TINY_MODEL,
    annotation_kind,
    only_run_dir,
    read_metrics,
    train_main,
    write_annotations,
    write_scenes,
)

from vigc.builtins import register_all
from vigc.config import load_config
from vigc.registry import DATASETS
from vigc.tasks.train import training_task
from vigc.training.state import checkpoint_name

PROJECTS = REPO_ROOT / "vigc" / "projects"
TRAINING_CONFIGS = sorted(PROJECTS.glob("*/vigc/*/*.yaml"))
EXPECTED = {
    "instruct_blip_vicuna7b/vigc/a-okvqa/normal_vigc.yaml": "instruct_blip_vqa",
    "instruct_blip_vicuna7b/vigc/a-okvqa/lora_vig.yaml": "instruct_blip_vqa",
    "instruct_blip_vicuna7b/vigc/okvqa/normal_vigc.yaml": "instruct_blip_vqa",
    "instruct_blip_vicuna7b/vigc/okvqa/lora_vig.yaml": "instruct_blip_vqa",
    "instruct_blip_vicuna7b/vigc/llava-150k/normal_vig.yaml": "instruct_blip_caption",
    "mini_gpt4_vicuna7b/vigc/llava-150k/normal_vigc.yaml": "instruct_blip_caption",
    "mini_gpt4_vicuna13b/vigc/llava-150k/normal_vigc.yaml": "instruct_blip_caption",
    "mini_gpt4_vicuna13b/vigc/llava-150k/lora_vig.yaml": "instruct_blip_caption",
}


def _name(path: Path) -> str:
    return str(path.relative_to(PROJECTS))


def test_the_original_training_configs_are_all_shipped() -> None:
    assert sorted(map(_name, TRAINING_CONFIGS)) == sorted(EXPECTED)


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=_name)
def test_shipped_config_validates(path: Path) -> None:
    register_all()
    cfg = load_config(path)
    task = training_task(cfg, source=str(path))
    assert task.name == EXPECTED[_name(path)]
    assert all(name in DATASETS for name in cfg.datasets)
    settings = task.settings
    assert (settings.init_lr, settings.min_lr, settings.warmup_lr, settings.warmup_steps) == (3e-5, 1e-5, 1e-6, 1000)
    assert (settings.batch_size_train, settings.accum_grad_iters, settings.amp) == (8, 2, True)
    assert (settings.max_iters is None) == ("mini_gpt4" in _name(path))  # those runs are given in epochs


def _tiny_options(cfg_path: Path, data: Path, files: dict[str, str], fixture: Path, output: Path) -> list[str]:
    """--options that point a shipped config at the tiny fixture model and the synthetic annotations."""
    cfg = load_config(cfg_path)
    options = [
        f"model.llm_model={fixture / 'llm'}",
        f"model.qformer_tokenizer={fixture / 'bert_base_uncased_tiny'}",
        f"model.vit_model={fixture / 'eva_vit_tiny.pth'}",
        "model.pretrained=",
        "model.finetuned=",
        *(f"model.{key}={value}" for key, value in TINY_MODEL.items()),
        "run.max_iters=2",
        "run.log_freq=1",
        "run.device=cpu",
        "run.num_workers=0",
        "run.batch_size_train=2",
        "run.batch_size_eval=2",
        "run.max_eval_items=2",
        "run.num_eval_samples=1",
        "run.generate_cfg.max_len=4",
        "run.generate_cfg.min_len=1",  # the LLaVA configs ask for 8; min_len > max_len is refused
        "run.generate_cfg.num_beams=2",
        f"run.output_dir={output}",
    ]
    for name, entry in cfg.datasets.items():
        split = "eval" if str(name).endswith("_eval") else "train"
        options += [
            f"datasets.{name}.build_info.annotation={files[annotation_kind(str(name))]}",
            f"datasets.{name}.build_info.images={data}",
            f"datasets.{name}.vis_processor.{split}.image_size={TINY_MODEL['image_size']}",
        ]
        assert entry.vis_processor[split].image_size == 224
    return options


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=_name)
def test_shipped_config_trains_two_iterations(path: Path, tmp_path: Path, reference_fixture: Path) -> None:
    files = write_annotations(tmp_path, write_scenes(tmp_path, 6, seed=11), "data")
    options = _tiny_options(path, tmp_path, files, reference_fixture, tmp_path / "output")

    assert train_main(["--cfg-path", str(path), "--options", *options]) == 0

    run_dir = only_run_dir(tmp_path / "output")
    assert (run_dir / checkpoint_name(2) / "model.safetensors").is_file()
    assert [record["iteration"] for record in read_metrics(run_dir, "train")] == [1, 2]
    (validation,) = read_metrics(run_dir, "val")  # at the end of the run
    metric = "vqa_acc" if EXPECTED[_name(path)] == "instruct_blip_vqa" else "loss"
    assert any(key.endswith(f"/{metric}") for key in validation)
