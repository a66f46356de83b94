"""Merge the records files of a generation run and write the original-format result files.

For cluster array jobs: each ``--shard i/N`` job appends ``records.shard{i}of{N}.jsonl`` into one run folder;
once they are done, run::

    python -m vigc.tools.merge_records RUN_DIR [--llava-export PATH]

It reads the task from ``RUN_DIR/run.json`` (``llava_vig``, ``vqg_question`` or ``vqg_answer``), writes
``merged.jsonl`` (each key once, sorted), the task's file (``llava_qa_result.json`` (deprecated), ``question.json``
or ``question_answer.json``), the original's files in ``result/`` (``eval_epochbest.json``, and ``question.json``
or ``question_answer.json`` for the OKVQA passes; see `vigc.generation.result_files`) and optionally LLaVA's
training format. Safe to run again, and
on a crashed or unfinished run (it warns when writers are still running). Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vigc.errors import VIGCError
from vigc.generation.merge import merge

__all__ = ["main", "merge"]  # `merge` lives in vigc.generation.merge; re-exported for scripts that import it here


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the run folder: <output_dir>/<run_id>")
    parser.add_argument("--llava-export", type=Path, help="also write LLaVA's training format to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        lines = merge(args.run_dir, args.llava_export)
    except (VIGCError, OSError) as exc:  # OSError: an unreadable run folder or an unwritable export path
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
