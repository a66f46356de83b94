"""Generated-QA quality on synthetic scenes: strict correctness, coverage and CHAIR-style hallucination, by hand."""

from __future__ import annotations

import math

import pytest

from vigc.data.shapes_scene import Scene, ShapeObject
from vigc.eval import shapes_report
from vigc.eval.shapes_metrics import (
    AnswerScore,
    QAScore,
    error_by_sentence,
    question_diversity,
    score_answer,
    score_record,
    summarize,
)
from vigc.eval.shapes_report import format_report, report_data, score_by_mode


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
    assert score.fully_correct("answer")


def test_hallucinated_objects_and_attributes_are_counted(scene: Scene) -> None:
    wrong = (
        "There are two objects in the image. In the center there is a large red circle. "
        "In the center there is a small green triangle."
    )
    score = score_record(_record("Describe the image in detail.", DESCRIPTION, wrong), scene)
    answer = score.answers["answer"]
    assert (answer.mentions, answer.object_hallucinations, answer.attribute_hallucinations) == (2, 1, 1)
    assert answer.true == 1 and answer.covered == 1 and answer.key_present
    assert not score.fully_correct("answer") and score.fully_correct("original_answer")
    summary = summarize([score], "answer")
    assert (summary.chair_i, summary.chair_s, summary.chair_i_attr, summary.chair_s_attr) == (0.5, 1.0, 1.0, 1.0)
    assert summarize([score], "original_answer").chair_i == 0.0
    assert summary.answered == 1.0  # the count is right, though a sentence is false
    assert summary.false_claims == 2.0 and summary.omitted == 1.0  # the blue square is not described


def test_correct_needs_the_conclusion(scene: Scene) -> None:
    question = "Is the red circle to the left or to the right of the blue square?"
    reasoning_only = "The red circle is in the top left corner. The blue square is in the center."
    full = reasoning_only + " So the red circle is to the left of the blue square."
    score = score_record(_record(question, full, reasoning_only, "comp"), scene)
    assert score.fully_correct("original_answer") and not score.fully_correct("answer")
    assert score.answers["answer"].all_true and score.answers["answer"].covered == 2
    assert summarize([score], "answer").answered == 0.0


def test_invalid_question_and_missing_qa(scene: Scene) -> None:
    absent = score_record(_record("Where is the green triangle?", "x", "y", "conv"), scene)
    assert absent.has_qa and not absent.question_valid and not absent.fully_correct("answer")
    unknown = score_record(_record("Why is the sky blue?", "x", "y", "conv"), scene)
    assert unknown.question_type is None and not unknown.question_valid
    no_qa = score_record(_record(None, None, "", "conv"), scene)
    assert not no_qa.has_qa
    summary = summarize([absent, unknown, no_qa], "answer")
    assert summary.records == 3 and summary.parse_rate == pytest.approx(2 / 3)
    assert summary.question_valid == 0.0 and summary.fully_correct == 0.0
    assert math.isnan(summary.coverage) and summary.unparsed_sentences == 1.0


def test_unparsed_sentences_make_an_answer_wrong(scene: Scene) -> None:
    score = score_answer("The circle is red. It is very nice.", scene, ["The circle is red."], ["The circle is red."])
    assert (score.sentences, score.parsed, score.true) == (2, 1, 1) and not score.all_true


def test_report_tables(scene: Scene) -> None:
    records = [{**_record("Describe the image in detail.", DESCRIPTION, DESCRIPTION), "mode": "default"}]
    data = report_data(score_by_mode(records, {"a.png": scene}))
    assert list(data["summary"]) == ["all", "conv", "desc", "comp"]
    assert list(data["summary"]["desc"]) == ["VIG only (original_answer)", "default VIC (answer)"]
    assert data["sentence_errors"]["desc"]["default VIC (answer)"] == [{"wrong": 0, "total": 1}] * 3
    lines = format_report(data).splitlines()
    assert "| task | answers | parse | q valid | fully correct | answered | omits |" in lines[2]
    assert "| desc | VIG only (original_answer) | 100.0 | 100.0 | 100.0 | 100.0 | 0.0 |" in "\n".join(lines)
    assert "| default | desc | 1 | 100.0 | 0.00 | 1 |" in lines


def test_records_without_vig_answers_are_scored_without_a_vig_row(scene: Scene) -> None:
    """A default-mode run without `run.vig_answer` holds `original_answer: null`: its QA (VIG's question, VIC's
    answer) is scored, and the report has no VIG row rather than one of empty answers."""
    record = {**_record("Describe the image in detail.", DESCRIPTION, DESCRIPTION), "original_answer": None}
    score = score_record(record, scene)
    assert score.has_qa and list(score.answers) == ["answer"] and score.fully_correct("answer")
    assert not score_record({**record, "original_answer": ""}, scene).has_qa  # VIG wrote an empty answer
    data = report_data(score_by_mode([{**record, "mode": "default"}], {"a.png": scene}))
    assert list(data["summary"]["desc"]) == ["default VIC (answer)"]
    assert data["summary"]["desc"]["default VIC (answer)"]["fully_correct"] == 1.0


def test_listing_errors_by_hand(scene: Scene) -> None:
    question = "Describe the image in detail."
    omits = "There are two objects in the image. In the top left corner there is a large red circle."
    twice = DESCRIPTION + " In the top left corner there is a large red circle."
    for answer, counts in ((omits, (1, 0, 0)), (twice, (0, 0, 1))):
        score = score_record(_record(question, answer, answer), scene)
        result = score.answers["answer"]
        assert (result.omitted, result.extra, result.duplicates) == counts
        assert result.all_true and result.key_present and not score.fully_correct("answer")
    total = "How many objects are there in total?"
    listed_twice = "I can see a large red circle and a large red circle. So there are two objects in total."
    score = score_record(_record(total, listed_twice, listed_twice, "comp"), scene)
    assert score.answers["answer"].duplicates == 1 and score.answers["answer"].omitted == 1
    blue = "How many blue objects are there?"
    extra = "I can see a small blue square and a large red circle. So there is one blue object."
    score = score_record(_record(blue, extra, extra, "comp"), scene)
    assert score.answers["answer"].extra == 1 and not score.fully_correct("answer")


def _asked(question: str | None, qtype: str | None, ok: list[bool] | None = None) -> QAScore:
    score = QAScore("a.png", "conv", has_qa=question is not None, question=question, question_type=qtype)
    score.answers["answer"] = AnswerScore(sentences=len(ok or []), sentence_ok=list(ok or []))
    return score


def test_question_diversity_by_hand() -> None:
    scores = [
        _asked("What color is the object in the center?", "q_color"),
        _asked("what color is  the object in the center?", "q_color"),  # the same question
        _asked("Where is the red circle?", "q_where"),
        _asked("Why?", None),
        _asked(None, None),  # no QA: not a question
    ]
    diversity = question_diversity(scores)
    assert diversity.questions == 4 and diversity.distinct_per_100 == 75.0
    assert diversity.type_entropy_bits == pytest.approx(1.5)  # 1/2, 1/4, 1/4
    assert diversity.types == {"q_color": 2, "q_where": 1, "other": 1}
    assert question_diversity(scores[:2]).type_entropy_bits == 0.0
    assert math.isnan(question_diversity([]).type_entropy_bits)


def test_error_by_sentence_by_hand() -> None:
    scores = [_asked("q", "t", [True, False, False]), _asked("q", "t", [True, True]), _asked(None, None)]
    assert error_by_sentence(scores, "answer") == [(0, 2), (1, 2), (1, 1)]
    assert error_by_sentence([], "answer") == []


def test_a_new_vic_mode_is_one_entry(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(shapes_report.VIC_ANSWER_FIELDS, "verify", "verified_answer")
    wrong = DESCRIPTION.replace("blue square", "green square")
    verified = {
        **_record("Describe the image in detail.", wrong, wrong),
        "mode": "verify",
        "verified_answer": DESCRIPTION,
    }
    run = {**_record("Describe the image in detail.", wrong, wrong), "provenance": {"vic": {"mode": "default"}}}
    data = report_data(score_by_mode([run, verified], {"a.png": scene}))
    rows = data["summary"]["desc"]
    vig_rows = ["VIG only (original_answer)", "default VIG only (original_answer)"]  # verify's VIG, default's
    assert list(rows) == [*vig_rows, "default VIC (answer)", "verify VIC (verified_answer)"]
    assert [row["fully_correct"] for row in rows.values()] == [0.0, 0.0, 0.0, 1.0]
    assert [source["mode"] for source in data["answers"][:2]] == ["verify", "default"]
    assert list(data["diversity"]) == ["default", "verify"]
