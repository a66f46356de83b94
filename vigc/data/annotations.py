"""Readers of the training and evaluation annotation formats (SPEC §4) into one typed record, `QAAnnotation`.

Every format is a JSON array of objects (``.jsonl`` files, one object per line, are read too). Each reader
checks every record and raises `AnnotationError` naming the file, the record index, the field and what was
expected, so a bad record fails at start-up instead of in a data-loader worker hours later. No minimum number
of records, and image file names are never parsed for ids.

| reader | image | question | answers | other fields |
|---|---|---|---|---|
| `read_llava` ("cocoformat") | ``image`` | ``question`` | ``answer`` (list) | optional ``dataset`` (subset file name) |
| `read_okvqa` | ``image`` | ``question`` | ``answer`` (list) | optional ``question_id``, ``image_id`` |
| `read_aokvqa` | ``image_path`` | ``question`` | ``direct_answers`` | ``choices``, ``correct_choice_idx`` |
| `read_vqav2` | ``image`` | ``question`` | ``answer`` (list) | optional ids |
| `read_coco_pseudo` | ``image`` | ``question`` | ``answer`` (str or list) | ``weight`` (list), ``image_id`` |
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vigc.errors import VIGCError

__all__ = [
    "READERS",
    "AnnotationError",
    "QAAnnotation",
    "load_records",
    "read_aokvqa",
    "read_coco_pseudo",
    "read_image_id_groups",
    "read_llava",
    "read_okvqa",
    "read_vqav2",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
_MISSING = object()


class AnnotationError(VIGCError):
    """An annotation file is missing, is not JSON / JSON Lines, or holds a malformed record."""


@dataclass(frozen=True)
class QAAnnotation:
    """One question about one image with its reference answers, whatever the source format.

    Attributes:
        image: Image path relative to the dataset's image root (or absolute), as written in the file.
        question: The question, unprocessed.
        answers: The reference answers, unprocessed, duplicates kept (their frequency is their weight).
        weights: Explicit answer weights, one per answer (COCO pseudo); None means weight by frequency.
        image_id: The record's image id, if the file has one (never parsed from the file name).
        question_id: The record's question id, if any.
        choices: Multiple-choice candidates (A-OKVQA), if any.
        correct_choice_idx: Index of the right candidate in ``choices`` (A-OKVQA), if any.
        subset: LLaVA's source file name (``dataset`` field, e.g. ``"detail_23k.json"``), if any.
    """

    image: str
    question: str
    answers: list[str]
    weights: list[float] | None = None
    image_id: int | str | None = None
    question_id: int | str | None = None
    choices: list[str] | None = None
    correct_choice_idx: int | None = None
    subset: str | None = None


class _Record:
    """Typed field access to one record; every failure names the file, the record index and the field."""

    def __init__(self, path: PathLike, index: int, data: Any) -> None:
        self.path, self.index = os.fspath(path), index
        if not isinstance(data, Mapping):
            raise AnnotationError(
                f"{self.path}: record {index} is {_show(data)}; expected a JSON object with the fields of this format."
            )
        self.data = data

    def error(self, field: str, expected: str, value: Any = _MISSING) -> AnnotationError:
        got = "is missing" if value is _MISSING else f"is {_show(value)}"
        return AnnotationError(f"{self.path}: record {self.index}: field {field!r} {got}; expected {expected}.")

    def text(self, field: str, *, non_empty: bool = False) -> str:
        value = self.data.get(field, _MISSING)
        if not isinstance(value, str) or (non_empty and not value.strip()):
            raise self.error(field, "a non-empty string" if non_empty else "a string", value)
        return value

    def optional_text(self, field: str) -> str | None:
        return self.text(field) if self.data.get(field) is not None else None

    def text_list(self, field: str) -> list[str]:
        value = self.data.get(field, _MISSING)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(field, "a non-empty list of strings", value)
        return list(value)

    def optional_text_list(self, field: str) -> list[str] | None:
        return self.text_list(field) if self.data.get(field) is not None else None

    def optional_id(self, field: str) -> int | str | None:
        value = self.data.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(field, "an integer or a string (or no such field)", value)
        return value

    def number_list(self, field: str, length: int) -> list[float]:
        value = self.data.get(field, _MISSING)
        ok = isinstance(value, list) and len(value) == length
        if not ok or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise self.error(field, f"a list of {length} numbers, one per answer", value)
        return [float(v) for v in value]


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_records(path: PathLike) -> list[Any]:
    """Read a JSON array (any extension) or JSON Lines (``.jsonl``, or any file that is not one JSON value).

    The one reader of record files for training and generation alike.

    Args:
        path: The annotation file.

    Returns:
        The records, unchecked.

    Raises:
        AnnotationError: If the file is missing, not valid JSON / JSON Lines, or a JSON file's top level is not
            an array.
    """
    source = Path(path)
    if not source.is_file():
        raise AnnotationError(
            f"Annotation file {str(source)!r} does not exist; set the dataset's build_info.annotation to the path "
            "of your JSON file."
        )
    text = _read_text(source)
    if source.suffix.lower() == ".jsonl":
        return _parse_json_lines(source, text)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("["):
            raise AnnotationError(
                f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; an annotation file "
                "is a JSON array (or JSON Lines)."
            ) from None
        return _parse_json_lines(source, text)  # JSON Lines under another extension
    if not isinstance(records, list):
        raise AnnotationError(
            f"{source}: the top level is a {type(records).__name__}; expected a JSON array of records."
        )
    return records


def _read_text(source: Path) -> str:
    """A JSON file's text; bytes that are not UTF-8 (JSON's encoding) are one clear error."""
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); JSON files are "
            "UTF-8, so re-save it as UTF-8."
        ) from None
    except OSError as exc:
        raise AnnotationError(f"{source}: cannot read it ({exc.strerror or exc}).") from None


def _parse_json_lines(source: Path, text: str) -> list[Any]:
    records = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{source}: line {line_number} is not valid JSON ({exc.msg}).") from None
    return records


def _read(path: PathLike, parse: Callable[[_Record], QAAnnotation | None]) -> list[QAAnnotation]:
    """Load ``path`` and parse every record; ``parse`` returns None for a record it drops on purpose."""
    annotations = []
    for index, data in enumerate(load_records(path)):
        annotation = parse(_Record(path, index, data))
        if annotation is not None:
            annotations.append(annotation)
    logger.info("%s: %d annotations", os.fspath(path), len(annotations))
    return annotations


def _common(record: _Record, image_field: str, answer_field: str) -> dict[str, Any]:
    return {
        "image": record.text(image_field, non_empty=True),
        "question": record.text("question"),
        "answers": record.text_list(answer_field),
        "image_id": record.optional_id("image_id"),
        "question_id": record.optional_id("question_id"),
    }


def read_llava(path: PathLike) -> list[QAAnnotation]:
    """Read LLaVA-150k in the original's "cocoformat": ``image``, ``question``, ``answer`` (list of str).

    The optional ``dataset`` field (the LLaVA file a record came from, e.g. ``"complex_reasoning_77k.json"``;
    the VIG evaluation set uses it to pick the instruction) becomes `QAAnnotation.subset`.

    Args:
        path: JSON array or JSON Lines file.

    Returns:
        One annotation per record.

    Raises:
        AnnotationError: On the first malformed record.
    """
    return _read(path, lambda r: QAAnnotation(**_common(r, "image", "answer"), subset=r.optional_text("dataset")))


def read_okvqa(path: PathLike) -> list[QAAnnotation]:
    """Read OKVQA: ``image``, ``question``, ``answer`` (list, e.g. the 10 annotator answers), optional ids.

    Args:
        path: JSON array or JSON Lines file.

    Returns:
        One annotation per record.

    Raises:
        AnnotationError: On the first malformed record.
    """
    return _read(path, lambda r: QAAnnotation(**_common(r, "image", "answer")))


def read_vqav2(path: PathLike) -> list[QAAnnotation]:
    """Read VQAv2: ``image``, ``question``, ``answer`` (list), optional ids.

    Args:
        path: JSON array or JSON Lines file.

    Returns:
        One annotation per record.

    Raises:
        AnnotationError: On the first malformed record.
    """
    return _read(path, lambda r: QAAnnotation(**_common(r, "image", "answer")))


def read_aokvqa(path: PathLike) -> list[QAAnnotation]:
    """Read A-OKVQA: ``image_path``, ``question``, ``direct_answers``, ``image_id``, optional multiple choice.

    Args:
        path: JSON array or JSON Lines file.

    Returns:
        One annotation per record.

    Raises:
        AnnotationError: On the first malformed record, including a ``correct_choice_idx`` without ``choices``
            or outside them.
    """
    return _read(path, _parse_aokvqa)


def _parse_aokvqa(record: _Record) -> QAAnnotation:
    choices = record.optional_text_list("choices")
    index = record.data.get("correct_choice_idx")
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or choices is None or not 0 <= index < len(choices)
    ):
        raise record.error("correct_choice_idx", "an index into 'choices' (or no such field)", index)
    return QAAnnotation(**_common(record, "image_path", "direct_answers"), choices=choices, correct_choice_idx=index)


def read_coco_pseudo(
    path: PathLike,
    *,
    score_thr: float = 0.0,
    topk: int | None = None,
    exclude_image_ids: Collection[int | str] = (),
) -> list[QAAnnotation]:
    """Read generated "COCO pseudo" QA (the output of answer generation) for self-training.

    Fields: ``image``, ``image_id``, ``question``, ``answer`` (a string, or a list with a same-length ``weight``
    list). As in the original: when ``score_thr`` > 0, a record with weights is kept only if its largest weight
    exceeds ``score_thr`` (records without weights are kept); answers and weights are then cut to the first
    ``topk``; records whose ``image_id`` is in ``exclude_image_ids`` are dropped (to keep evaluation images out).

    Args:
        path: JSON array or JSON Lines file.
        score_thr: Keep-threshold on the largest answer weight; 0 keeps everything.
        topk: Keep the first ``topk`` answers (None: all).
        exclude_image_ids: Image ids whose records are dropped.

    Returns:
        The kept annotations; a list answer without weights is weighted by frequency.

    Raises:
        AnnotationError: On the first malformed record.
        ValueError: If ``topk`` is not positive.
    """
    if topk is not None and topk < 1:
        raise ValueError(f"topk must be a positive number of answers or None, got {topk}.")
    excluded = set(exclude_image_ids)

    def parse(record: _Record) -> QAAnnotation | None:
        annotation = _parse_coco_pseudo(record)
        if annotation.image_id in excluded:
            return None
        if score_thr > 0 and annotation.weights is not None and max(annotation.weights) <= score_thr:
            return None
        weights = annotation.weights[:topk] if annotation.weights is not None else None
        return replace(annotation, answers=annotation.answers[:topk], weights=weights)

    return _read(path, parse)


def _parse_coco_pseudo(record: _Record) -> QAAnnotation:
    answer = record.data.get("answer", _MISSING)
    if isinstance(answer, str):
        answers, weights = [answer], None
    else:
        answers = record.text_list("answer")
        weights = record.number_list("weight", len(answers)) if record.data.get("weight") is not None else None
    return QAAnnotation(
        image=record.text("image", non_empty=True),
        question=record.text("question"),
        answers=answers,
        weights=weights,
        image_id=record.optional_id("image_id"),
        question_id=record.optional_id("question_id"),
    )


def read_image_id_groups(path: PathLike, names: Sequence[str]) -> set[int | str]:
    """Read the image ids of the named groups from a ``{group name: [image ids]}`` JSON file.

    The original's COCO-pseudo and generation configs use such a file with a ``filter`` list (e.g. ``[llava]``)
    to keep images of other datasets out.

    Args:
        path: The JSON object file.
        names: The groups whose ids are wanted.

    Returns:
        The union of their ids.

    Raises:
        AnnotationError: If the file is missing or malformed, or a name is not one of its groups (a typo would
            otherwise let those images through silently).
    """
    source = Path(path)
    if not source.is_file():
        raise AnnotationError(f"Image-id file {str(source)!r} does not exist; set build_info.image_ids.")
    try:
        groups = json.loads(_read_text(source))
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{source}: not valid JSON ({exc}).") from exc
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise AnnotationError(f"{source}: expected a JSON object mapping group names to lists of image ids.")
    ids: set[int | str] = set()
    for name in names:
        if name not in groups:
            raise AnnotationError(f"{source}: no group {name!r}; its groups are {', '.join(sorted(groups))}.")
        ids.update(groups[name])
    return ids


# Annotation format name (as the dataset builders use it) → reader.
READERS: Mapping[str, Callable[[PathLike], list[QAAnnotation]]] = {
    "llava": read_llava,
    "okvqa": read_okvqa,
    "a_okvqa": read_aokvqa,
    "vqav2": read_vqav2,
    "coco_pseudo": read_coco_pseudo,
}
