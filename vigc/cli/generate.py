"""Generate QA data with a config (the original's evaluate.py).

One process, or one per GPU under torchrun. `python evaluate.py` takes the same arguments.

examples:
  vigc generate --cfg-path vigc/projects/default/generate_qa.yaml
      the embedded default model on the packaged sample images (CPU, seconds)
  vigc generate --cfg-path vigc/projects/default/generate_qa.yaml --options run.llava_task=conv \\
      datasets.image_folder.images=/path/to/images
  vigc generate --cfg-path vigc/projects/mini_gpt4_vicuna7b/generate_qa/llava-150k/generate_llava_qa_conv.yaml \\
      --options model.llm_model=/models/vicuna-7b model.finetuned=/ckpt/vigc7b_minigpt4_llava.pth \\
      datasets.instruct_blip_coco2017_vig_test.build_info.images=/data/coco/train2017
  torchrun --nproc_per_node=8 evaluate.py --cfg-path ...
      the same on 8 GPUs (torchrun runs a script: evaluate.py, or $(which vigc) generate)
  vigc generate --cfg-path ... --shard 3/16 --run-id myrun
      one job of a cluster array; then: vigc merge output/.../myrun
  vigc generate --cfg-path ... --options run.generate_cfg.num_beams=1 --print-config
      the config after --options, as the run would use it

Records are appended to run.output_dir/<run id>/records.*.jsonl as they are made; the same command with
--run-id <id> resumes. At the end the records are merged and exported (the original's file names, LLaVA format).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vigc.cli.common import config_or_print, exit_on_error, setup_logging, standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generation command's arguments (the original's ``--cfg-path`` and ``--options``, and ours)."""
    parser.add_argument(
        "--cfg-path",
        required=True,
        metavar="YAML",
        help="the generation config (YAML; vigc/projects/... from anywhere)",
    )
    parser.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE", help="overrides: section.key=value ..."
    )
    parser.add_argument("--run-id", default=None, help="resume this run (default: a new id)")
    parser.add_argument("--shard", default=None, help="only shard i of N (0-based), e.g. 3/16, for array jobs")
    parser.add_argument("--print-config", action="store_true", help="print the config after --options as YAML and exit")


def run(args: argparse.Namespace) -> int:
    """Check everything cheap first (all problems at once, exit 2), then build the model and generate."""
    setup_logging()
    return exit_on_error(lambda: _generate(args))


def _generate(args: argparse.Namespace) -> int:
    from vigc.tasks.generate import run_generation

    cfg = config_or_print(args)
    if cfg is None:
        return 0
    ctx = run_generation(cfg, source=args.cfg_path, run_id=args.run_id, shard=args.shard)
    if ctx.info.is_main:
        print(f"records: {ctx.paths.run_dir}  (resume with --run-id {ctx.paths.run_id})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python evaluate.py ...``: this command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
