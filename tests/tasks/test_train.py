"""Training: a tiny model learns a synthetic task end to end through train.py, and the pieces behave."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _train_helpers import (
    dataset_entry,
    only_run_dir,
    read_metrics,
    tiny_config,
    train_main,
    write_annotations,
    write_scenes,
)
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vigc.errors import ConfigError
from vigc.tasks.train import TrainSettings, training_task
from vigc.training.data import plan_run_length
from vigc.training.optim import LRSchedule, build_optimizer, decay_groups
from vigc.training.state import Progress, checkpoint_name, find_checkpoint


@pytest.fixture()
def scene_data(tmp_path: Path) -> dict[str, str]:
    """Annotation files for 32 training and 8 evaluation scenes: which colour is the shape?"""
    train_files = write_annotations(tmp_path, write_scenes(tmp_path, 32, seed=1), "train")
    eval_files = write_annotations(tmp_path, write_scenes(tmp_path, 8, seed=2), "eval")
    return {"train": train_files["okvqa"], "eval": eval_files["okvqa"]}


def test_tiny_model_learns_and_validation_improves(
    tmp_path: Path, reference_fixture: Path, scene_data: dict[str, str]
) -> None:
    datasets = {
        "instruct_blip_okvqa_vig": dataset_entry(scene_data["train"], tmp_path),
        "instruct_blip_okvqa_vic": dataset_entry(scene_data["train"], tmp_path),
        "instruct_blip_okvqa_vig_eval": dataset_entry(scene_data["eval"], tmp_path, ratio=None, split="eval"),
    }
    run = {
        "max_iters": 300,
        "iters_per_inner_epoch": 50,
        "batch_size_train": 8,
        "init_lr": 3e-3,
        "min_lr": 1e-3,
        "warmup_steps": 10,
        "log_freq": 10,
        "max_grad_norm": 1.0,
        "keep_last_checkpoints": 1,
    }
    # The LLM is trained too: a frozen random 2-layer LLM can hardly be steered by 8 prefix tokens.
    config = tiny_config(tmp_path, reference_fixture, datasets=datasets, run=run, model={"freeze_llm": False})

    assert train_main(["--cfg-path", str(config)]) == 0

    run_dir = only_run_dir(tmp_path / "output")
    losses = [record["loss"] for record in read_metrics(run_dir, "train")]
    assert len(losses) == 30
    assert losses[-1] < 0.25 * losses[0], losses
    validations = read_metrics(run_dir, "val")
    accuracies = [record["instruct_blip_okvqa_vig_eval/vqa_acc"] for record in validations]
    assert [record["iteration"] for record in validations] == [50, 100, 150, 200, 250, 300]
    assert accuracies[0] == 0.0 and max(accuracies[-3:]) >= 37.5, accuracies
    # keep_last_checkpoints=1 leaves the final checkpoint only; the best weights are kept apart.
    assert [p.name for p in run_dir.glob("checkpoint_*")] == [checkpoint_name(300)]
    assert (run_dir / "best" / "model.safetensors").is_file()
    assert (run_dir / "validation" / "instruct_blip_okvqa_vig_eval_00000300.jsonl").is_file()
    assert {"samples_per_s", "tokens_per_s", "eta_s", "lr", "grad_norm"} <= set(read_metrics(run_dir, "train")[0])


def test_epoch_based_run_derives_max_iters(tmp_path: Path, reference_fixture: Path, scene_data: dict[str, str]) -> None:
    """A config with max_epoch and no max_iters (the original crashed on these) runs whole epochs."""
    datasets = {
        "instruct_blip_okvqa_vig": dataset_entry(scene_data["train"], tmp_path),
        "instruct_blip_okvqa_vic": dataset_entry(scene_data["eval"], tmp_path),
    }
    run = {"runner": "runner_iter", "max_epoch": 2, "batch_size_train": 10, "accum_grad_iters": 2}
    config = tiny_config(tmp_path, reference_fixture, datasets=datasets, run=run)

    assert train_main(["--cfg-path", str(config)]) == 0

    run_dir = only_run_dir(tmp_path / "output")
    # 32 + 8 records, 10 per batch: 4 iterations per epoch; 2 epochs; an optimizer step every 2 iterations.
    assert [record["iteration"] for record in read_metrics(run_dir, "train")] == list(range(1, 9))
    assert [p.name for p in sorted(run_dir.glob("checkpoint_*"))] == [checkpoint_name(4), checkpoint_name(8)]
    assert read_metrics(run_dir, "val") == []  # no evaluation set in this config


def test_train_py_reports_config_errors(tmp_path: Path, reference_fixture: Path, scene_data: dict[str, str]) -> None:
    datasets = {"instruct_blip_okvqa_vig": dataset_entry(scene_data["train"], tmp_path)}
    config = tiny_config(tmp_path, reference_fixture, datasets=datasets, run={"max_iters": 2})
    assert train_main(["--cfg-path", str(config), "--options", "run.max_iter=3"]) == 2
    assert not (tmp_path / "output").exists()


def _run_config(**run: object) -> DictConfig:
    return OmegaConf.create({"model": {"arch": "vigc_model"}, "run": {"task": "instruct_blip_vqa", **run}})


def test_run_section_is_checked_against_one_signature() -> None:
    task = training_task(
        _run_config(max_iters=10, generate_cfg={"max_len": 12, "min_len": 3, "num_beams": 5}), source="x"
    )
    assert task.validation == "vqa" and task.settings.max_iters == 10
    assert task.generate.decoding().max_new_tokens == 11  # LAVIS counted the hidden BOS
    with pytest.raises(ConfigError, match="unknown key 'max_iter'.*did you mean 'max_iters'"):
        training_task(_run_config(max_iter=10), source="x")
    with pytest.raises(ConfigError, match="key 'init_lr' expects float"):
        training_task(_run_config(init_lr="fast"), source="x")
    with pytest.raises(ConfigError, match="run.generate_cfg.*unknown key 'beams'"):
        training_task(_run_config(generate_cfg={"beams": 5}), source="x")
    with pytest.raises(ConfigError, match="Unknown task 'instruct_blip_vqaa'"):
        training_task(OmegaConf.create({"run": {"task": "instruct_blip_vqaa"}}), source="x")
    caption = training_task(
        OmegaConf.create({"run": {"task": "instruct_blip_caption", "milestone": [1, 2]}}), source="x"
    )
    assert caption.validation == "caption" and list(caption.settings.milestone) == [1, 2]


def test_run_length_from_iterations_or_epochs() -> None:
    by_iters = plan_run_length(
        max_iters=60000, max_epoch=None, iters_per_inner_epoch=2000, num_records=10, global_batch=64, source="x"
    )
    assert (by_iters.max_iters, by_iters.inner_epoch) == (60000, 2000)
    by_epochs = plan_run_length(
        max_iters=None, max_epoch=5, iters_per_inner_epoch=None, num_records=1000, global_batch=64, source="x"
    )
    assert (by_epochs.max_iters, by_epochs.iters_per_epoch, by_epochs.inner_epoch) == (80, 16, 16)
    with pytest.raises(ConfigError, match="max_iters.*max_epoch"):
        plan_run_length(
            max_iters=None, max_epoch=None, iters_per_inner_epoch=None, num_records=1, global_batch=1, source="x"
        )


def test_lr_schedule_warms_up_then_follows_a_cosine() -> None:
    schedule = LRSchedule(init_lr=3e-5, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=1000, max_iters=61000)
    assert schedule.lr_at(0) == pytest.approx(1e-6)
    assert schedule.lr_at(500) == pytest.approx(1e-6 + 0.5 * (3e-5 - 1e-6))
    assert schedule.lr_at(1000) == pytest.approx(3e-5)
    assert schedule.lr_at(31000) == pytest.approx(2e-5)
    assert schedule.lr_at(61000) == pytest.approx(1e-5)
    values = [schedule.lr_at(i) for i in range(1000, 61001, 1000)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_no_weight_decay_on_biases_norms_and_vectors() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    decayed, plain = decay_groups(model, 0.05)
    assert [tuple(p.shape) for p in decayed["params"]] == [(4, 4)]
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0.0
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.05)
    assert optimizer.defaults["betas"] == (0.9, 0.999)
    assert isinstance(optimizer, torch.optim.AdamW)


def test_settings_defaults_are_the_original_recipe() -> None:
    settings = TrainSettings()
    assert (settings.init_lr, settings.min_lr, settings.warmup_lr, settings.weight_decay) == (3e-5, 1e-5, 1e-6, 0.05)
    assert math.isclose(settings.beta2, 0.999) and settings.seed == 42


def test_find_checkpoint_takes_the_newest_complete_one(tmp_path: Path) -> None:
    for iteration in (4, 8):
        folder = tmp_path / checkpoint_name(iteration)
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        (folder / "training_state.pt").write_bytes(b"")
    (tmp_path / (checkpoint_name(12) + ".tmp")).mkdir()  # a save interrupted by a kill
    assert find_checkpoint(tmp_path).name == checkpoint_name(8)
    assert find_checkpoint(tmp_path / checkpoint_name(4)).name == checkpoint_name(4)
    with pytest.raises(Exception, match="No training checkpoint"):
        find_checkpoint(tmp_path / "nothing")
    assert Progress().iteration == 0
