"""What VIC changed: a word-level comparison (difflib) of the answer before and after VIC, as marked-up HTML.

Words are whitespace-separated tokens; a paragraph break (a blank line) counts as a token of its own, so
paragraph answers keep their layout. Every text is escaped.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

__all__ = ["WordChanges", "compare_words"]

_TOKENS = re.compile(r"\n\s*\n|\S+")
PARAGRAPH = "\n\n"


@dataclass(frozen=True)
class WordChanges:
    """How two texts differ, word by word.

    Attributes:
        html: the new text with `<ins>` (added), `<del>` (removed) and replaced words (a `<del>` and an `<ins>`
            inside `<span class="vigc-replaced">`) marked.
        added: words only in the new text.
        removed: words only in the old text.
        replaced: runs of old words replaced by new ones.
    """

    html: str
    added: int
    removed: int
    replaced: int

    @property
    def changed(self) -> bool:
        """Whether the texts differ in any word."""
        return bool(self.added or self.removed or self.replaced)

    def summary(self) -> str:
        """One line for the page, e.g. "2 words added, 1 replaced"."""
        if not self.changed:
            return "no word changed"
        parts = [f"{self.added} word{'s' * (self.added != 1)} added"] if self.added else []
        parts += [f"{self.removed} removed"] if self.removed else []
        parts += [f"{self.replaced} replaced"] if self.replaced else []
        return ", ".join(parts)


def _tokens(text: str) -> list[str]:
    return [PARAGRAPH if not token.strip() else token for token in _TOKENS.findall(text)]


def _words(tokens: list[str]) -> str:
    """Escaped tokens joined by spaces, paragraph breaks kept as line breaks."""
    return " ".join(html.escape(token) for token in tokens).replace(f" {PARAGRAPH} ", PARAGRAPH)


def compare_words(before: str, after: str) -> WordChanges:
    """Mark, in `after`, the words added, removed and replaced relative to `before`."""
    old, new = _tokens(before), _tokens(after)
    parts: list[str] = []
    added = removed = replaced = 0
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            parts.append(_words(new[b0:b1]))
        elif op == "insert":
            added += b1 - b0
            parts.append(f'<ins class="vigc-added" title="added by VIC">{_words(new[b0:b1])}</ins>')
        elif op == "delete":
            removed += a1 - a0
            parts.append(f'<del class="vigc-removed" title="removed by VIC">{_words(old[a0:a1])}</del>')
        else:
            replaced += 1
            parts.append(
                f'<span class="vigc-replaced" title="replaced by VIC"><del>{_words(old[a0:a1])}</del> '
                f"<ins>{_words(new[b0:b1])}</ins></span>"
            )
    return WordChanges(html=" ".join(parts), added=added, removed=removed, replaced=replaced)
