"""metrics.jsonl and the TensorBoard events written beside it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from vigc.training.metrics import MetricsLog


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_events_beside_metrics_jsonl_when_tensorboard_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    log.write("train", iteration=1, loss=2.5, lr=1e-4, grad_norm=torch.tensor(0.75))
    log.write("train", iteration=2, loss=2.0, lr=2e-4)
    log.write("val", iteration=2, agg_metrics=0.5, per_question=[1, 2], valid=True)
    log.write("checkpoint", iteration=2, path="checkpoint_2")
    log.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    scalars = _scalars(tmp_path)
    assert sorted(scalars) == ["train/grad_norm", "train/loss", "train/lr", "val/agg_metrics"]  # numbers only
    assert scalars["train/loss"] == [(1, 2.5), (2, 2.0)]
    assert scalars["val/agg_metrics"] == [(2, 0.5)] and scalars["train/grad_norm"] == [(1, 0.75)]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["train", "train", "val", "checkpoint"]


def test_a_resumed_run_replaces_the_events_after_its_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    first = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    for iteration in (1, 2, 3):
        first.write("train", iteration=iteration, loss=float(iteration))
    first.close()  # killed after iteration 3; resumed from the checkpoint of iteration 1
    resumed = MetricsLog(tmp_path / "metrics.jsonl", enabled=True, purge_step=2)
    for iteration in (2, 3):
        resumed.write("train", iteration=iteration, loss=10.0 * iteration)
    resumed.close()
    assert _scalars(tmp_path)["train/loss"] == [(1, 1.0), (2, 20.0), (3, 30.0)]


def test_without_tensorboard_only_metrics_jsonl_and_one_info_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import now raises ImportError
    with caplog.at_level(logging.INFO, logger="vigc.training.metrics"):
        log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
        log.write("train", iteration=1, loss=1.0)
        log.close()
    assert [r.getMessage() for r in caplog.records] == [
        "tensorboard is not installed: metrics go to metrics.jsonl only (pip install tensorboard)"
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=False)
    log.write("train", iteration=1, loss=1.0)
    log.close()
    assert list(tmp_path.iterdir()) == []
