"""Pieces every generation workflow shares: decoding settings from the original's `generate_cfg`, the run folder
and its id across ranks, this process's share of the work, image batches that survive bad files, progress and the
end-of-run summary. The workflows themselves live in `vigc/tasks/generate_*.py`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from vigc import dist
from vigc.data.images import load_rgb
from vigc.data.processors import DEFAULT_MAX_PIXELS
from vigc.errors import VIGCError, output_error_message
from vigc.generation.inputs import GenerationItem, shard
from vigc.generation.merge import merge
from vigc.generation.records import (
    RecordsError,
    RecordWriter,
    RunPaths,
    remove_stale_temporaries,
    write_run_info,
    writer_tag,
)

logger = logging.getLogger(__name__)

LLAVA_EXPORT_FILE = "llava_train.json"

# Keys of the original generation configs' `run:` section that mean nothing for generation here (the runner,
# training sizes, how distribution was set up: torchrun decides that). Accepted and ignored so those configs run.
ORIGINAL_RUN_KEYS_WITHOUT_EFFECT = (
    "runner",
    "batch_size_train",
    "num_workers",
    "iters_per_inner_epoch",
    "max_iters",
    "evaluate",
    "test_splits",
    "world_size",
    "dist_url",
    "distributed",
    "report_metric",
)


def split_run_section(run: Mapping[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """A generation config's `run` section → (task name, run id or None, the task builder's arguments).

    The original's keys without effect here (`ORIGINAL_RUN_KEYS_WITHOUT_EFFECT`) are dropped.
    """
    kwargs = dict(run)
    task = str(kwargs.pop("task", ""))
    run_id = kwargs.pop("run_id", None)
    ignored = [key for key in ORIGINAL_RUN_KEYS_WITHOUT_EFFECT if kwargs.pop(key, None) is not None]
    logger.debug("run keys of the original configs without effect here: %s", ignored)
    return task, run_id, kwargs


@dataclass
class RunContext:
    """This process's place in a generation run."""

    info: dist.DistInfo
    paths: RunPaths
    tag: str
    shard: tuple[int, int] | None

    def writer(self, fsync: bool = True) -> RecordWriter:
        return RecordWriter(self.paths.records(self.tag), fsync=fsync)


def start_run(
    *,
    output_dir: str,
    run_id: str | None,
    shard_spec: tuple[int, int] | None,
    task: str,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    info: dist.DistInfo,
) -> RunContext:
    """Choose the run id on rank 0 (a new one, or `run_id` to resume), share it, and write `run.json`."""
    chosen = dist.broadcast_object(RunPaths.create(output_dir, run_id).run_id if info.is_main else None)
    paths = RunPaths.create(output_dir, chosen)
    if info.is_main:
        try:
            paths.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordsError(output_error_message(exc, paths.run_dir, run_id=paths.run_id)) from None
        remove_stale_temporaries(paths.run_dir)
        write_run_info(paths, task=task, config=config, provenance=provenance)
        logger.info("writing to %s", paths.run_dir)
    dist.barrier()
    return RunContext(info, paths, writer_tag(info.rank, info.world_size, shard_spec), shard_spec)


def my_share(items: Sequence[GenerationItem], ctx: RunContext) -> list[GenerationItem]:
    """The items of this shard (`--shard i/N`) and then of this rank."""
    mine = list(items)
    if ctx.shard is not None:
        mine = shard(mine, *ctx.shard)
    return shard(mine, ctx.info.rank, ctx.info.world_size)


@dataclass
class Counters:
    """What a run did, for the progress bar and the summary."""

    images: int = 0
    records: int = 0
    valid: int = 0
    invalid: int = 0
    errors: int = 0
    resumed: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        return (
            f"{self.images} images, {self.valid} valid QA, {self.invalid} invalid, {self.errors} image errors, "
            f"{self.resumed} already done, {seconds:.1f} s"
        )


@dataclass
class ImageBatch:
    """Items whose images loaded, and their pixels (B, 3, S, S)."""

    items: list[GenerationItem]
    pixels: torch.Tensor


def image_batches(
    items: Sequence[GenerationItem],
    batch_size: int,
    processor: Callable[..., torch.Tensor],
    writer: RecordWriter,
    counters: Counters,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ImageBatch]:
    """Batches of loaded images; a file that cannot be read, or is larger than `max_pixels` (width x height, read
    from its header before decoding), goes to the errors file with its reason."""
    pending: list[tuple[GenerationItem, torch.Tensor]] = []
    for item in items:
        try:
            pending.append((item, processor(load_rgb(item.image_path, max_pixels))))
        except VIGCError as exc:
            counters.errors += 1
            writer.write_error(item.key, item.image, str(exc))
            logger.warning("skipping %s: %s", item.image, exc)
        if len(pending) == batch_size:
            yield ImageBatch([i for i, _ in pending], torch.stack([p for _, p in pending]))
            pending = []
    if pending:
        yield ImageBatch([i for i, _ in pending], torch.stack([p for _, p in pending]))


Producer = Callable[[ImageBatch], tuple[list[dict[str, Any]], int]]
"""Turns a batch into its records (each with `key` and `valid`) and the number of LLM tokens decoded."""


def run_pass(
    ctx: RunContext,
    items: Sequence[GenerationItem],
    *,
    key: Callable[[GenerationItem], str],
    produce: Producer,
    batch_size: int,
    processor: Callable[..., torch.Tensor],
    counters: Counters,
    fsync: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """One pass over this process's share of `items`: skip keys already written, append records as they come."""
    with ctx.writer(fsync) as writer:
        done = writer.done_keys()
        mine = my_share(items, ctx)
        todo = [item for item in mine if key(item) not in done]
        counters.resumed += len(mine) - len(todo)
        bar = progress(len(todo), ctx.info)
        for batch in image_batches(todo, batch_size, processor, writer, counters, max_pixels):
            records, tokens = produce(batch)
            for record in records:
                writer.write(record)
                counters.valid += bool(record["valid"])
                counters.invalid += not record["valid"]
            counters.images += len(batch.items)
            counters.tokens += tokens
            update_progress(bar, counters, len(batch.items))
        bar.close()


def progress(total: int, info: dist.DistInfo, unit: str = "img") -> tqdm:
    """A progress bar on rank 0 (images/s is tqdm's rate; tokens/s goes in the postfix)."""
    return tqdm(total=total, unit=unit, disable=not info.is_main, dynamic_ncols=True, desc="generating")


def update_progress(bar: tqdm, counters: Counters, images: int) -> None:
    bar.update(images)
    seconds = max(time.perf_counter() - counters.started, 1e-9)
    bar.set_postfix(
        valid=counters.valid, invalid=counters.invalid, errors=counters.errors, tok_s=f"{counters.tokens / seconds:.0f}"
    )


def finish_run(ctx: RunContext, export_llava_file: bool) -> None:
    """On rank 0 after every rank is done: merge the records, write the original's file and the LLaVA export
    (the same as `python -m vigc.tools.merge_records`, which array jobs run by hand)."""
    dist.barrier()
    if ctx.info.is_main:
        llava = ctx.paths.run_dir / LLAVA_EXPORT_FILE if export_llava_file else None
        for line in merge(ctx.paths.run_dir, llava):
            logger.info(line)


def model_provenance(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Model and checkpoints as configured (paths as given)."""
    keys = ("arch", "llm_model", "vit_model", "pretrained", "finetuned", "qformer_tokenizer", "precision")
    return {key: model_cfg.get(key) for key in keys if key in model_cfg}
