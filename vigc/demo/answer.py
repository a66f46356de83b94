"""VIC for a question the user wrote: `vigc.generation.vic.vic_steps`, the very steps `vig_vic` runs after its
VIG step, with that question in place of VIG's, so an own question is answered exactly as a generated one would be.
"""

from __future__ import annotations

import torch

from vigc.generation.parsing import parse_question_answer
from vigc.generation.vic import GenerationStats, QAResult, StepCallback, VICSettings, vic_base_prompt, vic_steps
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = ["answer_question", "one_pass_answer", "vic_base_prompt", "vig_only"]


def answer_question(
    model: VIGCModel,
    image_embeds: torch.Tensor,
    instruction: str,
    question: str,
    settings: VICSettings,
    stats: GenerationStats,
    on_step: StepCallback | None = None,
) -> QAResult:
    """Answer `question` about one image with VIC steps (compat or default, as `settings.mode` says).

    Args:
        model: the VIGC model.
        image_embeds: (1, N, Dv) from `model.encode_images`.
        instruction: the task's VIG instruction (part of the VIC prompt when `gen_style` is "vig").
        question: the user's question.
        settings: VIC behaviour and decoding.
        stats: counters to add to.
        on_step: called with the result after each VIC step.

    Returns:
        The result with `question` set, `original_answer` None (there was no VIG step) and one prompt per step.
    """
    result = QAResult(instruction=instruction, question=question)
    base = vic_base_prompt(instruction, question, settings.gen_style)
    vic_steps(model, image_embeds, [result], [base], settings, stats, on_step=on_step)
    return result


def one_pass_answer(
    model: VIGCModel, image_embeds: torch.Tensor, prompt: str, decoding: DecodingSettings, stats: GenerationStats
) -> str:
    """The whole answer in one generation from `prompt` (no VIC): the comparison for an own question."""
    out = model.generate(image_embeds, [prompt], decoding)
    stats.add(out, 1, decoding.num_beams)
    return out.texts[0][0]


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
