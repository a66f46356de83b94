"""Merging a generation run: every records file into ``merged.jsonl``, then the run's exports.

`merge` is the end of every generation run and of `python -m vigc.tools.merge_records` (cluster array jobs): it
reads the task from ``RUN_DIR/run.json`` (``llava_vig``, ``vqg_question`` or ``vqg_answer``), writes
``merged.jsonl`` (each key once, sorted), the task's file (``llava_qa_result.json`` (deprecated), ``question.json``
or ``question_answer.json``), the original's files in ``result/`` (see `vigc.generation.result_files`) and
optionally LLaVA's training format. Safe to run again, and on a crashed or unfinished run (it warns when writers
are still running).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vigc.generation.export import TASKS, ExportError, ExportSummary, export_llava, export_original
from vigc.generation.records import busy_record_files, merge_run, read_errors, read_run_info
from vigc.generation.result_files import write_result_files

__all__ = ["merge"]

logger = logging.getLogger(__name__)


def merge(run_dir: Path, llava_export: Path | None = None) -> list[str]:
    """Merge `run_dir` and write its exports.

    Args:
        run_dir: A generation run folder (holding ``run.json`` and ``records.*.jsonl``).
        llava_export: Where to write LLaVA's training format, or None.

    Returns:
        Summary lines for the user.

    Raises:
        VIGCError: When the folder is not a usable run (missing, no ``run.json``, unknown task, no records).
    """
    if not run_dir.is_dir():
        raise ExportError(f"Run folder {run_dir} does not exist.")
    task = read_run_info(run_dir)["task"]
    if task not in TASKS:
        raise ExportError(f"{run_dir / 'run.json'} names the task {task!r}; this tool knows {', '.join(TASKS)}.")
    busy = busy_record_files(run_dir)
    if busy:
        logger.warning("%d writer(s) still running (%s); the merge is partial", len(busy), busy[0].name)
    records = merge_run(run_dir)
    summaries = [export_original(task, records, run_dir), *write_result_files(task, records, run_dir)]
    if llava_export is not None:
        summaries.append(export_llava(records, llava_export))
    done = {record["key"] for record in records}
    failed = {entry.get("key") for entry in read_errors(run_dir)} - done
    lines = [f"{task}: {len(records)} record(s) in {run_dir / 'merged.jsonl'}"]
    lines += [_describe(summary) for summary in summaries]
    if failed:
        lines.append(f"{len(failed)} input(s) failed and have no record; see {run_dir}/errors.*.jsonl")
    return lines


def _describe(summary: ExportSummary) -> str:
    skipped = f" ({summary.skipped} left out)" if summary.skipped else ""
    return f"wrote {summary.written} element(s) to {summary.path}{skipped}"
