"""The datasets of a training config, the training batch stream and the run length.

The ``datasets`` section names training sets (VIG/VIC/VQG samples, mixed by ``sample_ratio``) and VIG evaluation
sets (``*_vig_eval``, used for validation). Training batches come from `vigc.data.mixing.RatioMixer`: each batch
is drawn from one dataset, and batch ``i`` on rank ``r`` depends only on (seed, datasets, batch size, world size,
i), so the data position of a run is its iteration count.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vigc.config import Problems
from vigc.data.datasets import QATrainDataset, VIGEvalDataset, build_dataset, collate_train
from vigc.data.mixing import MixedDataset, RatioMixer
from vigc.dist import DistInfo
from vigc.errors import ConfigError

__all__ = ["RunLength", "TrainingData", "build_training_data", "plan_run_length", "train_loader"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """The datasets of a config, split by role.

    Attributes:
        train: Name → training set (mixed by its ``sample_ratio``).
        eval: Name → VIG evaluation set (validation).
    """

    train: dict[str, QATrainDataset]
    eval: dict[str, Dataset[Any]]

    @property
    def num_train_records(self) -> int:
        """Records over all training sets."""
        return sum(len(d) for d in self.train.values())


def build_training_data(
    section: Mapping[str, Any] | None,
    *,
    seed: int,
    with_eval: bool,
    source: str,
    problems: Problems | None = None,
) -> TrainingData:
    """Build every dataset of a config's ``datasets`` section (annotations read, image paths checked).

    Args:
        section: The ``datasets`` section (name → entry).
        seed: The run's seed (per-item randomness of the training sets).
        with_eval: Build the evaluation sets too (False when ``run.valid_splits`` is empty).
        source: The config file, for messages.
        problems: Add every dataset's problem here (the caller raises them with its other checks; the data
            returned is then incomplete); None raises them at the end.

    Raises:
        ConfigError: Listing every dataset that cannot be built, or when there is no training set.
    """
    found = problems if problems is not None else Problems(source)
    train: dict[str, QATrainDataset] = {}
    evaluation: dict[str, Dataset[Any]] = {}
    failed = 0
    for name, entry in (section or {}).items():
        name = str(name)
        if name.endswith("_eval") and not with_eval:
            logger.info("%s: run.valid_splits is empty, so %s is not built", source, name)
            continue
        dataset = found.check(build_dataset, name, entry, seed=seed, source=source)
        if isinstance(dataset, QATrainDataset):
            train[name] = dataset
        elif isinstance(dataset, VIGEvalDataset):
            evaluation[name] = dataset
        elif dataset is None:
            failed += 1
        else:
            found.add(f"{source}: dataset {name!r} is neither a training set nor a VIG evaluation set.")
    if not train and not failed:
        found.add(f"{source}: the datasets section has no training set; add one (e.g. instruct_blip_okvqa_vig).")
    if problems is None:
        found.raise_if_any()
    for name, dataset in train.items():
        logger.info("training set %s: %d records, sample_ratio %s", name, len(dataset), dataset.sample_ratio)
    return TrainingData(train=train, eval=evaluation)


@dataclass(frozen=True)
class RunLength:
    """How long a run is and when it validates and saves, in iterations (one micro-batch per rank each).

    Attributes:
        max_iters: Iterations of the whole run.
        iters_per_epoch: Iterations of one pass over all training records (with the global batch size).
        inner_epoch: Iterations between validations/checkpoints by default (``iters_per_inner_epoch``, else
            one epoch).
    """

    max_iters: int
    iters_per_epoch: int
    inner_epoch: int


def plan_run_length(
    *,
    max_iters: int | None,
    max_epoch: int | None,
    iters_per_inner_epoch: int | None,
    num_records: int,
    global_batch: int,
    source: str,
) -> RunLength:
    """Derive the run length from ``max_iters`` or, when it is missing, ``max_epoch`` (the original crashed).

    Raises:
        ConfigError: If neither is set, or a value is not positive.
    """
    iters_per_epoch = max(math.ceil(num_records / global_batch), 1)
    if max_iters is None and max_epoch is None:
        raise ConfigError(f"{source}: set run.max_iters (iterations) or run.max_epoch (passes over the training data).")
    if max_iters is not None and max_epoch is not None:
        logger.info("%s: run.max_iters=%d is used; run.max_epoch=%d is ignored", source, max_iters, max_epoch)
    total = max_iters if max_iters is not None else iters_per_epoch * int(max_epoch or 0)
    inner = iters_per_inner_epoch if iters_per_inner_epoch is not None else iters_per_epoch
    if total < 1 or inner < 1:
        raise ConfigError(f"{source}: run.max_iters, run.max_epoch and run.iters_per_inner_epoch must be positive.")
    logger.info(
        "run length: %d iterations (%.2f epochs of %d iterations with %d samples per global batch)",
        total,
        total / iters_per_epoch,
        iters_per_epoch,
        global_batch,
    )
    return RunLength(max_iters=total, iters_per_epoch=iters_per_epoch, inner_epoch=inner)


def train_loader(
    data: TrainingData,
    *,
    batch_size: int,
    seed: int,
    info: DistInfo,
    start_iteration: int,
    max_iters: int,
    num_workers: int,
) -> tuple[DataLoader[Any], RatioMixer]:
    """This rank's training batches (`vigc.data.datasets.TrainBatch`) for iterations ``start_iteration`` onwards.

    Returns:
        The loader and its mixer (whose ``state_dict(iteration)`` is the data position of a checkpoint).
    """
    mixer = RatioMixer.from_datasets(
        data.train,
        batch_size,
        seed=seed,
        rank=info.rank,
        world_size=info.world_size,
        start_step=start_iteration,
        num_steps=max_iters,
    )
    loader = DataLoader(
        MixedDataset(data.train),
        batch_sampler=mixer,
        collate_fn=collate_train,
        num_workers=num_workers,
        pin_memory=info.device.type == "cuda",
        # A loader draws its workers' base seed from this generator, not from the global RNG, so creating it
        # does not shift the random stream of dropout (an exact resume depends on that).
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, mixer
