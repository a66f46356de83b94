"""Sample builders: formats, the text processor on question and answer, determinism, answer weighting."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from vigc.data.annotations import QAAnnotation
from vigc.data.prompts import VIG_INSTRUCTIONS_KNOWLEDGE, VQA_TEMPLATES, VQG_TEMPLATES
from vigc.data.samples import (
    SAMPLE_BUILDERS,
    TextPair,
    answer_weights,
    choose_answer,
    stable_seed,
    vic_sample,
    vic_step_sample,
    vig_sample,
    vqg_sample,
)
from vigc.data.text import BlipCaptionProcessor

OKVQA = QAAnnotation(image="a.jpg", question="What Color is it?", answers=["Red."] * 6 + ["maroon"] * 4)


def test_vig_sample() -> None:
    pair = vig_sample(OKVQA, VIG_INSTRUCTIONS_KNOWLEDGE, random.Random(0))
    assert pair.text_input in VIG_INSTRUCTIONS_KNOWLEDGE
    assert pair.text_output in (
        " Question: What Color is it? Answer: Red.",
        " Question: What Color is it? Answer: maroon",
    )


def test_text_processor_applies_to_question_and_answer_only() -> None:
    single = QAAnnotation(image="a.jpg", question="What Color: is it?", answers=["Red."])
    pair = vig_sample(single, ["Keep This. Instruction!"], random.Random(0), BlipCaptionProcessor(max_words=100))
    assert pair == TextPair("Keep This. Instruction!", " Question: what color is it? Answer: red")
    vic = vic_sample(single, ["Q: {q} A:"], random.Random(0), BlipCaptionProcessor())
    assert vic == TextPair("Q: what color is it? A:", "red")
    vqg = vqg_sample(single, ['Answer is "{a}".'], random.Random(0), BlipCaptionProcessor())
    assert vqg == TextPair('Answer is "red".', "what color is it?")


def test_llava_vic_uses_the_bare_question() -> None:
    llava = QAAnnotation(image="a.jpg", question="Describe the image.", answers=["A long answer. Two sentences."])
    assert vic_sample(llava, ("{q}",), random.Random(3)) == TextPair(
        "Describe the image.", "A long answer. Two sentences."
    )


@pytest.mark.parametrize("task", ["vig", "vic", "vqg", "vic_step"])
def test_deterministic_under_a_seed(task: str) -> None:
    prompts = {"vig": VIG_INSTRUCTIONS_KNOWLEDGE, "vic": VQA_TEMPLATES, "vqg": VQG_TEMPLATES}.get(
        task, VIG_INSTRUCTIONS_KNOWLEDGE
    )
    build = SAMPLE_BUILDERS[task]
    first = [build(OKVQA, prompts, random.Random(seed), str) for seed in range(50)]
    again = [build(OKVQA, prompts, random.Random(seed), str) for seed in range(50)]
    assert first == again
    assert len(set(first)) > 5  # the seed matters


def test_answer_weights_by_frequency() -> None:
    assert answer_weights(OKVQA) == (["Red.", "maroon"], pytest.approx([0.6, 0.4]))
    explicit = QAAnnotation(image="a", question="q", answers=["x", "y"], weights=[3.0, 1.0])
    assert answer_weights(explicit) == (["x", "y"], [3.0, 1.0])


def test_answer_choice_statistics() -> None:
    rng = random.Random(1234)
    draws = Counter(choose_answer(OKVQA, rng) for _ in range(20000))
    assert draws["Red."] / 20000 == pytest.approx(0.6, abs=0.02)
    explicit = QAAnnotation(image="a", question="q", answers=["x", "y", "z"], weights=[80.0, 15.0, 5.0])
    draws = Counter(choose_answer(explicit, rng) for _ in range(20000))
    assert draws["x"] / 20000 == pytest.approx(0.80, abs=0.02)
    assert draws["z"] / 20000 == pytest.approx(0.05, abs=0.01)


def test_zero_weights_fall_back_to_uniform() -> None:
    zero = QAAnnotation(image="a", question="q", answers=["x", "y"], weights=[0.0, 0.0])
    assert {choose_answer(zero, random.Random(s)) for s in range(40)} == {"x", "y"}


def test_stable_seed() -> None:
    assert stable_seed(42, "okvqa", 0, 7) == stable_seed(42, "okvqa", 0, 7)
    assert len({stable_seed(42, "okvqa", e, i) for e in range(5) for i in range(100)}) == 500


def test_stable_seed_is_fixed_across_processes() -> None:
    # blake2b of the JSON text: the same in every Python run whatever PYTHONHASHSEED is.
    digest = hashlib.blake2b(b'[0, "x", 1, 2]', digest_size=8).digest()
    assert stable_seed(0, "x", 1, 2) == int.from_bytes(digest, "little")


def test_vic_step_sample_splits_like_vic() -> None:
    """Sentences are split as VIC splits them ("3.5" and "e.g." do not end one); one sentence: j = 0, all of it."""
    record = QAAnnotation(image="a.jpg", question="Why?", answers=["It costs 3.5 dollars, e.g. a lot. So no!"])
    pairs = {vic_step_sample(record, ["Say."], random.Random(seed)) for seed in range(30)}
    assert pairs == {
        TextPair("Say. Question: Why? Answer:", "It costs 3.5 dollars, e.g. a lot. So no!"),
        TextPair("Say. Question: Why? Answer: It costs 3.5 dollars, e.g. a lot.", "So no!"),
    }
    short = QAAnnotation(image="a.jpg", question="Why?", answers=["red"])
    assert vic_step_sample(short, ["Say."], random.Random(0), gen_style="vic") == TextPair("Why?", "red")
