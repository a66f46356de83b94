"""The original's result files, rebuilt from merged records: ``result/eval_epochbest.json`` and, for the OKVQA
passes, ``result/question.json`` / ``result/question_answer.json``.

The original (a LAVIS fork) kept each rank's results in memory and, in ``after_evaluation``, called
``save_result(result, result_dir, filename="{split}_epoch{epoch}", remove_duplicate="image_id")``. Under
``evaluate.py`` the split is ``eval`` (``test_splits``) and the epoch ``best``, and ``result_dir`` is
``<output_dir>/<job id>/result``, hence ``result/eval_epochbest.json``. ``save_result`` concatenated the ranks'
lists in rank order, kept the **first** element of each ``image_id`` (``remove_duplicate``) and wrote the list with
``json.dump`` (one line, no indent, non-ASCII escaped). The OKVQA task then derived, from that de-duplicated list,
``result/question.json`` (gq) or ``result/question_answer.json`` (ga), also with ``json.dump``.

Elements, as the original's ``valid_step`` built them (its evaluation datasets' ``raw_sample`` plus the results):

* LLaVA-style (``llava_vig``), valid samples only: ``image``, ``instruction``, ``image_id``, ``whole_text``,
  ``answer``, ``original_answer``, ``answer_given_question``, ``question``, ``answer_lst``.
* gq (``vqg_question``), every sample: ``image``, ``instruction``, ``image_id``, ``question_answer``;
  ``question.json``: ``{"image", "question", "ori_answer"}`` for each output that parses as ``Question: ...
  Answer: ...``.
* ga (``vqg_answer``): ``image``, ``image_id``, ``question``, ``question_answer`` (every beam), ``weight``;
  ``question_answer.json``: ``{"image", "image_id", "question", "weight", "answer"}`` with a leading ``answer:``
  removed from each beam.

Here records arrive from ``merged.jsonl`` (sorted by key, so a run's result does not depend on its world size), and
the first of each ``image_id`` in that order is kept (for several QA per image: sample 0). ``image_id`` is the input
record's, else the trailing digits of the file name (the original's ``int(name[:-4])``, which crashed on other
names), else the path. Two deliberate differences, both logged: distinct images that share an ``image_id`` are
still reduced to one element (that is the format's contract) but counted in a warning, as the records keep them
all; and ``question.json`` leaves out parsed questions that are empty, which the answer pass cannot ask.

The files are rewritten whole at every merge (after a resume too), atomically, with a final newline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vigc.data.prompts import GQ_INSTRUCTION
from vigc.generation.export import ExportError, ExportSummary, image_id_from_path
from vigc.generation.parsing import clean_short_answer, parse_question_answer
from vigc.generation.records import atomic_write_lines

__all__ = [
    "EVAL_RESULT_FILE",
    "QUESTION_ANSWER_FILE",
    "QUESTION_FILE",
    "RESULT_DIR",
    "eval_result_entries",
    "original_question_answer_entries",
    "original_question_entries",
    "remove_duplicate",
    "write_result_files",
]

logger = logging.getLogger(__name__)

RESULT_DIR = "result"
EVAL_RESULT_FILE = "eval_epochbest.json"  # save_result's "{split}_epoch{epoch}.json", split "eval", epoch "best"
QUESTION_FILE = "question.json"
QUESTION_ANSWER_FILE = "question_answer.json"
LLAVA_RESULT_FIELDS = ("whole_text", "answer", "original_answer", "answer_given_question", "question", "answer_lst")
# Written by compat VIC only: the default mode's first step stops after one sentence, so it has no whole
# uncorrected answer to report.
OPTIONAL_RESULT_FIELDS = frozenset({"answer_given_question"})

Entry = dict[str, Any]


def write_result_files(task: str, records: Iterable[Mapping[str, Any]], run_dir: Path) -> list[ExportSummary]:
    """Write ``run_dir/result/eval_epochbest.json`` and the task's derived file (see the module docstring).

    Args:
        task: The run's task: "llava_vig", "vqg_question" or "vqg_answer".
        records: The merged records, in ``merged.jsonl`` order.
        run_dir: The run folder.

    Returns:
        One summary per file written; ``skipped`` counts records left out (invalid samples, duplicates).

    Raises:
        ExportError: On an unknown task or a record that lacks a field its task always writes.
    """
    records = list(records)
    entries = remove_duplicate(eval_result_entries(task, records))
    result_dir = Path(run_dir) / RESULT_DIR
    summaries = [_write(result_dir / EVAL_RESULT_FILE, entries, len(records))]
    derived: dict[str, tuple[str, Callable[[list[Entry]], list[Entry]]]] = {
        "vqg_question": (QUESTION_FILE, original_question_entries),
        "vqg_answer": (QUESTION_ANSWER_FILE, original_question_answer_entries),
    }
    if task in derived:
        name, build = derived[task]
        summaries.append(_write(result_dir / name, build(entries), len(records)))
    return summaries


def eval_result_entries(task: str, records: Iterable[Mapping[str, Any]]) -> list[Entry]:
    """The elements the original's ``valid_step`` returned for these records, before de-duplication.

    Raises:
        ExportError: On an unknown task or a malformed record.
    """
    builders: dict[str, Callable[[Mapping[str, Any]], Entry | None]] = {
        "llava_vig": _llava_entry,
        "vqg_question": _question_pass_entry,
        "vqg_answer": _answer_pass_entry,
    }
    if task not in builders:
        raise ExportError(f"Unknown generation task {task!r}; expected one of {', '.join(builders)}.")
    return [entry for record in records if (entry := builders[task](record)) is not None]


def remove_duplicate(entries: Iterable[Entry], field: str = "image_id") -> list[Entry]:
    """LAVIS ``save_result(remove_duplicate=field)``: keep the first element of each `field` value, in order.

    Distinct images (another ``image``) that lose their element to an earlier one with the same value are counted
    in a warning: the original dropped them silently.
    """
    kept: dict[Any, Entry] = {}
    duplicates = distinct = 0
    for entry in entries:
        value = json.dumps(entry[field], sort_keys=True)  # ids are JSON values; 1 and "1" stay different
        if value not in kept:
            kept[value] = entry
            continue
        duplicates += 1
        distinct += kept[value].get("image") != entry.get("image")
    if duplicates:
        logger.info("result files keep one element per %s: %d duplicate(s) left out", field, duplicates)
    if distinct:
        logger.warning(
            "%d distinct image(s) share an %s with an earlier one and are left out of the result/ files, as the "
            "original did; merged.jsonl and the other exports keep them",
            distinct,
            field,
        )
    return list(kept.values())


def original_question_entries(entries: Iterable[Entry]) -> list[Entry]:
    """gq ``question.json``: ``{"image", "question", "ori_answer"}`` for each output with a non-empty question."""
    questions = []
    for entry in entries:
        parsed = parse_question_answer(entry["question_answer"])
        if parsed is not None and parsed[0]:
            questions.append({"image": entry["image"], "question": parsed[0], "ori_answer": parsed[1]})
    return questions


def original_question_answer_entries(entries: Iterable[Entry]) -> list[Entry]:
    """ga ``question_answer.json``: each element without ``question_answer``, plus the cleaned ``answer`` beams."""
    return [
        {
            **{name: value for name, value in entry.items() if name != "question_answer"},
            "answer": [clean_short_answer(text) for text in entry["question_answer"]],
        }
        for entry in entries
    ]


def _llava_entry(record: Mapping[str, Any]) -> Entry | None:
    if record.get("valid") is False or record.get("question") is None:
        return None  # the original appended valid samples only
    entry = {"image": _field(record, "image"), "instruction": _field(record, "instruction")}
    entry["image_id"] = _image_id(record)
    fields = [name for name in LLAVA_RESULT_FIELDS if name in record or name not in OPTIONAL_RESULT_FIELDS]
    return entry | {name: _field(record, name) for name in fields}


def _question_pass_entry(record: Mapping[str, Any]) -> Entry:
    return {
        "image": _field(record, "image"),
        "instruction": GQ_INSTRUCTION,  # the dataset's instruction, without the drawn " Question: {word}"
        "image_id": _image_id(record),
        "question_answer": _field(record, "question_answer"),
    }


def _answer_pass_entry(record: Mapping[str, Any]) -> Entry:
    beams, weights = record.get("question_answer"), record.get("weight")
    if not isinstance(beams, list) or not isinstance(weights, list) or len(beams) != len(weights):
        raise ExportError(
            f"Record {record.get('key')!r} is not an answer-pass record: it needs 'question_answer' and 'weight' "
            "lists of equal length. Was the run's task set correctly in run.json?"
        )
    return {
        "image": _field(record, "image"),
        "image_id": _image_id(record),
        "question": _field(record, "question"),
        "question_answer": beams,
        "weight": weights,
    }


def _image_id(record: Mapping[str, Any]) -> Any:
    image_id = record.get("image_id")
    return image_id if image_id is not None else image_id_from_path(_field(record, "image"))


def _field(record: Mapping[str, Any], name: str) -> Any:
    if name not in record:
        raise ExportError(
            f"Record {record.get('key')!r} has no {name!r} field; it was not written by a generation run of this task."
        )
    return record[name]


def _write(path: Path, entries: list[Entry], records: int) -> ExportSummary:
    """One line as the original's ``json.dump`` wrote it (default separators, non-ASCII escaped), atomically."""
    atomic_write_lines(path, [json.dumps(entries)])
    logger.info("wrote %d element(s) to %s", len(entries), path)
    return ExportSummary(path, len(entries), records - len(entries))
