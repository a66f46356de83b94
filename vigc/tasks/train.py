"""Train VIGC: setup (model, data, optimiser) → loop → save.

Registered in ``TASKS`` under the original training task names: ``instruct_blip_vqa`` (OKVQA/A-OKVQA recipes,
validated by VQA accuracy) and ``instruct_blip_caption`` (LLaVA recipes, validated by loss and sample answers).
The ``run`` section of a config is exactly the arguments of `TrainSettings` (plus ``task``).

Vocabulary: an *iteration* is one micro-batch on every rank (the original's "iter": ``max_iters``,
``warmup_steps`` and ``iters_per_inner_epoch`` count these); an optimizer step happens every
``accum_grad_iters`` iterations. Validation and checkpoints happen after optimizer steps only.

Outputs go to ``<run.output_dir>/<run id>/`` (relative to the working directory, never the package):
``config.yaml``, ``train.log``, ``metrics.jsonl``, ``checkpoint_<iteration>/`` (see `vigc.training.state`),
``best/model.safetensors`` (weights of the best validation), ``validation/*.jsonl``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_type_hints

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel

from vigc import dist
from vigc.config import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Problems,
    check_model_inputs,
    check_output_dir,
    check_ranges,
    validate_builder_kwargs,
    validate_config,
)
from vigc.dist import DistInfo
from vigc.errors import ConfigError
from vigc.models.checkpoints import save_checkpoint
from vigc.models.generate_config import GenerateConfig
from vigc.models.vigc_model import VIGCModel
from vigc.registry import TASKS
from vigc.training.data import TrainingData, build_training_data, plan_run_length, train_loader
from vigc.training.metrics import MetricsLog, TrainMeter
from vigc.training.model_setup import LossStep, build_training_model, set_train_mode
from vigc.training.optim import LRSchedule, build_optimizer
from vigc.training.precision import Precision
from vigc.training.state import (
    MODEL_FILE,
    Progress,
    find_checkpoint,
    load_training_checkpoint,
    prune_checkpoints,
    remove_interrupted_saves,
    save_training_checkpoint,
)
from vigc.training.validation import ValidationKind, ValidationSettings, run_validation

__all__ = ["TrainResult", "TrainSettings", "TrainingTask", "run_training", "training_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The ``run`` section of a training config; every default lives here. Original keys keep their names.

    Args:
        lr_sched: Learning-rate schedule (only the original's warm-up + cosine).
        init_lr: Peak learning rate.
        min_lr: Learning rate at the end of the run.
        warmup_lr: Learning rate at iteration 0.
        warmup_steps: Warm-up length in iterations.
        weight_decay: AdamW decay (not applied to biases, norms and other 1-D parameters).
        beta2: AdamW's second beta (the first is 0.9).
        max_grad_norm: Clip the gradient norm to this (None: no clipping, as the original).
        accum_grad_iters: Iterations per optimizer step (gradient accumulation).
        runner: The original's runner name; both run by iterations here (accepted for compatibility).
        max_iters: Iterations of the run; if None, derived from ``max_epoch``.
        max_epoch: Passes over all training records (used when ``max_iters`` is None).
        iters_per_inner_epoch: Iterations between validations and checkpoints (None: one epoch).
        milestone: Inner epochs whose checkpoints are never pruned.
        batch_size_train: Training samples per rank and iteration.
        batch_size_eval: Validation records per rank and batch.
        num_workers: DataLoader worker processes.
        train_splits: Accepted for compatibility: every non-evaluation dataset of the config is trained on.
        valid_splits: Validate on the config's ``*_vig_eval`` sets when not empty.
        seed: Seed of the model initialisation, the data order and dropout (+ rank).
        amp: Mixed precision (autocast).
        amp_dtype: Autocast dtype; fp16 uses a gradient scaler on CUDA.
        device: ``cuda``, ``cuda:N``, ``cpu`` or ``auto`` (``cuda`` without a GPU runs on the CPU, with a warning).
        distributed: Accepted for compatibility; torchrun's environment decides.
        world_size: Accepted for compatibility; torchrun's environment decides.
        dist_url: Accepted for compatibility; torchrun's environment decides.
        output_dir: Folder of the run folders, relative to the working directory.
        log_freq: Iterations per logged record.
        checkpoint_every_iters: Iterations between checkpoints (None: every inner epoch). A checkpoint is
            always written at the end.
        keep_last_checkpoints: Keep only this many newest checkpoints (None: all), besides milestones.
        resume_ckpt_path: Continue exactly from this checkpoint (or the latest one of this run folder).
        evaluate: Only validate (no training), as the original's ``evaluate: True``.
        eval_every_iters: Iterations between validations (None: every inner epoch); also run at the end.
        max_eval_items: Validate on the first this many records of each evaluation set (None: all).
        num_eval_samples: Generated answers written per set in LLaVA (caption) validation.
        generate_cfg: Decoding for validation (`GenerateConfig` keys: max_len, min_len, num_beams, ...).
        report_metric: Accepted for compatibility (metrics are always reported).
        disable_dropout: Train with dropout off (deterministic runs, equivalence checks).
        find_unused_parameters: DDP's option, for models where some trainable parameters get no gradient.
    """

    lr_sched: Literal["linear_warmup_cosine_lr"] = "linear_warmup_cosine_lr"
    init_lr: float = 3e-5
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_steps: int = 1000
    weight_decay: float = 0.05
    beta2: float = 0.999
    max_grad_norm: float | None = None
    accum_grad_iters: int = 1
    runner: Literal["runner_iter", "runner_base"] = "runner_iter"
    max_iters: int | None = None
    max_epoch: int | None = None
    iters_per_inner_epoch: int | None = None
    milestone: Sequence[int] = ()
    batch_size_train: int = 8
    batch_size_eval: int = 8
    num_workers: int = 4
    train_splits: Sequence[str] = ("train",)
    valid_splits: Sequence[str] = ("eval",)
    seed: int = 42
    amp: bool = True
    amp_dtype: Literal["bf16", "fp16"] = "bf16"
    device: str = "cuda"
    distributed: bool = True
    world_size: int = 1
    dist_url: str = "env://"
    output_dir: str = "output"
    log_freq: int = 50
    checkpoint_every_iters: int | None = None
    keep_last_checkpoints: int | None = None
    resume_ckpt_path: str | None = None
    evaluate: bool = False
    eval_every_iters: int | None = None
    max_eval_items: int | None = None
    num_eval_samples: int = 4
    generate_cfg: Mapping[str, Any] = field(default_factory=dict)
    report_metric: bool = True
    disable_dropout: bool = False
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        check_ranges(
            "run",
            [
                ("init_lr", self.init_lr, POSITIVE),
                ("min_lr", self.min_lr, NON_NEGATIVE),
                ("warmup_lr", self.warmup_lr, NON_NEGATIVE),
                ("warmup_steps", self.warmup_steps, NON_NEGATIVE),
                ("weight_decay", self.weight_decay, NON_NEGATIVE),
                ("beta2", self.beta2, (lambda v: 0 <= v < 1, "in [0, 1)")),
                ("max_grad_norm", self.max_grad_norm, POSITIVE),
                ("accum_grad_iters", self.accum_grad_iters, AT_LEAST_ONE),
                ("max_iters", self.max_iters, AT_LEAST_ONE),
                ("max_epoch", self.max_epoch, AT_LEAST_ONE),
                ("iters_per_inner_epoch", self.iters_per_inner_epoch, AT_LEAST_ONE),
                ("batch_size_train", self.batch_size_train, AT_LEAST_ONE),
                ("batch_size_eval", self.batch_size_eval, AT_LEAST_ONE),
                ("num_workers", self.num_workers, NON_NEGATIVE),
                ("log_freq", self.log_freq, AT_LEAST_ONE),
                ("checkpoint_every_iters", self.checkpoint_every_iters, AT_LEAST_ONE),
                ("keep_last_checkpoints", self.keep_last_checkpoints, AT_LEAST_ONE),
                ("eval_every_iters", self.eval_every_iters, AT_LEAST_ONE),
                ("max_eval_items", self.max_eval_items, AT_LEAST_ONE),
                ("num_eval_samples", self.num_eval_samples, NON_NEGATIVE),
            ],
        )


@dataclass(frozen=True)
class TrainingTask:
    """A training task built from a ``run`` section.

    Attributes:
        name: The registered task name.
        validation: How it validates (``vqa`` or ``caption``).
        settings: The run settings.
        generate: Decoding settings for validation.
    """

    name: str
    validation: ValidationKind
    settings: TrainSettings
    generate: GenerateConfig


def _register(name: str, validation: ValidationKind) -> None:
    """Register a task builder whose signature is `TrainSettings`' (the config checks read it)."""

    def builder(**kwargs: Any) -> TrainingTask:
        settings = TrainSettings(**kwargs)
        return TrainingTask(name, validation, settings, GenerateConfig.from_mapping(settings.generate_cfg))

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"Training task {name!r} (validation: {validation}); arguments: `TrainSettings`."
    builder.__signature__ = inspect.signature(TrainSettings)  # type: ignore[attr-defined]
    builder.__annotations__ = {**get_type_hints(TrainSettings), "return": TrainingTask}
    TASKS.register(builder, name=name)


_register("instruct_blip_vqa", "vqa")
_register("instruct_blip_caption", "caption")


def training_task(cfg: DictConfig, *, source: str) -> TrainingTask:
    """Check a config's ``run`` section against its task and build the task (nothing heavy happens).

    Raises:
        ConfigError: If ``run.task`` is missing or not a training task, or a key is unknown or mistyped.
    """
    run = cfg.get("run")
    if not isinstance(run, DictConfig) or run.get("task") is None:
        raise ConfigError(f"{source}: the config needs a 'run' section with a 'task' (e.g. instruct_blip_vqa).")
    kwargs = cast(dict[str, Any], OmegaConf.to_container(run, resolve=True))
    name = kwargs.pop("task")
    builder = TASKS.get(name)
    validate_builder_kwargs(builder, kwargs, section="run", source=source)
    if isinstance(kwargs.get("generate_cfg"), dict):
        GenerateConfig.from_mapping(kwargs["generate_cfg"], source=source)
    task = builder(**kwargs)
    if not isinstance(task, TrainingTask):
        raise ConfigError(
            f"{source}: run.task {name!r} is not a training task; run it with `vigc generate` (evaluate.py)."
        )
    return task


@dataclass
class TrainResult:
    """What a finished run left behind.

    Attributes:
        run_dir: The run folder.
        checkpoint: The last checkpoint (None for ``evaluate: True``).
        progress: Final progress (iteration, optimizer steps, best metric).
        validation: Metrics of the last validation ({} if none ran).
    """

    run_dir: Path
    checkpoint: Path | None
    progress: Progress
    validation: dict[str, float]


def run_training(cfg: DictConfig, *, source: str, resume: str | None = None) -> TrainResult:
    """Run a training config from start (or from a checkpoint) to end. Works in one process or under torchrun.

    Args:
        cfg: The config from `vigc.config.load_config`.
        source: The config file, for messages and provenance.
        resume: A checkpoint or run folder to continue from (overrides ``run.resume_ckpt_path``).

    Returns:
        Where the run went and how it ended.
    """
    task, data, resume_from = _check_run(cfg, source=source, resume=resume)
    settings = task.settings
    info = dist.init_distributed(settings.device)
    run_dir = _create_run_dir(settings.output_dir, info)
    log_handler = _log_to_file(run_dir / "train.log") if info.is_main else None
    try:
        if info.is_main:
            OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        return _train(cfg, task, data, info, run_dir, source=source, resume_from=resume_from)
    finally:
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
            log_handler.close()
        dist.cleanup()


def _check_run(cfg: DictConfig, *, source: str, resume: str | None) -> tuple[TrainingTask, TrainingData, Path | None]:
    """Every check before a run folder is made or a weight is read: the config's sections, value ranges, the
    device, the datasets (annotation files read, every image path checked) and the checkpoint to resume.

    Raises:
        ConfigError: Listing every problem found.
    """
    problems = Problems(source)
    validate_config(cfg, source=source, problems=problems)
    if isinstance(cfg.get("model"), DictConfig):
        problems.check(check_model_inputs, cfg.model, source=source)
    task = problems.check(training_task, cfg, source=source)
    if task is not None:
        problems.check(dist.check_device, task.settings.device, key="run.device", fallback=True)
        problems.check(check_output_dir, task.settings.output_dir, key="run.output_dir")
    with_eval = bool(task.settings.valid_splits) if task is not None else True
    seed = task.settings.seed if task is not None else TrainSettings.seed
    data = build_training_data(cfg.get("datasets"), seed=seed, with_eval=with_eval, source=source, problems=problems)
    resume = resume or (task.settings.resume_ckpt_path if task is not None else None)
    resume_from = problems.check(find_checkpoint, resume) if resume else None
    problems.raise_if_any()
    assert task is not None  # raise_if_any raised otherwise
    return task, data, resume_from


def _train(
    cfg: DictConfig,
    task: TrainingTask,
    data: TrainingData,
    info: DistInfo,
    run_dir: Path,
    *,
    source: str,
    resume_from: Path | None,
) -> TrainResult:
    s = task.settings
    logger.info("run folder %s; task %s; %d process(es) on %s", run_dir, task.name, info.world_size, info.device)

    # ---- setup: model, data, optimiser -----------------------------------------------------------------------
    _seed_everything(s.seed)  # same on every rank: the replicas start identical
    model = build_training_model(cfg.model, source=source).to(info.device)
    length = plan_run_length(
        max_iters=s.max_iters,
        max_epoch=s.max_epoch,
        iters_per_inner_epoch=s.iters_per_inner_epoch,
        num_records=data.num_train_records,
        global_batch=s.batch_size_train * info.world_size,
        source=source,
    )
    optimizer = build_optimizer(model, lr=s.init_lr, weight_decay=s.weight_decay, betas=(0.9, s.beta2))
    schedule = LRSchedule(s.init_lr, s.min_lr, s.warmup_lr, s.warmup_steps, length.max_iters)
    precision = Precision.create(amp=s.amp, amp_dtype=s.amp_dtype, device=info.device)
    _seed_everything(s.seed + info.rank)  # dropout differs between ranks
    progress = Progress()
    if resume_from is not None:
        remove_interrupted_saves(resume_from.parent if resume_from.name.startswith("checkpoint_") else resume_from)
        progress = load_training_checkpoint(
            resume_from, model=model, optimizer=optimizer, scaler=precision.scaler, info=info
        )
        _write_run_info(run_dir, info, resumed_from=str(resume_from))
    else:
        _write_run_info(run_dir, info, resumed_from=None)
    resumed_at = progress.iteration if resume_from is not None else None
    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=info.is_main, purge_step=resumed_at)
    validate = functools.partial(
        _validate, model, data, _validation_settings(task), info, precision, run_dir, metrics, progress, s
    )
    if s.evaluate:
        results = validate()
        metrics.close()
        return TrainResult(run_dir, None, progress, results)

    loader, mixer = train_loader(
        data,
        batch_size=s.batch_size_train,
        seed=s.seed,
        info=info,
        start_iteration=progress.iteration,
        max_iters=length.max_iters,
        num_workers=s.num_workers,
    )
    if progress.data_state:
        mixer.load_state_dict(progress.data_state)
    step_module: torch.nn.Module = LossStep(model)
    if info.distributed:
        step_module = DistributedDataParallel(step_module, find_unused_parameters=s.find_unused_parameters)
    trainable = [p for p in model.parameters() if p.requires_grad]
    meter = TrainMeter(
        total_iterations=length.max_iters,
        start_iteration=progress.iteration,
        world_size=info.world_size,
        device=info.device,
        log_freq=s.log_freq,
        metrics=metrics,
        show_bar=info.is_main,
    )
    eval_every = _multiple_of(s.eval_every_iters or length.inner_epoch, s.accum_grad_iters)
    save_every = _multiple_of(s.checkpoint_every_iters or length.inner_epoch, s.accum_grad_iters)
    milestones = {_multiple_of(m * length.inner_epoch, s.accum_grad_iters) for m in s.milestone}
    last_validation: dict[str, float] = {}
    checkpoint: Path | None = None
    set_train_mode(model, disable_dropout=s.disable_dropout)

    # ---- loop ------------------------------------------------------------------------------------------------
    for iteration, batch in enumerate(loader, start=progress.iteration):
        lr = schedule.apply(optimizer, iteration)
        is_last = iteration + 1 == length.max_iters
        updates = (iteration + 1) % s.accum_grad_iters == 0 or is_last
        no_sync = isinstance(step_module, DistributedDataParallel) and not updates
        with step_module.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
            with precision.autocast():
                loss, tokens = step_module(batch.images.to(info.device, non_blocking=True), *_texts(batch))
            precision.scaler.scale(loss / s.accum_grad_iters).backward()
        extra: dict[str, float] = {"epoch": iteration / length.iters_per_epoch}
        if updates:
            extra["grad_norm"] = _optimizer_step(optimizer, precision.scaler, trainable, s.max_grad_norm)
            progress.optimizer_steps += 1
        progress.iteration = iteration + 1
        meter.update(iteration, loss=loss.item(), samples=len(batch.text_input), tokens=int(tokens), lr=lr, **extra)
        if not updates:
            continue
        if data.eval and (progress.iteration % eval_every == 0 or is_last):
            last_validation = validate()
            set_train_mode(model, disable_dropout=s.disable_dropout)
        if progress.iteration % save_every == 0 or is_last:
            progress.data_state = mixer.state_dict(progress.iteration)
            checkpoint = save_training_checkpoint(
                run_dir,
                model=model,
                optimizer=optimizer,
                scaler=precision.scaler,
                progress=progress,
                info=info,
                metadata={"config": source, "task": task.name},
            )
            metrics.write("checkpoint", iteration=progress.iteration, path=str(checkpoint))
            if info.is_main:
                prune_checkpoints(run_dir, s.keep_last_checkpoints, milestones)

    # ---- save ------------------------------------------------------------------------------------------------
    meter.close()
    metrics.close()
    logger.info("training finished at iteration %d (%d optimizer steps)", progress.iteration, progress.optimizer_steps)
    return TrainResult(run_dir, checkpoint, progress, last_validation)


def _texts(batch: Any) -> tuple[list[str], list[str]]:
    return list(batch.text_input), list(batch.text_output)


def _optimizer_step(
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    params: list[torch.nn.Parameter],
    max_grad_norm: float | None,
) -> float:
    """Unscale, clip (when set), step, update the scaler and clear the gradients; returns the gradient norm."""
    scaler.unscale_(optimizer)
    if max_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    else:
        grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def _validation_settings(task: TrainingTask) -> ValidationSettings:
    s = task.settings
    return ValidationSettings(
        kind=task.validation,
        decoding=task.generate.decoding(),
        batch_size=s.batch_size_eval,
        num_workers=s.num_workers,
        max_items=s.max_eval_items,
        num_samples=s.num_eval_samples,
    )


def _validate(
    model: VIGCModel,
    data: TrainingData,
    settings: ValidationSettings,
    info: DistInfo,
    precision: Precision,
    run_dir: Path,
    metrics: MetricsLog,
    progress: Progress,
    run: TrainSettings,
) -> dict[str, float]:
    """Validate, log, and keep the weights of the best validation so far in ``best/``."""
    if not data.eval:
        logger.warning("no evaluation set in the config: nothing to validate")
        return {}
    results = run_validation(
        model,
        data.eval,
        settings,
        info=info,
        autocast=precision.autocast,
        out_dir=run_dir / "validation",
        iteration=progress.iteration,
    )
    metrics.write("val", iteration=progress.iteration, **results)
    score = results["agg_metric"]
    if not run.evaluate and (progress.best_metric is None or score > progress.best_metric):
        progress.best_metric, progress.best_iteration = score, progress.iteration
        if info.is_main:
            save_checkpoint(model, run_dir / "best" / MODEL_FILE, metadata={"iteration": str(progress.iteration)})
        metrics.write("best", iteration=progress.iteration, agg_metric=score)
    return results


def _multiple_of(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step`` (checkpoints and validation only after optimizer steps)."""
    return max(-(-value // step) * step, step)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _create_run_dir(output_dir: str, info: DistInfo) -> Path:
    """Make ``<output_dir>/<timestamp>_<random hex>`` on rank 0 and tell every rank its name."""
    root = Path(output_dir).expanduser().resolve()
    run_id = f"{datetime.datetime.now():%Y%m%d_%H%M%S}_{secrets.token_hex(4)}" if info.is_main else ""
    run_dir = root / dist.broadcast_object(run_id)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=False)
    dist.barrier()
    return run_dir


def _write_run_info(run_dir: Path, info: DistInfo, *, resumed_from: str | None) -> None:
    if info.is_main:
        values = {"run_id": run_dir.name, "world_size": info.world_size, "resumed_from": resumed_from}
        OmegaConf.save(OmegaConf.create(values), run_dir / "run.yaml")


def _log_to_file(path: Path) -> logging.Handler:
    # backslashreplace: a message naming an undecodable file name must not stop the log (or the run)
    handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
