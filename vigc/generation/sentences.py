"""Sentence boundaries for VIC, and a stopping rule that ends decoding at the end of the first sentence.

The original cut at the first "." ("3.5" became "3.", "e.g." ended a sentence, "?" and "!" were ignored). Here a
sentence ends at ".", "?" or "!" (runs such as "?!" or "..." included, closing quotes/brackets kept) that is
followed by whitespace or the end of the text, except after a known abbreviation or a single-letter initial.
A boundary is only *confirmed* once something follows it, so decoding stops one token after the terminator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from vigc.models.tokenizers import LLMTokenizer

ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "no", "fig"}
    | {"approx", "dept", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
)
_TERMINATOR = re.compile(r"[.?!]+[\"')\]]*")
PARAGRAPH_BREAK = "\n\n"


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the "." at `dot` closes an abbreviation or an initial rather than a sentence."""
    start = dot
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot].lower().lstrip("(\"'")
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def sentence_end(text: str, final: bool = False) -> int | None:
    """Index just past the first sentence's terminator, or None when no complete sentence is confirmed yet.

    Args:
        text: text generated so far.
        final: the text will not grow (EOS came): a terminator at the very end counts.
    """
    for match in _TERMINATOR.finditer(text):
        end = match.end()
        at_end = end == len(text)
        if at_end and not final:
            return None
        if not at_end and not text[end].isspace():
            continue  # "3.5", "a.b", "?!x"
        if (
            match.group().startswith(".")
            and len(match.group().rstrip("\"')]")) == 1
            and _is_abbreviation(text, match.start())
        ):
            continue
        return end
    return None


def first_sentence(text: str, final: bool = True) -> str:
    """The first complete sentence of `text` (stripped); the whole text when `final` and no boundary exists."""
    end = sentence_end(text, final=final)
    if end is None:
        return text.strip() if final else ""
    return text[:end].strip()


def split_sentences(text: str) -> list[str]:
    """All sentences of a finished text, in order."""
    sentences: list[str] = []
    rest = text.strip()
    while rest:
        sentence = first_sentence(rest)
        sentences.append(sentence)
        rest = rest[rest.index(sentence) + len(sentence) :].strip()
    return sentences


def first_paragraph(text: str) -> str:
    """The first `\\n\\n`-separated block (stripped), the original's paragraph mode."""
    return text.split(PARAGRAPH_BREAK)[0].strip()


@dataclass
class SentenceStop:
    """Decoding stop rule: a row is finished once its generated text holds a confirmed sentence or paragraph end.

    Attributes:
        tokenizer: decodes generated ids.
        skip: leading ids that are not text (the hidden BOS).
        paragraphs: stop at a blank line instead of a sentence end.
    """

    tokenizer: LLMTokenizer
    skip: int = 0
    paragraphs: bool = False
    _confirmers: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        # Only a token that starts with whitespace can confirm a boundary: decode just those rows.
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return done.to(ids.device)
        rows = self.may_stop(ids[:, -1]).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            done[row] = self.finished(text)
        return done.to(ids.device)

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Which new tokens could complete a unit (those starting with whitespace, or a newline in paragraphs)."""
        if self._confirmers is None:
            self._confirmers = self._whitespace_tokens()
        return self._confirmers[token_ids.cpu()]

    def _whitespace_tokens(self) -> torch.Tensor:
        anchor = self.tokenizer.encode("a")[-1]
        flags = torch.zeros(len(self.tokenizer), dtype=torch.bool)
        texts = self.tokenizer.batch_decode([[anchor, i] for i in range(len(self.tokenizer))], for_generation=True)
        for i, text in enumerate(texts):
            tail = text.lstrip()[1:]
            flags[i] = "\n" in tail if self.paragraphs else tail[:1].isspace()
        return flags

    def finished(self, text: str) -> bool:
        """Whether `text` already contains the unit this rule waits for."""
        if self.paragraphs:
            stripped = text.lstrip()
            return PARAGRAPH_BREAK in stripped and bool(stripped.split(PARAGRAPH_BREAK)[0].strip())
        return sentence_end(text.lstrip()) is not None

    def unit(self, text: str) -> str:
        """The accepted sentence (or paragraph) of a generated text: the first one, or all of it if none ended."""
        if self.paragraphs:
            return first_paragraph(text)
        return first_sentence(text.lstrip())


def join_units(units: Sequence[str], paragraphs: bool) -> str:
    """Accepted units joined as the original did: " " for sentences, " \\n\\n" for paragraphs."""
    return (" \n\n" if paragraphs else " ").join(units)
