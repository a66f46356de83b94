"""VQA accuracy: the official answer normalisation and the leave-one-out min(#humans / 3, 1) score."""

from __future__ import annotations

import itertools

import pytest

from vigc.eval.vqa import normalize_answer, strip_answer_prefix, vqa_accuracy, vqa_accuracy_mean


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Two dogs.", "2 dogs"),
        ("the Cat", "cat"),
        ("a red apple!", "red apple"),
        ("3.5", "3.5"),  # a decimal point survives
        ("1,000", "1000"),
        ("dont know", "don't know"),
        ("red-white", "red white"),
        ("  yes\n", "yes"),
        ("none", "0"),
    ],
)
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def _official(prediction: str, humans: list[str]) -> float:
    """The definition: mean over the 10-choose-9 subsets of min(#matches in the subset / 3, 1)."""
    subsets = list(itertools.combinations(range(len(humans)), len(humans) - 1))
    scores = [min(sum(humans[i] == prediction for i in subset) / 3, 1.0) for subset in subsets]
    return sum(scores) / len(scores)


@pytest.mark.parametrize("matches", range(11))
def test_accuracy_is_the_leave_one_out_mean(matches: int) -> None:
    humans = ["dog"] * matches + ["cat"] * (10 - matches)
    assert vqa_accuracy("dog", humans) == pytest.approx(_official("dog", humans))


def test_accuracy_known_values() -> None:
    assert vqa_accuracy("dog", ["dog"] * 3 + ["cat"] * 7) == pytest.approx(0.9)  # not 1.0: one subset has 2
    assert vqa_accuracy("dog", ["dog"] * 2 + ["cat"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("Dog.", ["dog"] * 10) == 1.0
    assert vqa_accuracy("two", ["2"] * 4 + ["3"] * 6) == 1.0
    assert vqa_accuracy("dog", []) == 0.0


def test_mean_in_percent_and_prefix_stripping() -> None:
    score = vqa_accuracy_mean([("red", ["red"] * 10), ("blue", ["red"] * 10)])
    assert (score.accuracy, score.count) == (50.0, 2)
    assert vqa_accuracy_mean([]).count == 0
    assert strip_answer_prefix("Answer: blue") == "blue"
    assert strip_answer_prefix("answer : blue sky") == "blue sky"
    assert strip_answer_prefix("answering machine") == "answering machine"
