"""Sentence boundaries used by the default VIC."""

from __future__ import annotations

import pytest

from vigc.generation.sentences import first_paragraph, first_sentence, sentence_end, split_sentences


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("The pizza costs 3.5 dollars. It is hot.", "The pizza costs 3.5 dollars."),
        ("Fruit, e.g. apples, is healthy. Yes.", "Fruit, e.g. apples, is healthy."),
        ("Mr. Smith waves. Then", "Mr. Smith waves."),
        ("Is it raining? No.", "Is it raining?"),
        ("Wow! A cat.", "Wow!"),
        ('He said "stop." Then left.', 'He said "stop."'),
        ("Wait... what?", "Wait..."),
        ("J. R. R. Tolkien wrote it. Next", "J. R. R. Tolkien wrote it."),
        ("no terminator at all", "no terminator at all"),
    ],
)
def test_first_sentence(text: str, sentence: str) -> None:
    assert first_sentence(text) == sentence


def test_a_boundary_needs_something_after_it_while_decoding() -> None:
    assert sentence_end("The cost is 3.") is None  # might become 3.5
    assert sentence_end("The cost is 3.", final=True) == len("The cost is 3.")
    assert sentence_end("The cost is 3.5") is None
    assert sentence_end("The cost is 3. ") == len("The cost is 3.")
    assert sentence_end("Line one.\n\nLine two") == len("Line one.")


def test_split_sentences_and_paragraphs() -> None:
    text = "A dog runs. It is 2.5 m long! Is it fast?\n\nYes."
    assert split_sentences(text) == ["A dog runs.", "It is 2.5 m long!", "Is it fast?", "Yes."]
    assert first_paragraph("  one. two.\n\nthree.") == "one. two."
