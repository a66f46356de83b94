"""Train a VIGC model from a config (the original's train.py).

One process, or DDP under torchrun (NCCL, or gloo on CPUs). `python train.py` takes the same arguments.

examples:
  vigc train --cfg-path vigc/projects/default/train_shapes.yaml
  torchrun --nproc_per_node=8 train.py --cfg-path vigc/projects/instruct_blip_vicuna7b/vigc/a-okvqa/normal_vigc.yaml \\
      --options model.llm_model=/models/vicuna-7b-v1.1 model.pretrained=/ckpt/instruct_blip_vicuna7b_trimmed.pth
      DDP on 8 GPUs (NCCL, or gloo on CPUs); torchrun runs a script: train.py, or $(which vigc) train
  vigc train --cfg-path ... --resume output/.../<run id>
      continue exactly where a run (or one of its checkpoints) stopped
  vigc train --cfg-path ... --options run.max_iters=100 --print-config
      the config after --options, as the run would use it (each run also saves it as config.yaml)

Outputs go to run.output_dir/<run id>/: config.yaml, train.log, metrics.jsonl, checkpoint_<iteration>/, best/.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from vigc.cli.common import config_or_print, exit_on_error, setup_logging, standalone

logger = logging.getLogger("vigc.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training command's arguments (the original's ``--cfg-path`` and ``--options``, plus ours)."""
    parser.add_argument(
        "--cfg-path", required=True, metavar="YAML", help="the training config (YAML; vigc/projects/... from anywhere)"
    )
    parser.add_argument(
        "--options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="overrides section.key=value, e.g. run.max_iters=100 model.llm_model=/models/vicuna-7b",
    )
    parser.add_argument("--resume", default=None, help="checkpoint folder (or run folder) to continue exactly from")
    parser.add_argument("--print-config", action="store_true", help="print the config after --options as YAML and exit")


def run(args: argparse.Namespace) -> int:
    """Check the whole config (all problems at once, exit 2), then train."""
    setup_logging()
    return exit_on_error(lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from vigc.tasks.train import run_training

    cfg = config_or_print(args)
    if cfg is None:
        return 0
    result = run_training(cfg, source=args.cfg_path, resume=args.resume)
    logger.info("done: %s (last checkpoint %s)", result.run_dir, result.checkpoint)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python train.py ...``: this command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
