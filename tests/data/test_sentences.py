"""Sentence boundaries used by the default VIC."""

from __future__ import annotations

import pytest
import torch

from vigc.data.sentences import SentenceStop, first_paragraph, first_sentence, sentence_end, split_sentences
from vigc.models.default_model import DEFAULT_ASSETS
from vigc.models.tokenizers import LavisLlamaTokenizer


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


@pytest.mark.parametrize("paragraphs", [False, True])
def test_stop_rule_equals_decoding_every_candidate(paragraphs: bool) -> None:
    """The stop rule's shortcut (sentence mode: the text before a whitespace-led token decides) gives, for every
    token of the vocabulary, what decoding the whole candidate text and looking for a boundary gives."""
    tokenizer = LavisLlamaTokenizer(DEFAULT_ASSETS / "llm" / "tokenizer.model")
    stop = SentenceStop(tokenizer, skip=1, paragraphs=paragraphs)
    # Texts a live row can hold: no confirmed boundary yet (decoding stops at the first one).
    ends_next = ["The cost is 3.", "It is red.", 'He said "stop."', "Wow!", "So?!"]
    prefixes = [*ends_next, "Ask Mr.", "For e.g.", "A dog runs", "I see"]
    prefixes += ["One.\n", "One.\n\nTwo", "One two"] if paragraphs else []
    vocab = torch.arange(len(tokenizer))
    for prefix in prefixes:
        ids = torch.tensor([[1, *tokenizer.encode(prefix)]] * len(vocab))
        candidates = torch.cat([ids, vocab[:, None]], dim=1)
        texts = tokenizer.batch_decode(candidates[:, 1:].tolist(), for_generation=True)
        expected = [bool(ok) and stop.finished(text) for ok, text in zip(stop.may_stop(vocab), texts, strict=True)]
        assert stop(candidates).tolist() == expected, prefix
        if not paragraphs:
            assert any(expected) == (prefix in ends_next), prefix
