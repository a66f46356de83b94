"""Turn one annotation into one training text pair: VIG, VIC or VQG (SPEC §4), or a VIC step (ours).

Every builder takes an explicit `random.Random`, so a sample depends only on the annotation and the generator's
state, never on global randomness (the datasets seed it from (seed, epoch, index) for reproducible, resumable
training).

Faithful to the original: the text processor (``blip_caption`` or ``blip_caption_instruct``) is applied to the
question and to the chosen answer, never to the instructions or templates; the answer is drawn first, then the
instruction/template.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vigc.data.annotations import QAAnnotation
from vigc.data.prompts import join_units, vic_base_prompt, vic_step_prompt, vig_target
from vigc.data.sentences import split_sentences

__all__ = [
    "SAMPLE_BUILDERS",
    "TextPair",
    "TextProcessor",
    "answer_weights",
    "choose_answer",
    "stable_seed",
    "unchanged",
    "vic_sample",
    "vic_step_sample",
    "vig_sample",
    "vqg_sample",
]

TextProcessor = Callable[[str], str]


def unchanged(text: str) -> str:
    """The identity text processor (the original's default when a config names none)."""
    return text


@dataclass(frozen=True)
class TextPair:
    """The two texts of a training sample.

    Attributes:
        text_input: The prompt: the Q-Former text and the LLM instruction.
        text_output: The target the LLM learns to write.
    """

    text_input: str
    text_output: str


def answer_weights(annotation: QAAnnotation) -> tuple[list[str], list[float]]:
    """The distinct answers of an annotation and their weights.

    Without explicit weights, an answer's weight is its frequency / the number of answers (the original's
    rule; e.g. 10 OKVQA annotator answers "red" x6, "maroon" x4 → ``["red", "maroon"], [0.6, 0.4]``), in
    order of first appearance. Explicit weights (COCO pseudo) are returned as they are, duplicates included.

    Args:
        annotation: The annotation.

    Returns:
        ``(answers, weights)`` of equal length.
    """
    if annotation.weights is not None:
        return list(annotation.answers), list(annotation.weights)
    share = 1 / len(annotation.answers)
    weights: dict[str, float] = {}
    for answer in annotation.answers:
        weights[answer] = weights.get(answer, 0.0) + share
    return list(weights), list(weights.values())


def choose_answer(annotation: QAAnnotation, rng: random.Random) -> str:
    """Draw one answer with probability proportional to its weight (`answer_weights`).

    Args:
        annotation: The annotation; it has at least one answer.
        rng: The random generator.

    Returns:
        The chosen answer, unprocessed. Weights that sum to zero or less fall back to a uniform draw.
    """
    answers, weights = answer_weights(annotation)
    if sum(weights) <= 0:
        return rng.choice(answers)
    return rng.choices(answers, weights=weights, k=1)[0]


def vig_sample(
    annotation: QAAnnotation,
    instructions: Sequence[str],
    rng: random.Random,
    text_processor: TextProcessor = unchanged,
) -> TextPair:
    """Build a VIG sample: a random instruction → ``" Question: {q} Answer: {a}"``.

    Args:
        annotation: The annotation.
        instructions: The dataset's VIG instruction list (`vigc.data.prompts.VIG_INSTRUCTIONS`).
        rng: The random generator (draws the answer, then the instruction).
        text_processor: Applied to the question and the answer.

    Returns:
        The text pair.
    """
    question = text_processor(annotation.question)
    answer = text_processor(choose_answer(annotation, rng))
    return TextPair(rng.choice(instructions), vig_target(question, answer))


def vic_sample(
    annotation: QAAnnotation,
    templates: Sequence[str],
    rng: random.Random,
    text_processor: TextProcessor = unchanged,
) -> TextPair:
    """Build a VIC (question-answering) sample: a random VQA template filled with ``q`` → the answer.

    Args:
        annotation: The annotation.
        templates: VQA templates with ``{q}`` (LLaVA: ``("{q}",)``; others the 10 of SPEC §6.3).
        rng: The random generator (draws the answer, then the template).
        text_processor: Applied to the question and the answer.

    Returns:
        The text pair.
    """
    question = text_processor(annotation.question)
    answer = text_processor(choose_answer(annotation, rng))
    return TextPair(rng.choice(templates).format(q=question), answer)


def vqg_sample(
    annotation: QAAnnotation,
    templates: Sequence[str],
    rng: random.Random,
    text_processor: TextProcessor = unchanged,
) -> TextPair:
    """Build a VQG sample: a random VQG template filled with the answer ``a`` → the question.

    Args:
        annotation: The annotation.
        templates: VQG templates with ``{a}`` (SPEC §6.3).
        rng: The random generator (draws the answer, then the template).
        text_processor: Applied to the question and the answer.

    Returns:
        The text pair.
    """
    question = text_processor(annotation.question)
    answer = text_processor(choose_answer(annotation, rng))
    return TextPair(rng.choice(templates).format(a=answer), question)


def vic_step_sample(
    annotation: QAAnnotation,
    instructions: Sequence[str],
    rng: random.Random,
    text_processor: TextProcessor = unchanged,
    gen_style: str = "vig",
) -> TextPair:
    """Build a VIC-step sample: exactly the prompt a VIC step sees at inference → the rest of the answer.

    The prompt is `vic_step_prompt` (the function VIC generation uses) of `vic_base_prompt` (instruction and
    question, or the question alone) and the answer's first j sentences, j drawn uniformly from 0 .. n - 1 for
    an answer of n sentences (split as VIC splits them). The target is every sentence after them, not only the
    next one: the sentence-stopping VIC step cuts the output after one sentence anyway, whereas a target of one
    sentence would teach the model to end the answer (EOS) after every sentence.

    Args:
        annotation: The annotation.
        instructions: The dataset's VIG instruction list (as for `vig_sample`).
        rng: The random generator (draws the answer, then the instruction, then j).
        text_processor: Applied to the question and the answer (before the split).
        gen_style: "vig" (instruction + question, VIC's default) or "vic" (the question alone), as
            `run.gen_style` of generation.

    Returns:
        The text pair.
    """
    question = text_processor(annotation.question)
    answer = text_processor(choose_answer(annotation, rng))
    instruction = rng.choice(instructions)
    sentences = split_sentences(answer)
    j = rng.randrange(len(sentences)) if sentences else 0
    prompt = vic_step_prompt(vic_base_prompt(instruction, question, gen_style), sentences[:j])
    return TextPair(prompt, join_units(sentences[j:], paragraphs=False))


SampleBuilder = Callable[[QAAnnotation, Sequence[str], random.Random, TextProcessor], TextPair]

# Training task name → sample builder.
SAMPLE_BUILDERS: Mapping[str, SampleBuilder] = {
    "vig": vig_sample,
    "vic": vic_sample,
    "vqg": vqg_sample,
    "vic_step": vic_step_sample,
}


def stable_seed(*parts: int | str) -> int:
    """A 64-bit seed from ints and strings that is the same in every process and Python run.

    Python's ``hash`` of a str changes between runs (PYTHONHASHSEED), so it cannot seed resumable training.

    Args:
        parts: What the seed depends on, e.g. ``(seed, dataset name, epoch, index)``.

    Returns:
        A non-negative integer below 2**64.
    """
    digest = hashlib.blake2b(json.dumps(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")
