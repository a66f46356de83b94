"""Reading model outputs: `Question: ... Answer: ...` pairs and short answers (original rules)."""

from __future__ import annotations

import math


def parse_question_answer(text: str) -> tuple[str, str] | None:
    """The original's VIG parse: after the last `Question:`, split on `Answer:` into exactly two parts.

    Returns:
        (question, answer), both stripped, or None when the output has no such pair. Either part may be empty:
        the original kept those samples; callers that want only usable data reject them.
    """
    if "Question:" not in text or "Answer:" not in text:
        return None
    parts = text.split("Question:")[-1].split("Answer:")
    if len(parts) != 2:
        return None
    return parts[0].strip(), parts[1].strip()


def clean_short_answer(text: str) -> str:
    """Remove a leading `answer:` from a ga-pass beam, as the original did before writing question_answer.json."""
    if text.lower().startswith("answer"):
        for prefix in ("answer:", "Answer:", "answer :", "Answer :"):
            text = text.replace(prefix, "")
        return text.strip()
    return text


def original_answer_weight(sequence_score: float) -> float:
    """The original's answer weight for a ga beam: `exp(score) ** 3 * 100`."""
    return math.exp(sequence_score) ** 3 * 100
