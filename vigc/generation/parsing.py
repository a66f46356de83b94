"""Reading model outputs: `Question: ... Answer: ...` pairs and short answers (original rules), and the stop
rule that ends VIG's decoding once its question is written."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vigc.models.tokenizers import LLMTokenizer

ANSWER_MARKER = "Answer:"


def parse_question_answer(text: str) -> tuple[str, str] | None:
    """The original's VIG parse: after the last `Question:`, split on `Answer:` into exactly two parts.

    Returns:
        (question, answer), both stripped, or None when the output has no such pair. Either part may be empty:
        the original kept those samples; callers that want only usable data reject them.
    """
    if "Question:" not in text or ANSWER_MARKER not in text:
        return None
    parts = text.split("Question:")[-1].split(ANSWER_MARKER)
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


@dataclass
class QuestionStop:
    """Decoding stop rule for VIG when only its question is wanted: a row ends with the token that completes
    "Answer:" (`parse_question_answer` then reads the question; whatever that token adds after it is ignored).

    Attributes:
        tokenizer: decodes generated ids.
        skip: leading ids that are not text (the hidden BOS).
    """

    tokenizer: LLMTokenizer
    skip: int = 0
    _colons: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, T) generated ids → bool (N,): rows whose text now holds "Answer:" (only a ":" token can do it)."""
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return done.to(ids.device)
        rows = self.may_stop(ids[:, -1]).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            done[row] = ANSWER_MARKER in text
        return done.to(ids.device)

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Which tokens (M,) can complete the marker: those whose text holds its last character, ":"."""
        if self._colons is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))], for_generation=True)
            self._colons = torch.tensor([ANSWER_MARKER[-1] in piece for piece in pieces], dtype=torch.bool)
        ids = token_ids.cpu()
        inside = ids < self._colons.shape[0]  # an LLM may have a few more logits than the tokenizer has pieces
        return torch.where(inside, self._colons[ids.clamp(max=self._colons.shape[0] - 1)], torch.zeros_like(inside))

    def extension_ends(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Token-dependent (":" after "Answer" ends a row, after "Note" it does not): each candidate is asked."""
        return None
