"""VQA accuracy as the official VQA evaluation computes it (used for OKVQA and A-OKVQA direct answers).

An answer is normalised (lower case, punctuation, number words → digits, articles dropped, contractions
restored), then scored against the human answers: for each of the N human answers, leave it out and take
``min(#remaining humans who gave the prediction / 3, 1)``; the accuracy is the mean over the N leave-one-out
subsets (10-choose-9 for VQA's 10 annotators).

Two deliberate differences from the official script, both in favour of robustness on raw annotations: the
prediction and the human answers are always normalised (the official script normalises only when the humans
disagree, because its annotation files are pre-normalised), and everything is lower-cased.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["VQAScore", "normalize_answer", "strip_answer_prefix", "vqa_accuracy", "vqa_accuracy_mean"]

_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# The official list; "." is handled by _PERIOD_STRIP and "'" is kept for the contractions.
_PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # a period not between digits ("3.5" keeps its point)
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _process_punctuation(text: str) -> str:
    """Drop punctuation; a mark between words becomes a space unless removing it joins a number (1,000)."""
    out = text
    for mark in _PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or re.search(_COMMA_STRIP, text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out)


def _process_digits_and_articles(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def normalize_answer(answer: str) -> str:
    """Normalise an answer the way the VQA evaluation does (and lower-case it).

    Args:
        answer: A predicted or human answer.

    Returns:
        The normalised answer, e.g. ``"Two dogs."`` → ``"2 dogs"``, ``"the cat"`` → ``"cat"``.
    """
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    return _process_digits_and_articles(_process_punctuation(text))


def strip_answer_prefix(text: str) -> str:
    """Remove a leading ``answer:`` the model may write before its answer (as the original task did)."""
    text = text.strip()
    match = re.match(r"^answer\s*:", text, flags=re.IGNORECASE)
    return text[match.end() :].strip() if match else text


def vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction.

    Args:
        prediction: The model's answer (raw text; it is normalised here).
        human_answers: Every annotator's answer, repeats included (10 for VQA/OKVQA, 10 direct answers for
            A-OKVQA).

    Returns:
        The mean over leave-one-out subsets of ``min(matches / 3, 1)``, in [0, 1]; 0 without human answers.
    """
    if not human_answers:
        return 0.0
    predicted = normalize_answer(prediction)
    humans = [normalize_answer(a) for a in human_answers]
    total_matches = sum(h == predicted for h in humans)
    scores = [min((total_matches - (h == predicted)) / 3.0, 1.0) for h in humans]
    return sum(scores) / len(scores)


@dataclass(frozen=True)
class VQAScore:
    """Accuracy over a set of questions.

    Attributes:
        accuracy: Mean VQA accuracy in percent (0-100), as the original reported it.
        count: Number of questions scored.
    """

    accuracy: float
    count: int


def vqa_accuracy_mean(pairs: Iterable[tuple[str, Sequence[str]]]) -> VQAScore:
    """Mean VQA accuracy (in percent) of ``(prediction, human_answers)`` pairs; 0 for no pairs."""
    scores = [vqa_accuracy(prediction, answers) for prediction, answers in pairs]
    return VQAScore(accuracy=100.0 * sum(scores) / len(scores) if scores else 0.0, count=len(scores))
