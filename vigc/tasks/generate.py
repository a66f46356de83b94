"""Generate data with a config: setup (checks, task, inputs, model) → the task's loop → merge and export.

The ``run`` section of a generation config names a registered generation task (``instruct_blip_llava_vig``,
``instruct_blip_vqg``; see `vigc.tasks.generate_llava`, `vigc.tasks.generate_vqa`) and holds its arguments; the
one ``datasets`` entry names the inputs (`vigc.generation.sources`). Every check runs before a run folder is made
or a weight is read, and all problems are reported together.

Outputs go to ``<run.output_dir>/<run id>/`` (relative to the working directory): ``run.json`` (config and
provenance), ``records.<writer>.jsonl`` appended as records are made, then the merged and exported files
(`vigc.generation.merge`). Running again with the same run id resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

from omegaconf import DictConfig, OmegaConf

from vigc import dist
from vigc.config import (
    Problems,
    build_model,
    check_model_inputs,
    check_output_dir,
    validate_builder_kwargs,
    validate_config,
)
from vigc.errors import ConfigError
from vigc.generation.inputs import parse_shard
from vigc.generation.records import RunPaths
from vigc.generation.runner import RunContext, split_run_section
from vigc.generation.sources import GenerationSource
from vigc.models.vigc_model import VIGCModel
from vigc.registry import DATASETS, TASKS

logger = logging.getLogger(__name__)


@runtime_checkable
class GenerationTask(Protocol):
    """What `run_generation` needs of a task built from a ``run`` section.

    Implemented by `LlavaGeneration` and `VQAGeneration`. A structural check (``isinstance`` on this Protocol)
    tells a generation task from a training task, which has no ``run``.

    Attributes:
        output_dir: Folder of runs (a run folder is made inside).
        device: Where the model runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
    """

    output_dir: str
    device: str

    def run(
        self,
        model: VIGCModel,
        source: GenerationSource,
        *,
        config: dict[str, Any],
        run_id: str | None = None,
        shard: tuple[int, int] | None = None,
        info: dist.DistInfo | None = None,
    ) -> RunContext:
        """Generate for every item of `source` not already in the run, then merge and export on rank 0."""
        ...


@dataclass(frozen=True)
class GenerationPlan:
    """Everything checked and built before the model: the task, its inputs and where the run goes.

    Attributes:
        task: The generation task of the ``run`` section.
        run_id: The run to resume (``run.run_id`` or the command line's), or None for a new one.
        dataset: The name of the one ``datasets`` entry.
        source: Its items and processors (no image opened yet).
        shard: ``(i, N)`` for one job of an array, or None.
    """

    task: GenerationTask
    run_id: str | None
    dataset: str
    source: GenerationSource
    shard: tuple[int, int] | None


def run_generation(cfg: DictConfig, *, source: str, run_id: str | None = None, shard: str | None = None) -> RunContext:
    """Run a generation config from start (or from where run `run_id` stopped) to the merged, exported files.

    Works in one process or under torchrun (each rank takes its share; rank 0 merges).

    Args:
        cfg: The config from `vigc.config.load_config` (builders registered: `vigc.builtins.register_all`).
        source: The config file, for messages and provenance.
        run_id: Resume this run (``run.run_id`` in the config wins).
        shard: ``i/N`` (0-based): only this share of the inputs, for cluster array jobs (merge afterwards).

    Returns:
        The run's paths and this process's place in it.

    Raises:
        ConfigError: Listing every problem of the config, its inputs and the command line.
        VIGCError: A checkpoint or input that fails while the model is built or the run is written.
    """
    plan = check_generation(cfg, source=source, run_id=run_id, shard=shard)
    info = dist.init_distributed(plan.task.device)
    try:
        logger.info("%d items from datasets.%s; building the model", len(plan.source.items), plan.dataset)
        model = build_model(cfg.model, source=source).to(info.device)
        config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
        return plan.task.run(model, plan.source, config=config, run_id=plan.run_id, shard=plan.shard, info=info)
    finally:
        dist.cleanup()


def check_generation(
    cfg: DictConfig, *, source: str, run_id: str | None = None, shard: str | None = None
) -> GenerationPlan:
    """Every check before a run folder is made or a weight is read: sections, model inputs, task and value
    ranges, device, output folder, run id, the inputs (read, images not opened) and the shard.

    Raises:
        ConfigError: Listing every problem found.
    """
    problems = Problems(source)
    validate_config(cfg, source=source, problems=problems)
    if isinstance(cfg.get("model"), DictConfig):
        problems.check(check_model_inputs, cfg.model, source=source)
    task_and_id = problems.check(_generation_task, cfg, source, run_id)
    named_source = problems.check(_generation_source, cfg, source)
    shard_spec = problems.check(parse_shard, shard) if shard else None
    problems.raise_if_any()
    assert task_and_id is not None and named_source is not None  # raise_if_any raised otherwise
    (task, chosen_id), (name, inputs) = task_and_id, named_source
    return GenerationPlan(task=task, run_id=chosen_id, dataset=name, source=inputs, shard=shard_spec)


def _section(cfg: DictConfig, name: str) -> dict[str, Any]:
    section = OmegaConf.to_container(cfg[name], resolve=True) if cfg.get(name) is not None else {}
    return cast(dict[str, Any], section) if isinstance(section, dict) else {}


def _generation_task(cfg: DictConfig, source: str, cli_run_id: str | None) -> tuple[GenerationTask, str | None]:
    """Build the task of the `run` section (its value ranges are checked here) and the run id to use."""
    task_name, run_id, run_cfg = split_run_section(_section(cfg, "run"))
    builder = TASKS.get(task_name)
    validate_builder_kwargs(builder, run_cfg, section="run", source=source)
    task = builder(**run_cfg)
    if not isinstance(task, GenerationTask):
        raise ConfigError(f"{source}: run.task {task_name!r} trains a model; run it with `vigc train` (train.py).")
    run_id = run_id or cli_run_id
    if run_id is not None:
        RunPaths.create(task.output_dir, str(run_id))  # a bad id fails here, not later
    dist.check_device(task.device, key="run.device", fallback=True)
    check_output_dir(task.output_dir, key="run.output_dir")
    return task, run_id


def _generation_source(cfg: DictConfig, source: str) -> tuple[str, GenerationSource]:
    """Read the one dataset entry's inputs (annotation, list file or folder listing; images are not opened)."""
    datasets = _section(cfg, "datasets")
    if len(datasets) != 1:
        raise ConfigError(f"{source}: a generation config needs exactly one dataset entry, found {list(datasets)}.")
    ((name, entry),) = datasets.items()
    dataset_builder = DATASETS.get(name)
    validate_builder_kwargs(dataset_builder, entry or {}, section=f"datasets.{name}", source=source)
    inputs = dataset_builder(**(entry or {}))
    if not isinstance(inputs, GenerationSource):
        raise ConfigError(f"{source}: datasets.{name} is a training dataset; a generation config needs an input one.")
    if not inputs.items:
        raise ConfigError(f"{source}: datasets.{name} holds no images to generate for.")
    return name, inputs
