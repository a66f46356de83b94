"""Sentence boundaries for VIC, and a stopping rule that ends decoding at the end of the first sentence.

The original cut at the first "." ("3.5" became "3.", "e.g." ended a sentence, "?" and "!" were ignored). Here a
sentence ends at ".", "?" or "!" (runs such as "?!" or "..." included, closing quotes/brackets kept) that is
followed by whitespace or the end of the text, except after a known abbreviation or a single-letter initial.
A boundary is only *confirmed* once something follows it, so decoding stops one token after the terminator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from vigc.data.prompts import join_units
from vigc.models.tokenizers import LLMTokenizer

__all__ = [
    "ABBREVIATIONS",
    "PARAGRAPH_BREAK",
    "SentenceStop",
    "first_paragraph",
    "first_sentence",
    "join_units",
    "sentence_end",
    "split_sentences",
]

ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "no", "fig"}
    | {"approx", "dept", "est", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
)
_TERMINATOR = re.compile(r"[.?!]+[\"')\]]*")
PARAGRAPH_BREAK = "\n\n"
_TERMINAL_CHARS = frozenset(".?!\"')]")  # what a text can end with when its last sentence is complete


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


def _lookup(table: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """`table[token_ids]`, False for ids past the tokenizer (LLMs often have a few more logits than pieces)."""
    ids = token_ids.cpu()
    inside = ids < table.shape[0]
    return torch.where(inside, table[ids.clamp(max=table.shape[0] - 1)], torch.zeros_like(inside))


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
    _terminal: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        # Only a token that starts with whitespace (a newline in paragraph mode) can confirm a boundary.
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return done.to(ids.device)
        confirming = self.may_stop(ids[:, -1])
        by_row = self.extension_ends(ids[:, :-1])
        if by_row is not None:  # sentence mode: the text before that token decides
            return (confirming & by_row).to(ids.device)
        rows = confirming.nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            done[row] = self.finished(text)
        return done.to(ids.device)

    def extension_ends(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Sentence mode: which rows any `may_stop` token would finish (the same for every such token).

        A whitespace-led token confirms a sentence end exactly when the text before it ends with a terminator
        that is not an abbreviation; a live row holds no confirmed end yet (decoding stops at the first), so
        only rows whose last token ends in a terminator (or a closing quote or bracket) are decoded. None in
        paragraph mode, where the token decides (one newline or two).
        """
        if self.paragraphs:
            return None
        ends = torch.zeros(ids.shape[0], dtype=torch.bool)
        if ids.shape[1] <= self.skip:
            return ends
        if self._terminal is None:
            self._terminal = self._terminal_tokens()
        rows = _lookup(self._terminal, ids[:, -1]).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(ids[rows, self.skip :].tolist(), for_generation=True)
        for row, text in zip(rows, texts, strict=True):
            ends[row] = self.finished(text + " a")
        return ends

    def may_stop(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Which new tokens could complete a unit (those starting with whitespace, or a newline in paragraphs)."""
        if self._confirmers is None:
            self._confirmers = self._whitespace_tokens()
        return _lookup(self._confirmers, token_ids)

    def _decoded_after_anchor(self) -> list[str]:
        anchor = self.tokenizer.encode("a")[-1]
        return self.tokenizer.batch_decode([[anchor, i] for i in range(len(self.tokenizer))], for_generation=True)

    def _whitespace_tokens(self) -> torch.Tensor:
        flags = torch.zeros(len(self.tokenizer), dtype=torch.bool)
        for i, text in enumerate(self._decoded_after_anchor()):
            tail = text.lstrip()[1:]
            flags[i] = "\n" in tail if self.paragraphs else tail[:1].isspace()
        return flags

    def _terminal_tokens(self) -> torch.Tensor:
        texts = self._decoded_after_anchor()
        return torch.tensor([text.rstrip()[-1:] in _TERMINAL_CHARS for text in texts], dtype=torch.bool)

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
