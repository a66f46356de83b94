"""Generated-QA quality on synthetic scenes: correctness, coverage and CHAIR-style hallucination, by hand."""

from __future__ import annotations

import math

import pytest

from vigc.data.shapes_scene import Scene, ShapeObject
from vigc.eval.shapes_metrics import score_answer, score_record, summarize
from vigc.eval.shapes_report import format_table, score_records


def _object(shape: str, color: str, size: str, cell: int) -> ShapeObject:
    cell_size = 224 / 3
    center = ((cell % 3 + 0.5) * cell_size, (cell // 3 + 0.5) * cell_size)
    return ShapeObject(shape, color, size, cell, center, 20.0)


@pytest.fixture
def scene() -> Scene:
    """A large red circle in the top left corner and a small blue square in the center."""
    return Scene("a.png", (_object("circle", "red", "large", 0), _object("square", "blue", "small", 4)), (200,) * 3)


DESCRIPTION = (
    "There are two objects in the image. In the top left corner there is a large red circle. "
    "In the center there is a small blue square."
)


def _record(question: str | None, original: str | None, answer: str, task: str = "desc") -> dict[str, object]:
    return {"image": "a.png", "task": task, "question": question, "original_answer": original, "answer": answer}


def test_a_correct_description(scene: Scene) -> None:
    score = score_record(_record("Describe the image in detail.", DESCRIPTION, DESCRIPTION), scene)
    assert score.question_valid and score.question_type == "q_describe"
    answer = score.answers["answer"]
    assert (answer.sentences, answer.true, answer.covered, answer.reference) == (3, 3, 3, 3)
    assert (answer.mentions, answer.object_hallucinations, answer.attribute_hallucinations) == (2, 0, 0)
    assert score.correct("answer")


def test_hallucinated_objects_and_attributes_are_counted(scene: Scene) -> None:
    wrong = (
        "There are two objects in the image. In the center there is a large red circle. "
        "In the center there is a small green triangle."
    )
    score = score_record(_record("Describe the image in detail.", DESCRIPTION, wrong), scene)
    answer = score.answers["answer"]
    assert (answer.mentions, answer.object_hallucinations, answer.attribute_hallucinations) == (2, 1, 1)
    assert answer.true == 1 and answer.covered == 1 and answer.key_present
    assert not score.correct("answer") and score.correct("original_answer")
    summary = summarize([score], "answer")
    assert (summary.chair_i, summary.chair_s, summary.chair_i_attr, summary.chair_s_attr) == (0.5, 1.0, 1.0, 1.0)
    assert summarize([score], "original_answer").chair_i == 0.0
    assert summary.conclusion_correct == 1.0  # the count is right, though a sentence is false


def test_correct_needs_the_conclusion(scene: Scene) -> None:
    question = "Is the red circle to the left or to the right of the blue square?"
    reasoning_only = "The red circle is in the top left corner. The blue square is in the center."
    full = reasoning_only + " So the red circle is to the left of the blue square."
    score = score_record(_record(question, full, reasoning_only, "comp"), scene)
    assert score.correct("original_answer") and not score.correct("answer")
    assert score.answers["answer"].all_true and score.answers["answer"].covered == 2
    assert summarize([score], "answer").conclusion_correct == 0.0


def test_invalid_question_and_missing_qa(scene: Scene) -> None:
    absent = score_record(_record("Where is the green triangle?", "x", "y", "conv"), scene)
    assert absent.has_qa and not absent.question_valid and not absent.correct("answer")
    unknown = score_record(_record("Why is the sky blue?", "x", "y", "conv"), scene)
    assert unknown.question_type is None and not unknown.question_valid
    no_qa = score_record(_record(None, None, "", "conv"), scene)
    assert not no_qa.has_qa
    summary = summarize([absent, unknown, no_qa], "answer")
    assert summary.records == 3 and summary.parse_rate == pytest.approx(2 / 3)
    assert summary.question_valid == 0.0 and summary.correct == 0.0
    assert math.isnan(summary.coverage) and summary.unparsed_sentences == 1.0


def test_unparsed_sentences_make_an_answer_wrong(scene: Scene) -> None:
    score = score_answer("The circle is red. It is very nice.", scene, ["The circle is red."], ["The circle is red."])
    assert (score.sentences, score.parsed, score.true) == (2, 1, 1) and not score.all_true


def test_report_table_rows(scene: Scene) -> None:
    scores = score_records([_record("Describe the image in detail.", DESCRIPTION, DESCRIPTION)], {"a.png": scene})
    table = format_table([("VIG only", summarize(scores, "original_answer")), ("VIC", summarize(scores, "answer"))])
    lines = table.splitlines()
    assert lines[0].startswith("| answers | parse | q valid | correct | conclusion |")
    assert lines[2].startswith("| VIG only | 100.0 | 100.0 | 100.0 |") and lines[3].endswith("| 3.00 |")
