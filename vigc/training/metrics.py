"""What a run reports: a progress bar (rank 0), log lines, and ``metrics.jsonl`` in the run folder.

Each JSONL line is one record: ``{"kind": "train", "iteration": ..., "loss": ..., "lr": ...,
"samples_per_s": ..., "tokens_per_s": ..., "eta_s": ...}`` every ``log_freq`` iterations, ``{"kind": "val", ...}``
after each validation, ``{"kind": "checkpoint", ...}`` after each checkpoint.

When ``tensorboard`` is installed the same numbers also go to TensorBoard event files beside ``metrics.jsonl``
(scalars ``<kind>/<name>`` at step ``iteration``: ``train/loss``, ``val/agg_metrics``, ...), so
``tensorboard --logdir <output_dir>`` shows every run; without it one info line says so and nothing else changes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, TextIO

import torch
from tqdm import tqdm

from vigc import dist

__all__ = ["MetricsLog", "TrainMeter"]

logger = logging.getLogger(__name__)


class MetricsLog:
    """Append-only JSON Lines file written by rank 0, and TensorBoard events beside it; other ranks write nothing.

    Args:
        path: The file (created, or appended to).
        enabled: Whether this process writes (rank 0).
        tensorboard: Also write TensorBoard event files into ``path``'s folder when tensorboard is installed.
        purge_step: A resumed run's first iteration: TensorBoard hides the events an earlier start logged from
            there on (they were redone).
    """

    def __init__(self, path: Path, enabled: bool, *, tensorboard: bool = True, purge_step: int | None = None) -> None:
        self.path = path
        self._file: TextIO | None = path.open("a", encoding="utf-8") if enabled else None
        self._events = _summary_writer(path.parent, purge_step) if enabled and tensorboard else None

    def write(self, kind: str, **values: Any) -> None:
        """Append one record and flush it, so a killed run keeps every line written so far."""
        if self._file is None:
            return
        record = {"kind": kind, "time": round(time.time(), 3), **values}
        self._file.write(json.dumps(record, default=_plain) + "\n")
        self._file.flush()
        if self._events is not None:
            step = values.get("iteration")
            for name, value in values.items():
                scalar = _scalar(value)
                if name != "iteration" and scalar is not None:
                    self._events.add_scalar(f"{kind}/{name}", scalar, global_step=step)
            self._events.flush()

    def close(self) -> None:
        """Close the file and the event writer."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._events is not None:
            self._events.close()
            self._events = None


def _summary_writer(log_dir: Path, purge_step: int | None) -> Any:
    """torch's TensorBoard `SummaryWriter` on `log_dir`, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard imports the tensorboard package, an optional dependency
        logger.info("tensorboard is not installed: metrics go to metrics.jsonl only (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def _scalar(value: Any) -> float | None:
    """A number TensorBoard can plot (a one-element tensor too), else None (paths, lists, flags)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return str(value)


class TrainMeter:
    """Loss, learning rate and throughput over a logging window, a tqdm bar on rank 0, and the JSONL record.

    Args:
        total_iterations: Iterations of the whole run.
        start_iteration: First iteration of this process (non-zero after a resume).
        world_size: Processes; samples and tokens are summed over them.
        device: Where the reduction over ranks runs (NCCL reduces CUDA tensors only).
        log_freq: Iterations per logging window.
        metrics: Where records go.
        show_bar: Draw the progress bar (rank 0).
    """

    def __init__(
        self,
        *,
        total_iterations: int,
        start_iteration: int,
        world_size: int,
        device: torch.device,
        log_freq: int,
        metrics: MetricsLog,
        show_bar: bool,
    ) -> None:
        self.total = total_iterations
        self.world_size = world_size
        self.device = device
        self.log_freq = max(log_freq, 1)
        self.metrics = metrics
        self.bar = tqdm(total=total_iterations, initial=start_iteration, disable=not show_bar, dynamic_ncols=True)
        self._start_time = time.perf_counter()
        self._start_iteration = start_iteration
        self._reset_window()

    def _reset_window(self) -> None:
        self._window_start = time.perf_counter()
        self._loss_sum = 0.0
        self._iterations = 0
        self._samples = 0
        self._tokens = 0

    def update(self, iteration: int, *, loss: float, samples: int, tokens: int, lr: float, **extra: Any) -> None:
        """Account one finished iteration (0-based ``iteration``); log when a window is complete.

        Every rank must call this at every iteration: the window means are reduced over ranks.
        """
        self._loss_sum += loss
        self._iterations += 1
        self._samples += samples
        self._tokens += tokens
        self.bar.update(1)
        done = iteration + 1
        if done % self.log_freq and done != self.total:
            return
        window = torch.tensor([self._loss_sum, self._samples, self._tokens], dtype=torch.float64, device=self.device)
        totals = dist.all_reduce_mean(window).cpu()
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        per_iteration = (time.perf_counter() - self._start_time) / max(done - self._start_iteration, 1)
        values = {
            "iteration": done,
            "loss": float(totals[0]) / self._iterations,
            "lr": lr,
            "samples_per_s": float(totals[1]) * self.world_size / elapsed,
            "tokens_per_s": float(totals[2]) * self.world_size / elapsed,
            "s_per_iteration": elapsed / self._iterations,
            "eta_s": per_iteration * (self.total - done),
            **extra,
        }
        self.bar.set_postfix(
            loss=f"{values['loss']:.4f}",
            lr=f"{lr:.2e}",
            samples_s=f"{values['samples_per_s']:.1f}",
            tokens_s=f"{values['tokens_per_s']:.0f}",
        )
        self.metrics.write("train", **values)
        logger.info(
            "iteration %d/%d loss %.4f lr %.3e %.1f samples/s %.0f tokens/s eta %s",
            done,
            self.total,
            values["loss"],
            lr,
            values["samples_per_s"],
            values["tokens_per_s"],
            _duration(values["eta_s"]),
        )
        self._reset_window()

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}"
