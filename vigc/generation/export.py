"""Exports of merged generation records: our original-style files, and LLaVA's training format.

Original-style files, written into the run folder by task (``run.json`` field ``task``), not de-duplicated:

* ``llava_vig`` -> ``llava_qa_result.json``: each input record plus ``instruction``, ``question``, ``answer``,
  ``original_answer``, ``answer_given_question``, ``whole_text``, ``answer_lst`` (and our extra fields).
* ``vqg_question`` (gq) -> ``question.json``: ``{"image", "question", "ori_answer"}`` (+ ``image_id`` when known),
  the input of the ga pass.
* ``vqg_answer`` (ga) -> ``question_answer.json``: ``{"image", "image_id", "question", "weight": [...],
  "answer": [...]}``, the input format of the COCO-pseudo training set.

The original's own files, with its names, fields and de-duplication by ``image_id``, are written beside these into
``result/`` (``result/eval_epochbest.json``, and ``result/question.json`` / ``result/question_answer.json``): see
`vigc.generation.result_files`. ``llava_qa_result.json`` is deprecated (kept so existing scripts keep working; it
will be removed): like ``result/eval_epochbest.json`` it holds the valid samples only, but with every input and
record field except our bookkeeping (``key``, ``valid``, ``provenance``: run.json holds it once) and nothing
de-duplicated by ``image_id`` (records arrive unique by key). ``question.json`` also carries
``image_id`` when the input had one, so the ga pass can write it without parsing file names (the original's
``int(file_name[:-4])`` crashed on other names); without one, the trailing digits of the file name are used, else
the image path.

Files are JSON arrays with one element per line, written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigc.errors import VIGCError
from vigc.generation.inputs import image_id_from_name
from vigc.generation.records import atomic_write_json_array

__all__ = [
    "BOOKKEEPING_FIELDS",
    "ORIGINAL_FILE_NAMES",
    "TASKS",
    "ExportError",
    "ExportSummary",
    "export_llava",
    "export_original",
    "image_id_from_path",
    "llava_conversation",
    "llava_result_entries",
    "question_answer_entries",
    "question_entries",
    "single_answer",
]

logger = logging.getLogger(__name__)

ORIGINAL_FILE_NAMES = {
    "llava_vig": "llava_qa_result.json",
    "vqg_question": "question.json",
    "vqg_answer": "question_answer.json",
}
TASKS = tuple(ORIGINAL_FILE_NAMES)
BOOKKEEPING_FIELDS = ("key", "valid", "provenance")  # run.json holds the provenance once

Entries = tuple[list[dict[str, Any]], int]


class ExportError(VIGCError):
    """Records cannot be exported (unknown task, or a record lacks a field its task always writes)."""


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote.

    Attributes:
        path: The file written.
        written: Elements written.
        skipped: Records left out (invalid samples, or empty question/answer for LLaVA).
    """

    path: Path
    written: int
    skipped: int


def export_original(task: str, records: Iterable[Mapping[str, Any]], run_dir: Path) -> ExportSummary:
    """Write the original-style file of `task` (see the module docstring) into `run_dir`.

    Raises:
        ExportError: On an unknown task or a malformed ga record.
    """
    builders: dict[str, Callable[[Iterable[Mapping[str, Any]]], Entries]] = {
        "llava_vig": llava_result_entries,
        "vqg_question": question_entries,
        "vqg_answer": question_answer_entries,
    }
    if task not in builders:
        raise ExportError(f"Unknown generation task {task!r}; expected one of {', '.join(TASKS)}.")
    entries, skipped = builders[task](records)
    path = Path(run_dir) / ORIGINAL_FILE_NAMES[task]
    atomic_write_json_array(path, entries)
    if skipped:
        logger.info("%s: left out %d invalid sample(s)", path.name, skipped)
    logger.info("wrote %d element(s) to %s", len(entries), path)
    return ExportSummary(path, len(entries), skipped)


def llava_result_entries(records: Iterable[Mapping[str, Any]]) -> Entries:
    """LLaVA-style VIG/VIC results: each valid record minus `BOOKKEEPING_FIELDS`; returns (entries, skipped)."""
    entries, skipped = [], 0
    for record in records:
        if record.get("valid") is False or record.get("question") is None:
            skipped += 1
            continue
        entries.append({name: value for name, value in record.items() if name not in BOOKKEEPING_FIELDS})
    return entries, skipped


def question_entries(records: Iterable[Mapping[str, Any]]) -> Entries:
    """gq ``question.json`` elements from records with a parsed, non-empty question; returns (entries, skipped)."""
    entries, skipped = [], 0
    for record in records:
        question, ori_answer = record.get("question"), record.get("ori_answer")
        if record.get("valid") is False or not isinstance(question, str) or not question or ori_answer is None:
            skipped += 1
            continue
        entry = {"image": _required(record, "image"), "question": question, "ori_answer": ori_answer}
        if record.get("image_id") is not None:
            entry["image_id"] = record["image_id"]
        entries.append(entry)
    return entries, skipped


def question_answer_entries(records: Iterable[Mapping[str, Any]]) -> Entries:
    """ga ``question_answer.json`` elements (every beam's answer and weight); returns (entries, 0).

    Raises:
        ExportError: When a record lacks ``answer``/``weight`` lists of equal length.
    """
    entries, derived_ids = [], 0
    for record in records:
        answers, weights = record.get("answer"), record.get("weight")
        if not isinstance(answers, list) or not isinstance(weights, list) or len(answers) != len(weights):
            raise ExportError(
                f"Record {record.get('key')!r} is not an answer-pass record: it needs 'answer' and 'weight' lists "
                "of equal length. Was the run's task set correctly in run.json?"
            )
        image, question, image_id = _required(record, "image"), _required(record, "question"), record.get("image_id")
        if image_id is None:
            image_id, derived_ids = image_id_from_path(image), derived_ids + 1
        entries.append(
            {"image": image, "image_id": image_id, "question": question, "weight": weights, "answer": answers}
        )
    if derived_ids:
        logger.warning("%d record(s) had no image_id; derived it from the file name (or used the path)", derived_ids)
    return entries, 0


def export_llava(records: Iterable[Mapping[str, Any]], path: str | Path) -> ExportSummary:
    """Write records in LLaVA's training format (a JSON array of single-turn conversations).

    Records without a usable question and answer are skipped and counted (see `llava_conversation`).

    Args:
        records: Merged records of any generation task.
        path: The JSON file to write.
    """
    path = Path(path)
    entries, skipped = [], 0
    for record in records:
        conversation = llava_conversation(record)
        if conversation is None:
            skipped += 1
        else:
            entries.append(conversation)
    atomic_write_json_array(path, entries)
    if skipped:
        logger.warning("LLaVA export: skipped %d record(s) with an empty question or answer", skipped)
    logger.info("wrote %d conversation(s) to %s", len(entries), path)
    return ExportSummary(path, len(entries), skipped)


def llava_conversation(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """One record as ``{"id", "image", "conversations": [human, gpt]}``; None when it is not usable data.

    The id is the record key (stable across runs). A list answer (ga pass) contributes its highest-weight beam.
    Invalid records and empty (or whitespace) questions or answers give None.
    """
    question, answer = record.get("question"), single_answer(record)
    if record.get("valid") is False or not isinstance(question, str) or not question.strip() or not answer:
        return None
    return {
        "id": _required(record, "key"),
        "image": _required(record, "image"),
        "conversations": [
            {"from": "human", "value": f"<image>\n{question.strip()}"},
            {"from": "gpt", "value": answer},
        ],
    }


def single_answer(record: Mapping[str, Any]) -> str:
    """The record's answer, stripped; for a list of beams, the one of highest weight (the first on ties)."""
    answer = record.get("answer")
    if isinstance(answer, list):
        weights = record.get("weight")
        if not answer:
            return ""
        if isinstance(weights, list) and len(weights) == len(answer):
            answer = answer[max(range(len(answer)), key=lambda i: (weights[i], -i))]
        else:
            answer = answer[0]
    return answer.strip() if isinstance(answer, str) else ""


def _required(record: Mapping[str, Any], name: str) -> Any:
    """A field every generation record has; its absence is a broken record, reported with the record's key."""
    if name not in record:
        raise ExportError(
            f"Record {record.get('key')!r} has no {name!r} field; it was not written by a generation run."
        )
    return record[name]


def image_id_from_path(image: str) -> int | str:
    """The original's id from the file name (``000000082363.jpg`` -> 82363), else the path."""
    image_id = image_id_from_name(image)
    return image if image_id is None else image_id
