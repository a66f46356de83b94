"""OKVQA / A-OKVQA style generation in two passes: gq writes a question (and a short answer) from a seeded
question-start word; ga answers each question with every beam and a weight per beam."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vigc.data.prompts import QUESTION_START_WORDS, vig_output, vig_prompt
from vigc.errors import ConfigError
from vigc.generation.parsing import clean_short_answer, original_answer_weight, parse_question_answer
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel


def draw_question_starts(rng: random.Random, data_type: str, count: int, weighted: bool) -> list[str]:
    """Question-start words as the original drew them (`random.choices`, count-weighted when `weighted`)."""
    if data_type not in QUESTION_START_WORDS:
        raise ConfigError(f"data_type must be one of {sorted(QUESTION_START_WORDS)}, got {data_type!r}.")
    words = QUESTION_START_WORDS[data_type]
    weights = [n for _, n in words] if weighted else None
    return [word for word, _ in rng.choices(words, weights=weights, k=count)]


@dataclass
class QuestionResult:
    """One gq output: `question_answer` is the original's field (`"Question: {w} " + generation`)."""

    prompt: str
    question_answer: str
    question: str | None
    ori_answer: str | None

    @property
    def valid(self) -> bool:
        return bool(self.question) and self.ori_answer is not None


def generate_questions(
    model: VIGCModel,
    image_embeds: torch.Tensor,
    instructions: Sequence[str],
    starts: Sequence[str] | None,
    settings: DecodingSettings,
) -> list[QuestionResult]:
    """gq pass: prompt = instruction + " Question: {w}" (w omitted when `starts` is None)."""
    words: Sequence[str | None] = starts if starts is not None else [None] * len(instructions)
    prompts = [vig_prompt(inst, word) for inst, word in zip(instructions, words, strict=True)]
    out = model.generate(image_embeds, prompts, settings)
    results = []
    for prompt, word, texts in zip(prompts, words, out.texts, strict=True):
        text = vig_output(word, texts[0])
        parsed = parse_question_answer(text)
        question, answer = parsed if parsed is not None else (None, None)
        results.append(QuestionResult(prompt, text, question, answer))
    return results


@dataclass
class AnswerResult:
    """One ga output: every beam, best first, with the original's weight `exp(score)**3*100`."""

    prompt: str
    raw_answers: list[str]
    answers: list[str]
    weights: list[float]
    scores: list[float]


def generate_answers(
    model: VIGCModel, image_embeds: torch.Tensor, prompts: Sequence[str], settings: DecodingSettings
) -> list[AnswerResult]:
    """ga pass: all `num_return_sequences` beams per question with their weights."""
    out = model.generate(image_embeds, list(prompts), settings)
    count = settings.num_return_sequences
    scores = out.scores.view(len(prompts), count).tolist()
    return [
        AnswerResult(
            prompt=prompt,
            raw_answers=list(texts),
            answers=[clean_short_answer(t) for t in texts],
            weights=[original_answer_weight(s) for s in row],
            scores=row,
        )
        for prompt, texts, row in zip(prompts, out.texts, scores, strict=True)
    ]
