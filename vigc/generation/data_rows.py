"""Generated QA as rows with one set of fields and types for every generation task, and the training formats
built from them (LLaVA, ShareGPT, preference pairs): what ``vigc export`` writes (`vigc.generation.data_export`).

The records of the three generation tasks differ (see `vigc.generation.export`): LLaVA-style VIG + VIC records
(``llava_vig``) hold VIC's ``answer`` and VIG's ``original_answer``; the question pass (``vqg_question``, gq) holds
VIG's ``ori_answer``; the answer pass (``vqg_answer``, ga) holds ``answer`` and ``weight`` as lists of beams. Read
as JSON, the same name then has several types (``answer`` a string or a list; ``answer_lst`` a list of strings,
an empty list that type inference calls a list of nulls, or absent), so files of different tasks do not concatenate
in ``datasets``. `dataset_row` maps every record onto `QARow`, whose columns (`COLUMNS`) have one type whatever
the task:

* ``answer`` is the answer to train on: VIC's (llava), VIG's (gq), the beam of highest weight (ga);
* ``original_answer`` is VIG's own answer (llava ``original_answer``, gq/ga ``ori_answer``), for comparison;
* ``answer_lst`` is always a list of strings (paragraph-mode units, else empty), ``answers``/``weights`` hold
  every beam of the answer pass with its weight (empty for the other tasks).

Only usable QA become rows: a valid sample with a non-empty question and answer (`dataset_row` gives None for
the rest), the rule `vigc.generation.export.llava_conversation` applies too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from vigc.generation.export import ExportError, single_answer
from vigc.generation.inputs import image_id_from_name

__all__ = [
    "COLUMNS",
    "IMAGE_TOKEN",
    "Conversation",
    "RUN_TASK_PASSES",
    "PairCounts",
    "QARow",
    "conversations",
    "dataset_row",
    "dpo_pairs",
    "group_by_image",
    "llava_entries",
    "normalize_space",
    "record_task",
    "sharegpt_entries",
]

IMAGE_TOKEN = "<image>"  # LLaVA's and LLaMA-Factory's placeholder, in the first human turn only
RUN_TASK_PASSES = {"vqg_question": "gq", "vqg_answer": "ga"}  # llava_vig rows keep the record's conv/desc/comp

# (name, Arrow type, nullable, meaning): the Parquet schema and the dataset card's column table.
COLUMNS: tuple[tuple[str, str, bool, str], ...] = (
    ("id", "string", False, "the record key, unique within a run"),
    ("run_id", "string", False, "the generation run"),
    ("run_task", "string", False, "llava_vig, vqg_question or vqg_answer (run.json)"),
    ("task", "string", False, "conv, desc, comp (LLaVA-style), gq (question pass) or ga (answer pass)"),
    ("sample_index", "int64", False, "which of several QA drawn for the same image and task (0 first)"),
    ("image", "string", False, "the image path, relative to the run's image folder"),
    ("image_id", "string", True, "the input's image id, else the digits of the file name (as text)"),
    ("instruction", "string", True, "the prompt VIG was given"),
    ("question", "string", False, "the generated question"),
    ("answer", "string", False, "the answer to train on: VIC's (llava), VIG's (gq), the best beam (ga)"),
    ("original_answer", "string", True, "VIG's own answer before correction"),
    ("answer_lst", "list<string>", False, "paragraph-mode answer units; empty otherwise"),
    ("answers", "list<string>", False, "ga: every beam; empty otherwise"),
    ("weights", "list<double>", False, "ga: each beam's weight; empty otherwise"),
    ("stop_reason", "string", True, "why VIC ended (llava)"),
    ("vic_mode", "string", True, "VIC mode: default, compat or verify (llava)"),
    ("model", "string", True, "the model's arch (run provenance)"),
)


@dataclass(frozen=True)
class QARow:
    """One usable QA of a generation run, with the fields of `COLUMNS` (same order and meaning)."""

    id: str
    run_id: str
    run_task: str
    task: str
    sample_index: int
    image: str
    image_id: str | None
    instruction: str | None
    question: str
    answer: str
    original_answer: str | None
    answer_lst: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    vic_mode: str | None = None
    model: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Column name -> value."""
        return asdict(self)


def dataset_row(
    record: Mapping[str, Any], run_id: str, run_task: str, run_provenance: Mapping[str, Any]
) -> QARow | None:
    """The row of one merged record, or None when it is not a usable QA (invalid, empty question or answer).

    Args:
        record: A merged generation record.
        run_id: The run's id.
        run_task: The run's task (``run.json``): "llava_vig", "vqg_question" or "vqg_answer".
        run_provenance: ``run.json``'s provenance, used where the record carries none.

    Raises:
        ExportError: The record has no image path (it was not written by a generation run).
    """
    llava = run_task not in RUN_TASK_PASSES
    question = _text(record.get("question"))
    if run_task == "vqg_answer":
        answer = single_answer(record)  # the beam of highest weight
    else:
        answer = _text(record.get("answer") if llava else record.get("ori_answer"))
    if record.get("valid") is False or not question or not answer:
        return None
    if not isinstance(record.get("image"), str):
        raise ExportError(f"Record {record.get('key')!r} has no 'image' path; it was not written by a generation run.")
    own = record.get("provenance")
    provenance: Mapping[str, Any] = own if isinstance(own, Mapping) else run_provenance
    beams = record.get("answer") if run_task == "vqg_answer" else None
    return QARow(
        id=str(record["key"]),
        run_id=run_id,
        run_task=run_task,
        task=record_task(record, run_task),
        sample_index=int(record.get("sample_index") or 0),
        image=record["image"],
        image_id=_image_id(record),
        instruction=_text(record.get("instruction") if llava else record.get("prompt")) or None,
        question=question,
        answer=answer,
        original_answer=_text(record.get("original_answer") if llava else record.get("ori_answer")) or None,
        answer_lst=_strings(record.get("answer_lst")),
        answers=_strings(beams),
        weights=[float(w) for w in record.get("weight", [])] if beams is not None else [],
        stop_reason=_text(record.get("stop_reason")) or None,
        vic_mode=_nested(provenance, "vic", "mode"),
        model=_nested(provenance, "model", "arch"),
    )


def record_task(record: Mapping[str, Any], run_task: str) -> str:
    """The row's ``task``: the record's conv/desc/comp in a llava_vig run, gq or ga in the VQG passes."""
    if run_task in RUN_TASK_PASSES:
        return RUN_TASK_PASSES[run_task]
    return str(record.get("task") or "llava")


def group_by_image(rows: Iterable[QARow]) -> list[list[QARow]]:
    """Rows of the same image together (images in order of first appearance), each image's by sample index."""
    groups: dict[str, list[QARow]] = {}
    for row in rows:
        groups.setdefault(row.image, []).append(row)
    return [sorted(group, key=lambda row: (row.sample_index, row.id)) for group in groups.values()]


@dataclass(frozen=True)
class Conversation:
    """Turns about one image: (question, answer) pairs, in order."""

    id: str
    image: str
    turns: list[tuple[str, str]]


def conversations(rows: Sequence[QARow], group: bool) -> list[Conversation]:
    """The conversations of the rows: with `group`, one per image (one turn pair per distinct QA, in sample
    order; its id is the image path), else one per row (its id is the record key)."""
    if not group:
        return [Conversation(row.id, row.image, [(row.question, row.answer)]) for row in rows]
    return [Conversation(g[0].image, g[0].image, _turns(g)) for g in group_by_image(rows)]


def llava_entries(items: Iterable[Conversation]) -> list[dict[str, Any]]:
    """LLaVA's training format: ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}, ...]}``,
    ``<image>`` opening the first human turn only."""
    entries = []
    for conversation in items:
        turns = []
        for index, (question, answer) in enumerate(conversation.turns):
            turns += [{"from": "human", "value": _human(question, index)}, {"from": "gpt", "value": answer}]
        entries.append({"id": conversation.id, "image": conversation.image, "conversations": turns})
    return entries


def sharegpt_entries(items: Iterable[Conversation]) -> list[dict[str, Any]]:
    """ShareGPT in the OpenAI-messages layout LLaMA-Factory reads for images (its ``mllm_demo``):
    ``{"id", "messages": [{"role": "user"|"assistant", "content"}, ...], "images": [path]}``."""
    entries = []
    for conversation in items:
        messages = []
        for index, (question, answer) in enumerate(conversation.turns):
            messages += [{"role": "user", "content": _human(question, index)}, {"role": "assistant", "content": answer}]
        entries.append({"id": conversation.id, "messages": messages, "images": [conversation.image]})
    return entries


@dataclass(frozen=True)
class PairCounts:
    """What `dpo_pairs` made of the rows.

    Attributes:
        pairs: Preference pairs written (VIC changed VIG's answer).
        unchanged: Rows where VIC's answer equals VIG's after whitespace normalisation.
        incomplete: Rows without VIG's answer.
    """

    pairs: int
    unchanged: int
    incomplete: int


def dpo_pairs(rows: Iterable[QARow]) -> tuple[list[dict[str, Any]], PairCounts]:
    """Preference pairs from VIC's corrections, in LLaMA-Factory's ShareGPT preference layout.

    The prompt is the image and the question, ``rejected`` VIG's answer (``original_answer``), ``chosen`` VIC's
    (``answer``); only where the two differ after whitespace normalisation. Element:
    ``{"id", "conversations": [{"from": "human", "value": "<image>\\n{question}"}], "chosen": {"from": "gpt",
    "value"}, "rejected": {"from": "gpt", "value"}, "images": [path]}``.
    """
    pairs: list[dict[str, Any]] = []
    unchanged = incomplete = 0
    for row in rows:
        if not row.original_answer:
            incomplete += 1
        elif normalize_space(row.original_answer) == normalize_space(row.answer):
            unchanged += 1
        else:
            pairs.append(
                {
                    "id": row.id,
                    "conversations": [{"from": "human", "value": _human(row.question, 0)}],
                    "chosen": {"from": "gpt", "value": row.answer},
                    "rejected": {"from": "gpt", "value": row.original_answer.strip()},
                    "images": [row.image],
                }
            )
    return pairs, PairCounts(len(pairs), unchanged, incomplete)


def normalize_space(text: str) -> str:
    """Runs of whitespace as one space, none at either end: answers that differ only so are the same answer."""
    return " ".join(text.split())


def _turns(group: Sequence[QARow]) -> list[tuple[str, str]]:
    """(question, answer) of each row, a repeated pair once (several samples can give the same QA)."""
    return list(dict.fromkeys((row.question, row.answer) for row in group))


def _human(question: str, index: int) -> str:
    return f"{IMAGE_TOKEN}\n{question}" if index == 0 else question


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> list[str]:
    """A list of strings whatever the record holds: a list as is (items as text), one non-empty string as [it]."""
    if isinstance(value, list):
        return [str(item) for item in value]
    return [value] if isinstance(value, str) and value else []


def _image_id(record: Mapping[str, Any]) -> str | None:
    image_id = record.get("image_id")
    if image_id is None:
        image_id = image_id_from_name(str(record["image"]))
    return None if image_id is None else str(image_id)


def _nested(mapping: Mapping[str, Any], section: str, key: str) -> str | None:
    inner = mapping.get(section)
    value = inner.get(key) if isinstance(inner, Mapping) else None
    return str(value) if value is not None else None
