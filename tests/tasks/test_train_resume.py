"""Exact resume: N iterations straight == N/2, SIGKILL, resume from the checkpoint, N/2 more (bitwise, on CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from _train_helpers import (
    REPO_ROOT,
    dataset_entry,
    final_weights,
    only_run_dir,
    read_metrics,
    tiny_config,
    train_main,
    write_annotations,
    write_scenes,
)

from vigc.training.state import STATE_FILE, checkpoint_name


def _start_and_kill_after(config: Path, output: Path, iteration: int, timeout: float = 240) -> Path:
    """Start train.py in a subprocess and SIGKILL it as soon as checkpoint ``iteration`` is complete."""
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "train.py"),
            "--cfg-path",
            str(config),
            "--options",
            f"run.output_dir={output}",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    try:
        while not list(output.glob(f"*/{checkpoint_name(iteration)}/{STATE_FILE}")):
            if process.poll() is not None:
                raise AssertionError(f"train.py ended before checkpoint {iteration}:\n{process.stderr.read()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("no checkpoint appeared in time")
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    return only_run_dir(output)


def test_resume_after_sigkill_gives_identical_weights(tmp_path: Path, reference_fixture: Path) -> None:
    files = write_annotations(tmp_path, write_scenes(tmp_path, 24, seed=5), "train")
    datasets = {
        "instruct_blip_okvqa_vig": dataset_entry(files["okvqa"], tmp_path, ratio=2.0),
        "instruct_blip_okvqa_vic": dataset_entry(files["okvqa"], tmp_path),
    }
    # Dropout stays on (the Q-Former's 0.1): the resumed run must restore the random states to match.
    run = {
        "max_iters": 60,
        "checkpoint_every_iters": 20,
        "accum_grad_iters": 2,
        "batch_size_train": 4,
        "warmup_steps": 10,
        "init_lr": 1e-3,
        "min_lr": 1e-4,
        "log_freq": 10,
        "max_grad_norm": 1.0,
    }
    config = tiny_config(tmp_path, reference_fixture, datasets=datasets, run=run)

    assert train_main(["--cfg-path", str(config), "--options", f"run.output_dir={tmp_path / 'straight'}"]) == 0
    straight = only_run_dir(tmp_path / "straight")

    killed = _start_and_kill_after(config, tmp_path / "killed", 20)
    assert not (killed / checkpoint_name(60)).exists(), "the run was meant to be killed halfway"

    resume_args = ["--resume", str(killed / checkpoint_name(20)), "--options", f"run.output_dir={tmp_path / 'resumed'}"]
    assert train_main(["--cfg-path", str(config), *resume_args]) == 0
    resumed = only_run_dir(tmp_path / "resumed")

    expected, got = final_weights(straight), final_weights(resumed)
    assert sorted(got) == sorted(expected)
    assert all(torch.equal(got[name], expected[name]) for name in expected)
    # The resumed run starts at iteration 20 and logs the same losses as the uninterrupted one from there on.
    straight_losses = {r["iteration"]: r["loss"] for r in read_metrics(straight, "train")}
    resumed_losses = {r["iteration"]: r["loss"] for r in read_metrics(resumed, "train")}
    assert sorted(resumed_losses) == [30, 40, 50, 60]
    assert all(resumed_losses[i] == straight_losses[i] for i in resumed_losses)
    assert "resumed_from" in (resumed / "run.yaml").read_text()
