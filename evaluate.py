"""Generate QA data with a config, as the original's `evaluate.py` did (plain python or torchrun).

    python evaluate.py --cfg-path vigc/projects/mini_gpt4_vicuna7b/generate_qa/llava-150k/generate_llava_qa_conv.yaml \
        --options model.llm_model=/models/vicuna-7b model.finetuned=/ckpt/vigc7b_minigpt4_llava.pth \
                  datasets.instruct_blip_coco2017_vig_test.build_info.images=/data/coco/train2017
    torchrun --nproc_per_node=8 evaluate.py --cfg-path ...          # the same, on 8 GPUs
    python evaluate.py --cfg-path ... --shard 3/16 --run-id myrun    # one job of a cluster array (then merge)

Records are appended to `run.output_dir/<run id>/records.*.jsonl` as they are made; running again with the same
`--run-id` resumes. At the end the records are merged and exported (the original's file names, LLaVA format).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vigc import dist
from vigc.builtins import register_all
from vigc.config import (
    Problems,
    build_model,
    check_model_inputs,
    check_output_dir,
    load_config,
    validate_builder_kwargs,
    validate_config,
)
from vigc.dist import check_device
from vigc.errors import ConfigError, VIGCError, output_error_message
from vigc.generation.inputs import parse_shard
from vigc.generation.records import RunPaths
from vigc.generation.runner import split_run_section
from vigc.registry import DATASETS, TASKS

logger = logging.getLogger("vigc.evaluate")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="the generation config (YAML)")
    parser.add_argument("--options", nargs="+", default=[], help="overrides: section.key=value ...")
    parser.add_argument("--run-id", default=None, help="resume this run (default: a new id)")
    parser.add_argument("--shard", default=None, help="only shard i of N (0-based), e.g. 3/16, for array jobs")
    return parser.parse_args(argv)


def _section(cfg: Any, name: str) -> dict[str, Any]:
    return dict(OmegaConf.to_container(cfg[name], resolve=True)) if cfg.get(name) is not None else {}  # type: ignore[arg-type]


def _generation_task(cfg: Any, source_name: str, cli_run_id: str | None) -> tuple[Any, str | None]:
    """Build the task of the `run` section (its value ranges are checked here) and the run id to use."""
    task_name, run_id, run_cfg = split_run_section(_section(cfg, "run"))
    builder = TASKS.get(task_name)
    validate_builder_kwargs(builder, run_cfg, section="run", source=source_name)
    task = builder(**run_cfg)
    if getattr(task, "kind", None) != "generate":
        raise ConfigError(f"{source_name}: run.task {task_name!r} trains a model; run it with train.py.")
    run_id = run_id or cli_run_id
    if run_id is not None:
        RunPaths.create(getattr(task, "output_dir", "output"), str(run_id))  # a bad id fails here, not later
    check_device(task.device, key="run.device", fallback=True)
    check_output_dir(task.output_dir, key="run.output_dir")
    return task, run_id


def _generation_source(cfg: Any, source_name: str) -> tuple[str, Any]:
    """Read the one dataset entry's inputs (annotation, list file or folder listing; images are not opened)."""
    datasets = _section(cfg, "datasets")
    if len(datasets) != 1:
        raise ConfigError(
            f"{source_name}: a generation config needs exactly one dataset entry, found {list(datasets)}."
        )
    ((name, entry),) = datasets.items()
    dataset_builder = DATASETS.get(name)
    validate_builder_kwargs(dataset_builder, entry or {}, section=f"datasets.{name}", source=source_name)
    source = dataset_builder(**(entry or {}))
    if not source.items:
        raise ConfigError(f"{source_name}: datasets.{name} holds no images to generate for.")
    return name, source


def run(args: argparse.Namespace) -> None:
    """Validate everything cheap first (config, task, inputs: all problems at once), then build the model."""
    register_all()
    source_name = args.cfg_path
    cfg = load_config(args.cfg_path, args.options)
    problems = Problems(source_name)
    validate_config(cfg, source=source_name, problems=problems)
    if isinstance(cfg.get("model"), DictConfig):
        problems.check(check_model_inputs, cfg.model, source=source_name)
    task_and_id = problems.check(_generation_task, cfg, source_name, args.run_id)
    named_source = problems.check(_generation_source, cfg, source_name)
    shard = problems.check(parse_shard, args.shard) if args.shard else None
    problems.raise_if_any()
    assert task_and_id is not None and named_source is not None  # raise_if_any raised otherwise
    (task, run_id), (name, source) = task_and_id, named_source
    info = dist.init_distributed(task.device)
    logger.info("%d items from datasets.%s; building the model", len(source.items), name)
    model = build_model(cfg.model, source=source_name).to(info.device)
    ctx = task.run(
        model, source, config=OmegaConf.to_container(cfg, resolve=True), run_id=run_id, shard=shard, info=info
    )
    if info.is_main:
        print(f"records: {ctx.paths.run_dir}  (resume with --run-id {ctx.paths.run_id})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank{rank}] %(levelname)s %(name)s: %(message)s",
    )
    try:
        run(args)
    except VIGCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a folder that went away mid-run: the records so far are kept
        print(f"error: {output_error_message(exc)}", file=sys.stderr)
        return 2
    finally:
        dist.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
