"""VIC for a question the user wrote: the steps `vig_vic` runs after its VIG step, with that question in place of
VIG's, so an own question is answered exactly as a generated one would be.

The step loops reuse `vigc.generation.vic`'s own helpers (unit acceptance, prompt building, finishing) rather than
copies of them: the demo must show what a generation run does, and a copy would drift.
"""

from __future__ import annotations

import torch

from vigc.generation.parsing import parse_question_answer
from vigc.generation.sentences import SentenceStop
from vigc.generation.vic import (
    GenerationStats,
    QAResult,
    VICSettings,
    _accept_unit,
    _compat_vic_update,
    _finish_default,
    _generate,
    _vic_prompt,
)
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = ["answer_question", "one_pass_answer", "vic_base_prompt", "vig_only"]


def vic_base_prompt(instruction: str, question: str, gen_style: str) -> str:
    """The prompt the first VIC step continues (SPEC §5.1): instruction + question, or the question alone."""
    return f"{instruction} Question: {question} Answer:" if gen_style == "vig" else question


def answer_question(
    model: VIGCModel,
    image_embeds: torch.Tensor,
    instruction: str,
    question: str,
    settings: VICSettings,
    stats: GenerationStats,
) -> QAResult:
    """Answer `question` about one image with VIC steps (compat or default, as `settings.mode` says).

    Args:
        model: the VIGC model.
        image_embeds: (1, N, Dv) from `model.encode_images`.
        instruction: the task's VIG instruction (part of the VIC prompt when `gen_style` is "vig").
        question: the user's question.
        settings: VIC behaviour and decoding.
        stats: counters to add to.

    Returns:
        The result with `question` set, `original_answer` None (there was no VIG step) and one prompt per step.
    """
    result = QAResult(instruction=instruction, question=question)
    base = vic_base_prompt(instruction, question, settings.gen_style)
    if settings.mode == "compat":
        _compat_steps(model, image_embeds, result, base, settings, stats)
    else:
        _default_steps(model, image_embeds, result, base, settings, stats)
    return result


def _compat_steps(
    model: VIGCModel, embeds: torch.Tensor, result: QAResult, base: str, s: VICSettings, stats: GenerationStats
) -> None:
    """`answer_length` steps of the original loop (its step 0 was VIG)."""
    current = base
    for step in range(1, s.answer_length + 1):
        result.step_prompts.append(current)
        output = _generate(model, embeds, [current], s.vig_decoding, stats).texts[0][0]
        if result.answer_given_question is None:
            result.answer_given_question = output
        result.step_outputs.append(output)
        last = step == s.answer_length and s.last_infer_all
        current = _compat_vic_update(result, current, output, step, last, s)
    result.whole_text = current
    result.stop_reason = "steps"


def _default_steps(
    model: VIGCModel, embeds: torch.Tensor, result: QAResult, base: str, s: VICSettings, stats: GenerationStats
) -> None:
    """Sentence (or paragraph) steps that stop at the unit's end, until EOS, an empty unit or `max_sentences`."""
    decoding = s.vic_decoding or s.vig_decoding
    stop = SentenceStop(model.llm_tokenizer, skip=int(decoding.hidden_bos_id is not None), paragraphs=s.in_section)
    for step in range(s.max_sentences):
        prompt = _vic_prompt(base, result.steps, s.in_section)
        result.step_prompts.append(prompt)
        out = _generate(model, embeds, [prompt], decoding, stats, stop=stop)
        last = step == s.max_sentences - 1
        if not _accept_unit(result, out.texts[0][0], out.sequences[0], stop, decoding, last):
            break
    _finish_default(result, base, s.in_section)


def one_pass_answer(
    model: VIGCModel, image_embeds: torch.Tensor, prompt: str, decoding: DecodingSettings, stats: GenerationStats
) -> str:
    """The whole answer in one generation from `prompt` (no VIC): the comparison for an own question."""
    return _generate(model, image_embeds, [prompt], decoding, stats).texts[0][0]


def vig_only(
    model: VIGCModel, image_embeds: torch.Tensor, instruction: str, decoding: DecodingSettings, stats: GenerationStats
) -> QAResult:
    """VIG alone ("VIC off"): the question and answer of one generation, parsed as `vig_vic` parses them."""
    output = one_pass_answer(model, image_embeds, instruction, decoding, stats)
    result = QAResult(instruction=instruction, vig_output=output, stop_reason="vic_off")
    result.step_prompts.append(instruction)
    parsed = parse_question_answer(output)
    if parsed is None or not parsed[0] or not parsed[1]:
        result.valid, result.stop_reason = False, "invalid_vig"
        return result
    result.question, result.original_answer = parsed
    result.answer = parsed[1]
    result.whole_text = f"{vic_base_prompt(instruction, parsed[0], 'vig')} {parsed[1]}"
    return result
