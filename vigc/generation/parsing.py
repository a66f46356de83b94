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
    """Decoding stop rule for VIG when only its question is needed: a row ends once its text holds "Answer:" and
    then a non-blank character (the answer's first token), so that an answer left empty (EOS right after
    "Answer:") still makes the sample invalid, as with the whole output.

    Attributes:
        tokenizer: decodes generated ids.
        skip: leading ids that are not text (the hidden BOS).
    """

    tokenizer: LLMTokenizer
    skip: int = 0
    _written: torch.Tensor | None = field(default=None, init=False, repr=False)  # (V,) tokens with non-blank text
    _colons: torch.Tensor | None = field(default=None, init=False, repr=False)  # (V,) tokens holding ":"

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, T) generated ids → bool (N,): rows whose last token wrote the first character of the answer."""
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return done.to(ids.device)
        rows = self.may_stop(ids[:, -1]).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            done[row] = question_part(text) is not None
        return done.to(ids.device)

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Which tokens (M,) write something non-blank (only such a token can start the answer)."""
        return _lookup(self._tables()[0], token_ids)

    def extension_ends(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Rows (N, T) whose text already holds "Answer:" (with nothing after it yet, or the row would have ended):
        every token that writes something ends them. Only rows whose last token holds ":" or is blank are read. (A
        single token holding ":" and the answer's first letters, which LLaMA's vocabulary does not have, would end
        a beam one token later than `__call__` ends a greedy row.)"""
        ends = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return ends
        written, colons = self._tables()
        last = ids[:, -1]
        rows = (_lookup(colons, last) | ~_lookup(written, last)).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            ends[row] = ANSWER_MARKER in text
        return ends

    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._written is None or self._colons is None:
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))], for_generation=True)
            self._written = torch.tensor([bool(piece.strip()) for piece in pieces], dtype=torch.bool)
            self._colons = torch.tensor([ANSWER_MARKER[-1] in piece for piece in pieces], dtype=torch.bool)
        return self._written, self._colons


def _lookup(table: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """`table[token_ids]`, False for ids past the tokenizer (an LLM may have a few more logits than pieces)."""
    ids = token_ids.cpu()
    inside = ids < table.shape[0]
    return torch.where(inside, table[ids.clamp(max=table.shape[0] - 1)], torch.zeros_like(inside))


def question_part(text: str) -> str | None:
    """`text` through its first "Answer:" when a non-blank character follows, else None."""
    end = text.find(ANSWER_MARKER)
    if end < 0 or not text[end + len(ANSWER_MARKER) :].strip():
        return None
    return text[: end + len(ANSWER_MARKER)]
