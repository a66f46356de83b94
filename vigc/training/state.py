"""Training checkpoints: everything an exact resume needs, written atomically.

A checkpoint is a folder ``checkpoint_<iteration, 8 digits>/`` in the run folder:

* ``model.safetensors``: the trainable parameters only (`vigc.models.checkpoints.save_checkpoint`), loadable as
  ``model.finetuned`` (format ``vigc``). With LoRA these are the adapters and the other trainable parts.
* ``lora_adapter/`` (LoRA runs only): the adapters again as a PEFT folder (`vigc.models.hf_interop`), which
  ``PeftModel.from_pretrained`` applies to the model exported by ``python -m vigc.tools.export_hf``.
* ``training_state.pt``: optimizer, gradient scaler, progress (iteration, optimizer steps, best metric) and the
  data position (``data_state``), all plain tensors and numbers (read with ``weights_only=True``).
* ``rng_rank<r>.pt``: the Python, NumPy, torch (and CUDA) random states of rank ``r``.

The folder is first written as ``checkpoint_<n>.tmp`` and renamed when complete, so a run killed while saving
never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import errno
import logging
import pickle
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from vigc import dist
from vigc.dist import DistInfo
from vigc.errors import CheckpointError, OutputError, output_error_message
from vigc.models.checkpoints import load_checkpoint, save_checkpoint
from vigc.models.hf_interop import ADAPTER_DIR, save_peft_adapter
from vigc.models.lora import lora_parameter_names
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "MODEL_FILE",
    "STATE_FILE",
    "Progress",
    "capture_rng",
    "checkpoint_name",
    "find_checkpoint",
    "list_checkpoints",
    "load_training_checkpoint",
    "prune_checkpoints",
    "remove_interrupted_saves",
    "restore_rng",
    "save_training_checkpoint",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
STATE_FILE = "training_state.pt"
_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d{8})$")
_TMP_SUFFIX = ".tmp"


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint.

    Attributes:
        iteration: Iterations completed (the next iteration to run). One iteration is one micro-batch per rank.
        optimizer_steps: Optimizer updates done.
        best_metric: Best validation metric so far (higher is better), if any.
        best_iteration: Iteration at which ``best_metric`` was reached.
        data_state: The batch source's position (see `vigc.training.batches`).
    """

    iteration: int = 0
    optimizer_steps: int = 0
    best_metric: float | None = None
    best_iteration: int | None = None
    data_state: dict[str, Any] = field(default_factory=dict)


def checkpoint_name(iteration: int) -> str:
    """The folder name of the checkpoint taken after ``iteration`` iterations."""
    return f"checkpoint_{iteration:08d}"


def capture_rng() -> dict[str, Any]:
    """The Python, NumPy, torch and CUDA random states of this process, as plain picklable values."""
    kind, keys, pos, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.copy()), "pos": pos, "gauss": (has_gauss, cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore states from `capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    has_gauss, cached = numpy["gauss"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy(), numpy["pos"], has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: Progress,
    info: DistInfo,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint of the run after ``progress.iteration`` iterations; every rank must call this.

    Args:
        run_dir: The run folder (shared by all ranks).
        model: The unwrapped model.
        optimizer: Its optimizer.
        scaler: The gradient scaler (its state is empty when disabled).
        progress: The run's progress, data position included.
        info: This process's place in the job.
        metadata: Extra strings stored in the safetensors header (config file, task).

    Returns:
        The checkpoint folder.
    """
    final = run_dir / checkpoint_name(progress.iteration)
    tmp = final.with_name(final.name + _TMP_SUFFIX)
    try:
        return _save(run_dir, final, tmp, model, optimizer, scaler, progress, info, metadata)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        if isinstance(exc, RuntimeError) and "write" not in str(exc).lower():
            raise
        error = exc if isinstance(exc, OSError) else OSError(errno.EIO, _one_line(exc))
        raise OutputError(output_error_message(error, run_dir)) from None


def _save(
    run_dir: Path,
    final: Path,
    tmp: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    progress: Progress,
    info: DistInfo,
    metadata: dict[str, str] | None,
) -> Path:
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    torch.save(capture_rng(), tmp / f"rng_rank{info.rank}.pt")
    if info.is_main:
        extra = {**(metadata or {}), "iteration": str(progress.iteration)}
        save_checkpoint(model, tmp / MODEL_FILE, trainable_only=True, metadata=extra)
        if isinstance(model, VIGCModel) and lora_parameter_names(model.language_model):
            save_peft_adapter(model, tmp / ADAPTER_DIR)
        state = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "progress": asdict(progress),
            "world_size": info.world_size,
        }
        torch.save(state, tmp / STATE_FILE)
    dist.barrier()
    if info.is_main:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        logger.info("checkpoint written: %s", final)
    dist.barrier()
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and _CHECKPOINT_RE.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def find_checkpoint(path: str | Path) -> Path:
    """Resolve ``--resume``/``run.resume_ckpt_path``: a checkpoint folder, or a run folder (its latest one).

    Raises:
        CheckpointError: If no complete checkpoint is found there.
    """
    path = Path(path)
    if (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if checkpoints:
        return checkpoints[-1]
    raise CheckpointError(
        f"No training checkpoint at {str(path)!r}: expected a checkpoint_<iteration> folder holding {MODEL_FILE} "
        f"and {STATE_FILE}, or a run folder that contains one. (Model weights alone are loaded with "
        "model.finetuned, not resumed.)"
    )


def load_training_checkpoint(
    checkpoint: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    info: DistInfo,
) -> Progress:
    """Load a checkpoint from `save_training_checkpoint` into freshly built objects, RNG states included.

    Args:
        checkpoint: The checkpoint folder (see `find_checkpoint`).
        model: The unwrapped model, built from the same config.
        optimizer: Its optimizer, built the same way.
        scaler: The gradient scaler.
        info: This process's place in the job.

    Returns:
        The saved progress.

    Raises:
        CheckpointError: If a trainable parameter is not in the checkpoint, or the files are unreadable.
    """
    report = load_checkpoint(model, checkpoint / MODEL_FILE, config_key="run.resume_ckpt_path")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    absent = sorted(trainable - set(report.loaded))
    if absent:
        raise CheckpointError(
            f"{checkpoint}: {len(absent)} trainable parameters are not in {MODEL_FILE} (e.g. {absent[:3]}); the "
            "checkpoint was written by a run with other frozen/LoRA settings."
        )
    state = _load_plain(checkpoint / STATE_FILE)
    optimizer.load_state_dict(state["optimizer"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    rng_file = checkpoint / f"rng_rank{info.rank}.pt"
    if rng_file.is_file() and state["world_size"] == info.world_size:
        restore_rng(_load_plain(rng_file))
    else:
        logger.warning(
            "%s was written by %d processes, this run has %d: random states are not restored, so dropout and "
            "augmentation differ from an uninterrupted run (the data order does not).",
            checkpoint,
            state["world_size"],
            info.world_size,
        )
    progress = Progress(**state["progress"])
    logger.info("resumed from %s at iteration %d", checkpoint, progress.iteration)
    return progress


def _load_plain(path: Path) -> Any:
    """``torch.load`` of a file of plain tensors and numbers; anything that could run code is refused.

    Raises:
        CheckpointError: In one line, if the file holds other Python objects or cannot be read.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "nsupported" in line]
        reason = f" ({lines[0]})" if lines else ""
        raise CheckpointError(
            f"{path} holds Python objects that could run code when loaded{reason}; it was not written by train.py "
            "and is not loaded. Resume from a checkpoint folder train.py wrote."
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read ({_one_line(exc)}); the file may be truncated.") from None


def remove_interrupted_saves(run_dir: Path) -> list[Path]:
    """Remove what a run killed while saving left in its folder: ``checkpoint_<n>.tmp`` folders and half-written
    ``*.safetensors.tmp`` files of ``best/``. Complete checkpoints are never touched.

    Returns:
        The removed paths.
    """
    leftovers = [p for p in run_dir.glob(f"checkpoint_*{_TMP_SUFFIX}") if p.is_dir()]
    leftovers += list(run_dir.glob(f"best/*{_TMP_SUFFIX}"))
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if leftovers:
        logger.info("%s: removed %d leftover(s) of an interrupted save: %s", run_dir, len(leftovers), leftovers[:3])
    return leftovers


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def prune_checkpoints(run_dir: Path, keep_last: int | None, protected: set[int]) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints, never those of iterations in ``protected``.

    Returns:
        The deleted folders.
    """
    if keep_last is None:
        return []
    checkpoints = list_checkpoints(run_dir)
    doomed = [p for p in checkpoints[: max(len(checkpoints) - keep_last, 0)] if _iteration(p) not in protected]
    for path in doomed:
        shutil.rmtree(path)
        logger.info("removed old checkpoint %s", path)
    return doomed


def _iteration(path: Path) -> int:
    match = _CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match else -1
