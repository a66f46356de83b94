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

from omegaconf import OmegaConf

from vigc import dist
from vigc.builtins import register_all
from vigc.config import build_model, load_config, validate_builder_kwargs, validate_config
from vigc.errors import ConfigError, VIGCError
from vigc.generation.inputs import parse_shard
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


def run(args: argparse.Namespace) -> None:
    """Validate everything cheap first (config, task, inputs), then build the model and generate."""
    register_all()
    source_name = args.cfg_path
    cfg = load_config(args.cfg_path, args.options)
    validate_config(cfg, source=source_name)
    task_name, run_id, run_cfg = split_run_section(_section(cfg, "run"))
    builder = TASKS.get(task_name)
    run_id = run_id or args.run_id
    validate_builder_kwargs(builder, run_cfg, section="run", source=source_name)
    task = builder(**run_cfg)
    if getattr(task, "kind", None) != "generate":
        raise ConfigError(f"{source_name}: run.task {task_name!r} trains a model; run it with train.py.")
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
    shard = parse_shard(args.shard) if args.shard else None
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
    finally:
        dist.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
