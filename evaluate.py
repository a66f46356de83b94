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

from vigc.builtins import register_all
from vigc.config import load_config
from vigc.errors import VIGCError, output_error_message
from vigc.tasks.generate import run_generation


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg-path", required=True, help="the generation config (YAML)")
    parser.add_argument("--options", nargs="+", default=[], help="overrides: section.key=value ...")
    parser.add_argument("--run-id", default=None, help="resume this run (default: a new id)")
    parser.add_argument("--shard", default=None, help="only shard i of N (0-based), e.g. 3/16, for array jobs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank{rank}] %(levelname)s %(name)s: %(message)s",
    )
    register_all()
    try:
        ctx = run_generation(
            load_config(args.cfg_path, args.options), source=args.cfg_path, run_id=args.run_id, shard=args.shard
        )
    except VIGCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a folder that went away mid-run: the records so far are kept
        print(f"error: {output_error_message(exc)}", file=sys.stderr)
        return 2
    if ctx.info.is_main:
        print(f"records: {ctx.paths.run_dir}  (resume with --run-id {ctx.paths.run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
