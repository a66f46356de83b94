"""Two processes under torchrun (gloo, CPU) train like one process with the same global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _train_helpers import (
    dataset_entry,
    final_weights,
    only_run_dir,
    read_metrics,
    run_train_py,
    tiny_config,
    write_annotations,
    write_scenes,
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path, reference_fixture: Path) -> None:
    # One answer for every record: each rank's batch then has as many target tokens as the other's, so the mean
    # of the per-rank token means (DDP) equals the token mean of the whole batch (one process).
    files = write_annotations(tmp_path, write_scenes(tmp_path, 16, seed=7, colors=("red",)), "train")
    datasets = {
        "instruct_blip_okvqa_vig": dataset_entry(files["okvqa"], tmp_path),
        "instruct_blip_okvqa_vic": dataset_entry(files["okvqa"], tmp_path),
    }
    run = {
        "max_iters": 6,
        "accum_grad_iters": 2,
        "warmup_steps": 0,
        "init_lr": 1e-3,
        "min_lr": 1e-3,
        "disable_dropout": True,  # each rank draws other dropout masks than a single process would
        "seed": 3,
    }
    config = tiny_config(tmp_path, reference_fixture, datasets=datasets, run=run)

    one, two = tmp_path / "one", tmp_path / "two"
    run_train_py(["--cfg-path", str(config), "--options", f"run.output_dir={one}", "run.batch_size_train=4"])
    run_train_py(
        ["--cfg-path", str(config), "--options", f"run.output_dir={two}", "run.batch_size_train=2"], torchrun=2
    )

    single, double = only_run_dir(one), only_run_dir(two)
    assert "world_size: 2" in (double / "run.yaml").read_text()
    expected, got = final_weights(single), final_weights(double)
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-4, msg=name)
    # Logged losses are means over both ranks: the same as the single process's.
    losses_one = [r["loss"] for r in read_metrics(single, "train")]
    losses_two = [r["loss"] for r in read_metrics(double, "train")]
    assert losses_two == pytest.approx(losses_one, rel=1e-4)
    samples = [r["samples_per_s"] for r in read_metrics(double, "train")]
    assert all(s > 0 for s in samples)
