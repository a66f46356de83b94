"""The record fields each generation writes, in one place (the original's names first)."""

from __future__ import annotations

from typing import Any

from vigc.generation.vic import QAResult


def compat_record_fields(result: QAResult) -> dict[str, Any]:
    """The fields the original added to each input record (`InstructBlipLLavaVIGTask.valid_step`).

    `answer_given_question` is left out when there is none (default VIC mode writes no uncorrected answer).
    """
    fields = {
        "instruction": result.instruction,
        "whole_text": result.whole_text,
        "answer": result.answer,
        "original_answer": result.original_answer,
        "answer_given_question": result.answer_given_question,
        "question": result.question,
        "answer_lst": result.answer_lst,
    }
    if result.answer_given_question is None:
        del fields["answer_given_question"]
    return fields


def vic_record_fields(result: QAResult) -> dict[str, Any]:
    """The original's fields plus ours: the raw VIG output, every step's prompt and output, why VIC stopped."""
    return {
        **compat_record_fields(result),
        "vig_output": result.vig_output,
        "vic_steps": result.steps,
        "vic_step_prompts": result.step_prompts,
        "vic_step_outputs": result.step_outputs,
        "stop_reason": result.stop_reason,
        **({"vic_rewritten": result.rewritten} if result.stop_reason == "verified" else {}),
    }
