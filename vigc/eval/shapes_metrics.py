"""Quality of generated QA about synthetic scenes, measured against their ground truth.

Every generated text is read back with the scene language (`vigc.data.shapes_language`), so each claim can be
checked against the scene that produced the image:

* **parse**: the VIG output held a `Question: ... Answer: ...` pair.
* **question validity**: the question is a question of the language whose objects exist (once) and whose answer
  is decidable in the scene (e.g. "left or right" of two objects in different columns).
* **answer correctness**: the question is valid, every sentence of the answer is a sentence of the language and
  true of the scene, and the answer contains the sentence that answers the question (the ground truth's
  conclusion; for descriptions, the object count).
* **conclusion correctness** (more lenient): the question is valid and the answer contains the sentence that
  answers it, whatever else it says.
* **sentence precision**: true sentences / all sentences of the answers.
* **coverage**: ground-truth answer sentences found in the answer / all ground-truth sentences (valid questions).
* **hallucination**, CHAIR-style, over the objects the answers mention. An object mention is hallucinated when no
  object of the scene has its colour and shape (CHAIR_i = hallucinated mentions / mentions, CHAIR_s = answers
  with at least one / answers). With attributes: a mention is also hallucinated when the object exists but not
  with the size or position stated about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigc.data.shapes_language import matching, mentions, parse_sentence, sentence_is_true, split_sentences
from vigc.data.shapes_questions import parse_question
from vigc.data.shapes_scene import Scene

__all__ = ["ANSWER_FIELDS", "AnswerScore", "QAScore", "Summary", "score_answer", "score_record", "summarize"]

ANSWER_FIELDS = ("original_answer", "answer")


def _norm(sentence: str) -> str:
    return " ".join(sentence.lower().split())


@dataclass
class AnswerScore:
    """What one answer says and how much of it holds.

    Attributes:
        sentences: Sentences in the answer.
        parsed: Sentences that are sentences of the language.
        true: Parsed sentences that hold in the scene.
        mentions: Object mentions.
        object_hallucinations: Mentions whose colour and shape match no object.
        attribute_hallucinations: Mentions of an existing object with a wrong size or position.
        key_present: The answer contains the sentence that answers the question.
        covered: Ground-truth sentences found in the answer.
        reference: Ground-truth sentences (0 for an invalid question).
    """

    sentences: int = 0
    parsed: int = 0
    true: int = 0
    mentions: int = 0
    object_hallucinations: int = 0
    attribute_hallucinations: int = 0
    key_present: bool = False
    covered: int = 0
    reference: int = 0

    @property
    def all_true(self) -> bool:
        """Non-empty, and every sentence parsed and true."""
        return self.sentences > 0 and self.true == self.sentences


def _mention_errors(parsed_mentions: Iterable[Mapping[str, str]], scene: Scene, score: AnswerScore) -> None:
    for mention in parsed_mentions:
        score.mentions += 1
        core = {k: v for k, v in mention.items() if k in ("color", "shape")}
        if not matching(scene, core):
            score.object_hallucinations += 1
        elif not matching(scene, mention):
            score.attribute_hallucinations += 1


def score_answer(answer: str, scene: Scene, reference: Sequence[str] = (), key: Sequence[str] = ()) -> AnswerScore:
    """Score one answer.

    Args:
        answer: The generated answer.
        scene: The scene of the image.
        reference: Ground-truth answer sentences (empty when the question is invalid).
        key: The ground-truth sentences that answer the question.
    """
    score = AnswerScore(reference=len(reference))
    sentences = split_sentences(answer)
    score.sentences = len(sentences)
    for sentence in sentences:
        parsed = parse_sentence(sentence)
        if parsed is None:
            continue
        score.parsed += 1
        score.true += sentence_is_true(parsed, scene)
        _mention_errors(mentions(parsed), scene, score)
    said = {_norm(s) for s in sentences}
    score.covered = sum(_norm(s) in said for s in reference)
    score.key_present = bool(key) and all(_norm(s) in said for s in key)
    return score


@dataclass
class QAScore:
    """One generated record, scored.

    Attributes:
        image: The image.
        task: LLaVA subset of the instruction ("conv", "desc", "comp").
        has_qa: The VIG output held a question and an answer.
        question_type: The question's type, None when it is not a question of the language.
        question_valid: The question is valid for the scene.
        answers: Answer field ("original_answer", "answer") → its score.
    """

    image: str
    task: str
    has_qa: bool
    question_type: str | None = None
    question_valid: bool = False
    answers: dict[str, AnswerScore] = field(default_factory=dict)

    def correct(self, answer_field: str) -> bool:
        """Valid question, an answer whose every sentence is true, and the sentence that answers the question."""
        score = self.answers.get(answer_field)
        return self.question_valid and score is not None and score.all_true and score.key_present


def score_record(record: Mapping[str, Any], scene: Scene, fields: Sequence[str] = ANSWER_FIELDS) -> QAScore:
    """Score a generated record (`question`, `original_answer`, `answer`, `task`) against its scene."""
    question = record.get("question")
    has_qa = bool(question) and bool(record.get("original_answer"))
    result = QAScore(image=str(record.get("image", "")), task=str(record.get("task", "")), has_qa=has_qa)
    if not has_qa:
        return result
    parsed = parse_question(str(question), scene)
    reference: list[str] = []
    key: list[str] = []
    if parsed is not None:
        result.question_type = parsed.qtype.name
        result.question_valid = parsed.valid
        if parsed.valid:
            reference = parsed.answer(scene)
            key = parsed.qtype.key_sentences(reference)
    for name in fields:
        result.answers[name] = score_answer(str(record.get(name) or ""), scene, reference, key)
    return result


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


@dataclass(frozen=True)
class Summary:
    """Aggregate metrics of one answer field over many records (fractions in [0, 1]; NaN when undefined)."""

    records: int
    parse_rate: float
    question_valid: float
    correct: float
    correct_given_valid: float
    conclusion_correct: float
    sentence_precision: float
    unparsed_sentences: float
    coverage: float
    chair_i: float
    chair_s: float
    chair_i_attr: float
    chair_s_attr: float
    sentences_per_answer: float

    def as_dict(self) -> dict[str, float]:
        """Field name → value."""
        return dict(self.__dict__)


def summarize(scores: Sequence[QAScore], answer_field: str) -> Summary:
    """Aggregate the scores of `answer_field` ("original_answer" for VIG only, "answer" after VIC)."""
    qa = [s for s in scores if s.has_qa]
    answers = [s.answers[answer_field] for s in qa]
    valid = [s for s in qa if s.question_valid]
    valid_answers = [s.answers[answer_field] for s in valid]
    sentences = sum(a.sentences for a in answers)
    mentioned = sum(a.mentions for a in answers)
    objects = sum(a.object_hallucinations for a in answers)
    attributes = sum(a.attribute_hallucinations for a in answers)
    any_error = sum(a.object_hallucinations + a.attribute_hallucinations > 0 for a in answers)
    return Summary(
        records=len(scores),
        parse_rate=_ratio(len(qa), len(scores)),
        question_valid=_ratio(len(valid), len(qa)),
        correct=_ratio(sum(s.correct(answer_field) for s in qa), len(qa)),
        correct_given_valid=_ratio(sum(s.correct(answer_field) for s in valid), len(valid)),
        conclusion_correct=_ratio(sum(s.answers[answer_field].key_present for s in valid), len(qa)),
        sentence_precision=_ratio(sum(a.true for a in answers), sentences),
        unparsed_sentences=_ratio(sentences - sum(a.parsed for a in answers), sentences),
        coverage=_ratio(sum(a.covered for a in valid_answers), sum(a.reference for a in valid_answers)),
        chair_i=_ratio(objects, mentioned),
        chair_s=_ratio(sum(a.object_hallucinations > 0 for a in answers), len(answers)),
        chair_i_attr=_ratio(objects + attributes, mentioned),
        chair_s_attr=_ratio(any_error, len(answers)),
        sentences_per_answer=_ratio(sentences, len(answers)),
    )
