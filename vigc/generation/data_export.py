"""Export a generation run as training data, with a dataset card.

    python -m vigc.generation.data_export RUN --format parquet|llava|sharegpt|dpo [...] --out DIR

(``vigc export`` on the command line). RUN is a generation run folder (``<output_dir>/<run_id>``); its records are
read as the merge reads them (every ``records.*.jsonl``, each key once; the run folder is not changed), each usable
QA becomes one `vigc.generation.data_rows.QARow`, and DIR receives, per format asked for:

* ``parquet`` -> ``data.parquet``: one row per QA with the same columns and types for every task (LLaVA-style
  conv/desc/comp, the VQG question and answer passes), so exports of different runs concatenate;
  ``datasets.load_dataset("parquet", data_files="DIR/data.parquet")`` reads it.
* ``llava`` -> ``llava.json``: LLaVA's training format. With ``--group`` (the default) the QA of one image form
  one multi-turn conversation, as in LLaVA's own instruction data; ``--no-group`` gives one per QA (as the
  ``llava_train.json`` a run writes).
* ``sharegpt`` -> ``sharegpt.json``: ShareGPT in the messages layout LLaMA-Factory reads for images, grouped alike.
* ``dpo`` -> ``dpo.json``: preference pairs from VIC's corrections (LLaVA-style runs only): image + question as
  the prompt, VIC's answer chosen, VIG's rejected, where the two differ after whitespace normalisation.

``sharegpt`` and ``dpo`` come with ``dataset_info.json`` (LLaMA-Factory's dataset registration), and every export
with ``README.md``, the dataset card (`vigc.generation.data_card`): model and checkpoints, settings, counts and,
when a ``vigc.eval.shapes_report`` ``report.json`` lies in RUN (or ``--report`` names one), quality numbers.

DIR must be new or empty; ``--overwrite`` replaces an earlier export there (and refuses a folder holding anything
else). Exit codes: 0 done, 2 bad input (with a one-line message).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigc.errors import VIGCError
from vigc.generation.data_card import CardData, ExportedFile, dataset_card
from vigc.generation.data_rows import (
    COLUMNS,
    PairCounts,
    QARow,
    conversations,
    dataset_row,
    dpo_pairs,
    llava_entries,
    record_task,
    sharegpt_entries,
)
from vigc.generation.export import TASKS
from vigc.generation.records import (
    atomic_write_json_array,
    atomic_write_lines,
    busy_record_files,
    read_errors,
    read_run_info,
    read_run_records,
)

__all__ = ["FILE_NAMES", "FORMATS", "DataExportError", "ExportResult", "build_parser", "export_run", "main"]

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "llava", "sharegpt", "dpo")
FILE_NAMES = {"parquet": "data.parquet", "llava": "llava.json", "sharegpt": "sharegpt.json", "dpo": "dpo.json"}
UNITS = {"parquet": "rows", "llava": "conversations", "sharegpt": "conversations", "dpo": "pairs"}
DATASET_INFO_FILE = "dataset_info.json"
CARD_FILE = "README.md"
REPORT_FILE = "report.json"  # what `vigc.eval.shapes_report --out RUN` writes into the run folder
EXPORT_FILES = frozenset({*FILE_NAMES.values(), DATASET_INFO_FILE, CARD_FILE})

EXAMPLES = """examples:
  python -m vigc.generation.data_export output/default/RUN_ID --format parquet --out export/parquet
  python -m vigc.generation.data_export RUN --format llava sharegpt dpo --out export/train
  python -m vigc.generation.data_export RUN --format llava --no-group --out export/single_turn
"""


class DataExportError(VIGCError):
    """A run cannot be exported as asked (not a run folder, no usable QA, unusable output folder)."""


@dataclass(frozen=True)
class RunData:
    """A run folder read for export: ``run.json``, the merged records, their usable QA and the failed inputs."""

    run_dir: Path
    info: dict[str, Any]
    records: list[dict[str, Any]]
    rows: list[QARow]
    failed_inputs: int


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote into `out_dir`: the data files, the pair counts (dpo) and the card."""

    out_dir: Path
    files: list[ExportedFile]
    pairs: PairCounts | None
    card: Path


def export_run(
    run_dir: Path,
    formats: Sequence[str],
    out_dir: Path,
    *,
    group: bool = True,
    overwrite: bool = False,
    report: Path | None = None,
) -> ExportResult:
    """Write the run's usable QA in `formats` into `out_dir`, with ``README.md`` (see the module docstring).

    Args:
        run_dir: A generation run folder.
        formats: Any of `FORMATS`.
        out_dir: The export folder: new, empty, or (with `overwrite`) holding an earlier export only.
        group: LLaVA and ShareGPT: one conversation per image instead of one per QA.
        overwrite: Replace an earlier export in `out_dir`.
        report: A shapes_report ``report.json`` (or its folder) for the card; default ``RUN/report.json`` if any.

    Raises:
        DataExportError: Naming what is wrong with the run, the formats or the folder; nothing is written then.
        VIGCError: When the run folder cannot be read (no ``run.json``, no records files) or a file not written.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise DataExportError(f"Unknown export format(s) {unknown or formats}; choose from {', '.join(FORMATS)}.")
    run = read_run(Path(run_dir))
    task = run.info["task"]
    if "dpo" in formats and task != "llava_vig":
        raise DataExportError(
            f"The dpo format pairs VIG's answers with VIC's corrections, which only LLaVA-style (llava_vig) runs "
            f"have; {run_dir} is a {task} run."
        )
    if "parquet" in formats:
        _require_pyarrow()
    quality, report_path = read_quality_report(report, run.run_dir)
    for stale in prepare_out_dir(Path(out_dir), overwrite):
        stale.unlink()
    out_dir = Path(out_dir)
    files, pairs = _write_formats(run, formats, out_dir, group)
    if "sharegpt" in formats or "dpo" in formats:
        _write_dataset_info(out_dir, str(run.info.get("run_id") or run.run_dir.name), formats)
    card = CardData(
        run_info=run.info,
        run_dir=str(run_dir),
        task_counts=_task_counts(run),
        failed_inputs=run.failed_inputs,
        files=files,
        grouped=group,
        pairs=pairs,
        report=quality,
        report_path=report_path,
        image_roots=image_roots(run.info.get("config") or {}),
    )
    atomic_write_lines(out_dir / CARD_FILE, [dataset_card(card)])
    return ExportResult(out_dir, files, pairs, out_dir / CARD_FILE)


def read_run(run_dir: Path) -> RunData:
    """Read a run folder for export (see `RunData`).

    Raises:
        DataExportError: The folder does not exist, names an unknown task, or has no usable QA.
        VIGCError: No ``run.json`` or no records files.
    """
    if not run_dir.is_dir():
        raise DataExportError(f"Run folder {run_dir} does not exist; pass <output_dir>/<run_id> of a generation run.")
    info = read_run_info(run_dir)
    task = info["task"]
    if task not in TASKS:
        raise DataExportError(f"{run_dir / 'run.json'} names the task {task!r}; exports know {', '.join(TASKS)}.")
    busy = busy_record_files(run_dir)
    if busy:
        logger.warning("%d writer(s) still running in %s; the export is partial", len(busy), run_dir)
    records = read_run_records(run_dir)
    if not records:
        raise DataExportError(f"{run_dir} has no records yet: the run wrote nothing; nothing to export.")
    run_id, provenance = str(info.get("run_id") or run_dir.name), info.get("provenance") or {}
    rows = [row for record in records if (row := dataset_row(record, run_id, task, provenance)) is not None]
    if not rows:
        raise DataExportError(
            f"None of the {len(records)} record(s) of {run_dir} is a usable QA (all invalid or with an empty "
            "question or answer); nothing to export."
        )
    failed = {entry.get("key") for entry in read_errors(run_dir)} - {record["key"] for record in records}
    return RunData(run_dir, info, records, rows, len(failed))


def prepare_out_dir(out_dir: Path, overwrite: bool) -> list[Path]:
    """Check that `out_dir` can take an export and create it; returns the earlier export's files to replace.

    Raises:
        DataExportError: It is a file, is not empty (without `overwrite`), holds other files, or is not writable.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DataExportError(f"--out {out_dir} is a file; give a folder for the export.")
    existing = sorted(out_dir.iterdir()) if out_dir.is_dir() else []
    if existing and not overwrite:
        raise DataExportError(
            f"--out {out_dir} is not empty; choose a new folder, or pass --overwrite to replace an earlier export."
        )
    foreign = [path.name for path in existing if path.name not in EXPORT_FILES or not path.is_file()]
    if foreign:
        raise DataExportError(
            f"--out {out_dir} holds files that are not from an export ({', '.join(foreign[:5])}); --overwrite "
            "only replaces an earlier export. Choose another folder."
        )
    probe = out_dir / f".write-test.{secrets.token_hex(4)}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.touch()
    except OSError as exc:
        raise DataExportError(
            f"Cannot write in --out {out_dir}: {exc.strerror or exc}; choose a writable folder."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return existing


def read_quality_report(path: Path | None, run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A shapes_report ``report.json``: `path` (a file or its folder) or, when None, ``RUN/report.json`` if any.

    Returns:
        The report and where it was read, or (None, None) when there is none.

    Raises:
        DataExportError: `path` was given but is missing or not a report.
    """
    explicit = path is not None
    file = (path / REPORT_FILE if path.is_dir() else path) if path is not None else run_dir / REPORT_FILE
    if not file.is_file():
        if explicit:
            raise DataExportError(f"--report {path}: no such file (the report.json of vigc.eval.shapes_report --out).")
        return None, None
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report, error = None, str(exc)
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        message = f"{file} is not a shapes_report report.json" + (f" ({error})" if report is None else "")
        if explicit:
            raise DataExportError(message + ".")
        logger.warning("%s; the card reports no quality numbers", message)
        return None, None
    return report, str(file)


def image_roots(config: dict[str, Any]) -> list[str]:
    """The image folders of a run's config (``datasets.<name>.images`` or ``.build_info.images``)."""
    roots = []
    for dataset in (config.get("datasets") or {}).values():
        if isinstance(dataset, dict):
            for section in (dataset, dataset.get("build_info") or {}):
                value = section.get("images") if isinstance(section, dict) else None
                if isinstance(value, str) and value and value not in roots:
                    roots.append(value)
    return roots


def _write_formats(
    run: RunData, formats: Sequence[str], out_dir: Path, group: bool
) -> tuple[list[ExportedFile], PairCounts | None]:
    files, pairs = [], None
    for name in formats:
        path = out_dir / FILE_NAMES[name]
        if name == "parquet":
            write_parquet(run.rows, path)
            files.append(ExportedFile(name, path.name, len(run.rows), len(run.rows)))
        elif name == "dpo":
            entries, pairs = dpo_pairs(run.rows)
            atomic_write_json_array(path, entries)
            files.append(ExportedFile(name, path.name, len(entries), len(entries)))
        else:
            items = conversations(run.rows, group)
            build = llava_entries if name == "llava" else sharegpt_entries
            atomic_write_json_array(path, build(items))
            files.append(ExportedFile(name, path.name, len(items), sum(len(item.turns) for item in items)))
        logger.info("wrote %d %s to %s", files[-1].entries, UNITS[name], path)
    return files, pairs


def write_parquet(rows: Sequence[QARow], path: Path) -> None:
    """Write `rows` as Parquet with the fixed schema of `vigc.generation.data_rows.COLUMNS`, atomically."""
    import pyarrow as pa  # only the parquet format needs it
    import pyarrow.parquet as pq

    kinds = {
        "string": pa.string(),
        "int64": pa.int64(),
        "list<string>": pa.list_(pa.string()),
        "list<double>": pa.list_(pa.float64()),
    }
    schema = pa.schema([pa.field(name, kinds[kind], nullable=null) for name, kind, null, _ in COLUMNS])
    table = pa.Table.from_pylist([row.as_dict() for row in rows], schema=schema)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise DataExportError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _write_dataset_info(out_dir: Path, run_id: str, formats: Sequence[str]) -> None:
    """LLaMA-Factory's registration of the ShareGPT and preference files (``dataset_info.json``)."""
    info: dict[str, Any] = {}
    if "sharegpt" in formats:
        info[f"vigc_{run_id}"] = {
            "file_name": FILE_NAMES["sharegpt"],
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    if "dpo" in formats:
        info[f"vigc_{run_id}_dpo"] = {
            "file_name": FILE_NAMES["dpo"],
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "images": "images"},
        }
    atomic_write_lines(out_dir / DATASET_INFO_FILE, [json.dumps(info, indent=2)])


def _task_counts(run: RunData) -> dict[str, tuple[int, int]]:
    task = run.info["task"]
    records = Counter(record_task(record, task) for record in run.records)
    usable = Counter(row.task for row in run.rows)
    return {name: (count, usable[name]) for name, count in sorted(records.items())}


def _require_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise DataExportError("The parquet format needs pyarrow: pip install pyarrow") from None


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The epilog's lines kept, and the default of each option that has one shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``vigc export`` (parsing imports nothing heavy)."""
    parser = argparse.ArgumentParser(
        prog="python -m vigc.generation.data_export",
        description="Export a generation run as training data (Parquet, LLaVA, ShareGPT, DPO pairs) with a "
        "dataset card.",
        epilog=EXAMPLES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="the run folder: <output_dir>/<run_id>")
    parser.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=FORMATS,
        required=True,
        metavar="FORMAT",
        help=f"one or more of {', '.join(FORMATS)}",
    )
    parser.add_argument("--out", type=Path, required=True, help="the export folder (new or empty)")
    parser.add_argument(
        "--group",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="llava/sharegpt: the QA of one image as one multi-turn conversation",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    parser.add_argument(
        "--report", type=Path, default=None, help="a shapes_report report.json for the card (default: RUN/report.json)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 done, 2 bad input)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = export_run(
            args.run_dir, args.formats, args.out, group=args.group, overwrite=args.overwrite, report=args.report
        )
    except (VIGCError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for file in result.files:
        print(f"{file.format}: {file.entries} {UNITS[file.format]} ({file.turns} QA) in {result.out_dir / file.name}")
    if result.pairs is not None:
        pairs = result.pairs
        print(f"dpo: left out {pairs.unchanged} QA that VIC left unchanged, {pairs.incomplete} without VIG's answer")
        if pairs.incomplete:  # default VIC keeps VIG's answer only when asked
            print("dpo: to pair those, generate with --options run.vig_answer=true (VIG's answer is kept then)")
    print(f"dataset card: {result.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
