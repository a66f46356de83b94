"""Merge a generation run's records files and write the result files.

examples:
  vigc merge output/default/<run id>
  vigc merge output/coco_conv/myrun --llava-export llava_conv.json
      after the --shard i/N jobs of a cluster array wrote into one run folder

Reads the task from RUN_DIR/run.json (llava_vig, vqg_question or vqg_answer) and writes merged.jsonl (each key
once, sorted), the task's file (llava_qa_result.json (deprecated), question.json or question_answer.json), the
original's files in result/ (eval_epochbest.json, and question.json or question_answer.json for the OKVQA passes)
and optionally LLaVA's training format. Safe to run again, and on a crashed or unfinished run (it warns when
writers are still running). Exit status: 0 done, 2 bad input. `python -m vigc.tools.merge_records` is the same.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from vigc.cli.common import exit_on_error, standalone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run folder and where to write LLaVA's format."""
    parser.add_argument("run_dir", type=Path, help="the run folder: <output_dir>/<run_id>")
    parser.add_argument("--llava-export", type=Path, help="also write LLaVA's training format to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Merge and export; one ``error:`` line (exit 2) for a run folder that cannot be read or written."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return exit_on_error(lambda: _merge(args), os_error=str)


def _merge(args: argparse.Namespace) -> int:
    from vigc.generation.merge import merge

    print("\n".join(merge(args.run_dir, args.llava_export)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """This command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
