"""One demo request: a PIL image and `DemoSettings` in, a typed `DemoResult` out (no Gradio here).

LLaVA-style tasks run exactly what `evaluate.py` runs (`vig_vic`), or VIG alone when VIC is off; an own question
skips VIG and is answered by the VIC steps (see `vigc.demo.answer`), with a one-pass answer for comparison. The
OKVQA-style task runs the question pass (gq: a question and its short answer from a drawn question-start word)
and the answer pass (ga: every beam's answer with the original's weight); VIC does not apply to it.

`run_generation` reports the result so far (`DemoResult.done` False) after the question and after every VIC step
to an optional callback, so the page can show each step as it is made.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image

from vigc.data.images import to_rgb
from vigc.data.processors import CLIP_MEAN, CLIP_STD
from vigc.data.prompts import GA_PROMPT, GENERATION_INSTRUCTIONS, GQ_INSTRUCTION
from vigc.demo.answer import answer_question, one_pass_answer, vic_base_prompt, vig_only
from vigc.demo.models import DemoModel
from vigc.demo.settings import DemoSettings
from vigc.generation.vic import GenerationStats, QAResult, vig_vic
from vigc.generation.vqa import (
    AnswerResult,
    QuestionResult,
    draw_question_starts,
    generate_answers,
    generate_questions,
)

__all__ = ["BeamAnswer", "DemoResult", "ProgressCallback", "StepView", "model_view", "run_generation"]

logger = logging.getLogger(__name__)

# The question-start words of the OKVQA-style task (SPEC §6.5), drawn by their counts.
KNOWLEDGE_DATA_TYPE = "okvqa"


@dataclass(frozen=True)
class StepView:
    """One VIC step as the page shows it.

    Attributes:
        index: 1 for the first VIC step.
        prompt: the step's prompt (also the Q-Former's text: the image is read again with it).
        output: what the model wrote.
        kept: the sentence (or paragraph) accepted into the answer; "" when the step ended VIC.
    """

    index: int
    prompt: str
    output: str
    kept: str


@dataclass(frozen=True)
class BeamAnswer:
    """One OKVQA-style answer beam with the original's weight (`exp(score)**3*100`) and its score."""

    answer: str
    weight: float
    score: float


@dataclass
class DemoResult:
    """What one model made of one request.

    Attributes:
        model_name: the model's name on the page.
        settings: the request.
        question: the question (VIG's, gq's, or the user's); None when VIG gave no question.
        answer: the final answer (VIC's, or the best-weighted beam for OKVQA-style).
        vig_answer: the answer without VIC: VIG's own, gq's short answer, or a one-pass answer to an own question.
        raw_output: VIG's (or gq's) whole output; "" for an own question.
        steps: every VIC step.
        beams: OKVQA-style answer beams, best first.
        valid: whether the QA is usable data.
        stop_reason: why generation ended (see `QAResult.stop_reason`; "vic_off", "answers" for OKVQA-style).
        timings: seconds per part ("image", "generation", "comparison"), and "total".
        decoded_tokens: tokens decoded, over all beams and steps.
        qa: the LLaVA-style result (the record's source).
        question_pass: the OKVQA-style gq output (None for an own question).
        answer_pass: the OKVQA-style ga output.
        model_provenance: the model's config keys (saved with the record).
        done: False while generation goes on (a result so far, given to the progress callback).
    """

    model_name: str
    settings: DemoSettings
    question: str | None
    answer: str
    vig_answer: str | None
    raw_output: str
    steps: list[StepView] = field(default_factory=list)
    beams: list[BeamAnswer] = field(default_factory=list)
    valid: bool = True
    stop_reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    decoded_tokens: int = 0
    qa: QAResult | None = None
    question_pass: QuestionResult | None = None
    answer_pass: AnswerResult | None = None
    model_provenance: dict[str, Any] = field(default_factory=dict)
    done: bool = True


# Called with the result so far (`done` False) after the question and after every VIC step.
ProgressCallback = Callable[[DemoResult], None]


def _ignore(result: DemoResult) -> None:
    """The progress callback when none is given."""


def model_view(demo_model: DemoModel, image: Image.Image) -> Image.Image:
    """What the model receives: the eval processor's (3, S, S) output turned back into an S x S RGB image."""
    pixels = demo_model.processor(to_rgb(image))  # (3, S, S), CLIP-normalised
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    values = (pixels * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)  # (3, S, S)
    return Image.fromarray(values.permute(1, 2, 0).numpy(), mode="RGB")


def run_generation(
    demo_model: DemoModel, image: Image.Image, settings: DemoSettings, on_progress: ProgressCallback | None = None
) -> DemoResult:
    """Generate for one image with one model.

    Args:
        demo_model: the model and its image processor.
        image: any PIL image (converted to RGB as generation runs convert files).
        settings: the request.
        on_progress: called with the result so far after the question and after every VIC step.

    Returns:
        The result, with timings.
    """
    started = time.perf_counter()
    pixels = demo_model.processor(to_rgb(image))[None].to(demo_model.device)  # (1, 3, S, S)
    timings = {"image": time.perf_counter() - started}
    if settings.sampling:
        torch.manual_seed(settings.seed)  # the same seed and settings give the same sample
    stats = GenerationStats()
    report = on_progress or _ignore
    with torch.no_grad():
        if settings.task == "okvqa":
            result = _knowledge_qa(demo_model, pixels, settings, stats, timings, report)
        else:
            result = _llava_qa(demo_model, pixels, settings, stats, timings, report)
    result.decoded_tokens = stats.decoded_tokens
    result.model_provenance = dict(demo_model.provenance)
    timings["total"] = time.perf_counter() - started
    result.timings = timings
    logger.info("%s: %s in %.2f s (%s)", demo_model.name, settings.task, timings["total"], result.stop_reason)
    return result


def _llava_qa(
    dm: DemoModel,
    pixels: torch.Tensor,
    s: DemoSettings,
    stats: GenerationStats,
    timings: dict[str, float],
    report: ProgressCallback,
) -> DemoResult:
    instruction = GENERATION_INSTRUCTIONS[s.task]
    question = s.own_question
    started = time.perf_counter()
    comparison: str | None = None

    def on_step(qa: QAResult) -> None:
        report(replace(_llava_result(dm, s, qa, None), done=False))

    if not question and s.vic_mode != "off":
        qa = vig_vic(dm.model, pixels, [instruction], s.vic_settings(), stats, on_step=on_step)[0]
    else:
        embeds = _encode(dm, pixels, stats)
        if not question:
            qa = vig_only(dm.model, embeds, instruction, s.decoding(), stats)
        elif s.vic_mode == "off":
            qa = _one_pass_qa(dm, embeds, instruction, question, s, stats)
        else:
            qa = answer_question(dm.model, embeds, instruction, question, s.vic_settings(), stats, on_step)
            timings["generation"], started = time.perf_counter() - started, time.perf_counter()
            base = vic_base_prompt(instruction, question, s.vic_settings().gen_style)
            comparison = one_pass_answer(dm.model, embeds, base, s.decoding(), stats)
            timings["comparison"] = time.perf_counter() - started
    timings.setdefault("generation", time.perf_counter() - started)
    return _llava_result(dm, s, qa, comparison)


def _llava_result(dm: DemoModel, s: DemoSettings, qa: QAResult, comparison: str | None) -> DemoResult:
    """The page's view of a LLaVA-style result (`comparison`: the one-pass answer to an own question)."""
    return DemoResult(
        model_name=dm.label,
        settings=s,
        question=qa.question,
        answer=qa.answer,
        vig_answer=qa.original_answer if comparison is None else comparison,
        raw_output=qa.vig_output,
        steps=step_views(qa),
        valid=qa.valid,
        stop_reason=qa.stop_reason,
        qa=qa,
    )


def _encode(dm: DemoModel, pixels: torch.Tensor, stats: GenerationStats) -> torch.Tensor:
    """The image embeddings (1, N, Dv), computed once per request."""
    stats.vision_calls += 1
    stats.images_encoded += pixels.shape[0]
    return dm.model.encode_images(pixels)


def _one_pass_qa(
    dm: DemoModel, embeds: torch.Tensor, instruction: str, question: str, s: DemoSettings, stats: GenerationStats
) -> QAResult:
    """An own question with VIC off: the answer of one generation."""
    base = vic_base_prompt(instruction, question, "vic" if s.question_only_prompt else "vig")
    answer = one_pass_answer(dm.model, embeds, base, s.decoding(), stats)
    qa = QAResult(instruction=instruction, question=question, answer=answer, stop_reason="vic_off")
    qa.answer_given_question, qa.whole_text, qa.valid = answer, f"{base} {answer}".strip(), bool(answer)
    qa.step_prompts.append(base)
    return qa


def step_views(qa: QAResult) -> list[StepView]:
    """The VIC steps of a result: the last `len(step_outputs)` prompts (the first prompt is VIG's, if it ran)."""
    prompts = qa.step_prompts[len(qa.step_prompts) - len(qa.step_outputs) :]
    return [
        StepView(index=i + 1, prompt=prompt, output=output, kept=qa.steps[i] if i < len(qa.steps) else "")
        for i, (prompt, output) in enumerate(zip(prompts, qa.step_outputs, strict=True))
    ]


def _knowledge_qa(
    dm: DemoModel,
    pixels: torch.Tensor,
    s: DemoSettings,
    stats: GenerationStats,
    timings: dict[str, float],
    report: ProgressCallback,
) -> DemoResult:
    started = time.perf_counter()
    embeds = _encode(dm, pixels, stats)
    asked: QuestionResult | None = None
    question: str | None = s.own_question
    if not question:
        start = draw_question_starts(random.Random(s.seed), KNOWLEDGE_DATA_TYPE, 1, weighted=True)
        asked = generate_questions(dm.model, embeds, [GQ_INSTRUCTION], start, s.decoding())[0]
        question = asked.question
        report(_knowledge_result(dm, s, question, asked, None, done=False))
    answered = None
    if question:
        answered = generate_answers(dm.model, embeds, [GA_PROMPT.format(q=question)], s.answer_decoding())[0]
    timings["generation"] = time.perf_counter() - started
    return _knowledge_result(dm, s, question, asked, answered)


def _knowledge_result(
    dm: DemoModel,
    s: DemoSettings,
    question: str | None,
    asked: QuestionResult | None,
    answered: AnswerResult | None,
    done: bool = True,
) -> DemoResult:
    """The page's view of the OKVQA-style passes (before the answer pass when `answered` is None and not `done`)."""
    beams = [BeamAnswer(a, w, sc) for a, w, sc in zip(*_beams(answered), strict=True)]
    beams.sort(key=lambda beam: -beam.weight)
    best = beams[0].answer if beams else ""
    return DemoResult(
        model_name=dm.label,
        settings=s,
        question=question or None,
        answer=best,
        vig_answer=asked.ori_answer if asked else None,
        raw_output=asked.question_answer if asked else "",
        beams=beams,
        valid=bool(question) and bool(best),
        stop_reason="answers" if answered else "invalid_vig",
        question_pass=asked,
        answer_pass=answered,
        done=done,
    )


def _beams(answered: AnswerResult | None) -> tuple[list[str], list[float], list[float]]:
    if answered is None:
        return [], [], []
    return answered.answers, answered.weights, answered.scores
