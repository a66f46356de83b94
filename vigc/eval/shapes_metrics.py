"""Quality of generated QA about synthetic scenes, measured strictly against their ground truth.

Every generated text is read back with the scene language (`vigc.data.shapes_language`), so each claim can be
checked against the scene that produced the image:

* **parse**: the VIG output held a `Question: ... Answer: ...` pair.
* **question validity**: the question is a question of the language whose objects exist (once) and whose answer
  is decidable in the scene (e.g. "left or right" of two objects in different columns).
* **fully correct** (strict): the question is valid; every sentence of the answer is a sentence of the language
  and true of the scene; the answer contains the sentence that answers the question (the ground truth's key
  sentence: the conclusion; for descriptions and shape counts, the count); its listings are complete and exact
  (see below); and it lists nothing twice.
* **answered** (lenient): the question is valid and the answer contains the sentence that answers it, whatever
  else it says.
* **listings**: the objects the ground-truth answer names, sentence kind by sentence kind (a description's
  "In the top left corner there is ..." per object, a counting answer's "I can see ..." list, the "The red circle
  is in the center." steps of a left/right answer), must be named by the answer with sentences of the same kind:
  none *omitted*, no *extra* one (an object the listing should not hold). Relations between two objects ("overlaps",
  "to the left of": templates with a second-object slot) are not listings; an answer need not repeat all of them.
* **listed twice**: an answer sentence that repeats an earlier one, names an object already listed by a sentence of
  its kind (or twice in one list), or states a relation between the same objects again.
* **sentence precision**: true sentences / all sentences of the answers; **coverage**: ground-truth answer
  sentences found in the answer / all ground-truth sentences (valid questions).
* **hallucination**, CHAIR-style, over the objects the answers mention. An object mention is hallucinated when no
  object of the scene has its colour and shape (CHAIR_i = hallucinated mentions / mentions, CHAIR_s = answers
  with at least one / answers). With attributes: a mention is also hallucinated when the object exists but not
  with the size or position stated about it. **False claims per answer**: both kinds, per answer.
* **error rate by sentence index**: the share of i-th sentences that do not parse or are false (does an answer
  drift as it gets longer?).
* **question diversity**: distinct questions per 100 and the entropy (bits) of the question types.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigc.data.shapes_language import (
    Mention,
    ParsedSentence,
    matching,
    mentions,
    parse_sentence,
    sentence_is_true,
    split_sentences,
)
from vigc.data.shapes_questions import parse_question
from vigc.data.shapes_scene import Scene

__all__ = [
    "ANSWER_FIELDS",
    "AnswerScore",
    "Diversity",
    "QAScore",
    "Summary",
    "error_by_sentence",
    "question_diversity",
    "score_answer",
    "score_record",
    "summarize",
]

ANSWER_FIELDS = ("original_answer", "answer")

Listing = tuple[str, str]  # (template, object name): one object named by one kind of sentence


def _norm(sentence: str) -> str:
    return " ".join(sentence.lower().split())


@dataclass
class AnswerScore:
    """What one answer says and how much of it holds.

    Attributes:
        sentences: Sentences in the answer.
        parsed: Sentences that are sentences of the language.
        true: Parsed sentences that hold in the scene.
        sentence_ok: Per sentence, in order: parsed and true.
        mentions: Object mentions.
        object_hallucinations: Mentions whose colour and shape match no object.
        attribute_hallucinations: Mentions of an existing object with a wrong size or position.
        key_present: The answer contains the sentence that answers the question.
        covered: Ground-truth sentences found in the answer.
        reference: Ground-truth sentences (0 for an invalid question).
        omitted: Objects a ground-truth listing names that the answer does not name with that kind of sentence.
        extra: Objects the answer names with a kind of sentence the ground truth lists, but that listing omits.
        duplicates: Sentences that repeat a sentence, a listed object or a relation said before.
    """

    sentences: int = 0
    parsed: int = 0
    true: int = 0
    sentence_ok: list[bool] = field(default_factory=list)
    mentions: int = 0
    object_hallucinations: int = 0
    attribute_hallucinations: int = 0
    key_present: bool = False
    covered: int = 0
    reference: int = 0
    omitted: int = 0
    extra: int = 0
    duplicates: int = 0

    @property
    def all_true(self) -> bool:
        """Non-empty, and every sentence parsed and true."""
        return self.sentences > 0 and self.true == self.sentences

    @property
    def false_claims(self) -> int:
        """Hallucinated objects plus wrong attributes of existing objects."""
        return self.object_hallucinations + self.attribute_hallucinations

    @property
    def exact_listings(self) -> bool:
        """Every listing complete, nothing extra, nothing listed twice."""
        return self.omitted == 0 and self.extra == 0 and self.duplicates == 0


def _mention_errors(parsed_mentions: Iterable[Mention], scene: Scene, score: AnswerScore) -> None:
    for mention in parsed_mentions:
        score.mentions += 1
        core = {k: v for k, v in mention.items() if k in ("color", "shape")}
        if not matching(scene, core):
            score.object_hallucinations += 1
        elif not matching(scene, mention):
            score.attribute_hallucinations += 1


def _object_name(mention: Mention, scene: Scene) -> str | None:
    """Which object a mention names: colour and shape (unique in a scene), else the object at its position.

    None for a mention of a kind of object ("two circles"). A named object that is not in the scene keeps its
    words, so that listing it twice is still seen.
    """
    if "color" in mention and "shape" in mention:
        return f"{mention['color']} {mention['shape']}"
    if "pos" in mention:
        found = matching(scene, {"pos": mention["pos"]})
        return found[0].name if found else f"the object {mention['pos']}"
    return None


def _is_relation(parsed: ParsedSentence) -> bool:
    """A relation between two objects: the language numbers the second object's slots ("color2", "shapes2")."""
    return any(slot[-1].isdigit() for slot in parsed.slots)


def _named(parsed: ParsedSentence, scene: Scene) -> list[str]:
    names = (_object_name(m, scene) for m in mentions(parsed))
    return [n for n in names if n is not None]


def _listings(sentences: Iterable[ParsedSentence], scene: Scene) -> set[Listing]:
    return {(p.template, n) for p in sentences if not _is_relation(p) for n in _named(p, scene)}


def _count_duplicates(sentences: Sequence[ParsedSentence], scene: Scene) -> int:
    """Sentences that repeat an earlier sentence, an object already listed by their kind, or a relation."""
    said: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    listed: set[Listing] = set()
    related: set[tuple[str, frozenset[str]]] = set()
    duplicates = 0
    for parsed in sentences:
        names = _named(parsed, scene)
        text = (parsed.template, tuple(sorted(parsed.slots.items())))
        repeats = text in said
        if _is_relation(parsed):
            relation = (parsed.template, frozenset(names))
            repeats |= bool(names) and relation in related
            related.add(relation)
        else:
            items = [(parsed.template, n) for n in names]
            repeats |= len(set(items)) < len(items) or any(item in listed for item in items)
            listed.update(items)
        said.add(text)
        duplicates += repeats
    return duplicates


def _check_listings(
    parsed: Sequence[ParsedSentence], reference: Sequence[str], scene: Scene, score: AnswerScore
) -> None:
    expected = _listings((p for p in map(parse_sentence, reference) if p is not None), scene)
    kinds = {template for template, _ in expected}
    given = {item for item in _listings(parsed, scene) if item[0] in kinds}
    score.omitted = len(expected - given)
    score.extra = len(given - expected)
    score.duplicates = _count_duplicates(parsed, scene)


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
    parsed_sentences = []
    for sentence in sentences:
        parsed = parse_sentence(sentence)
        ok = parsed is not None and sentence_is_true(parsed, scene)
        score.sentence_ok.append(ok)
        if parsed is None:
            continue
        parsed_sentences.append(parsed)
        score.parsed += 1
        score.true += ok
        _mention_errors(mentions(parsed), scene, score)
    said = {_norm(s) for s in sentences}
    score.covered = sum(_norm(s) in said for s in reference)
    score.key_present = bool(key) and all(_norm(s) in said for s in key)
    _check_listings(parsed_sentences, reference, scene, score)
    return score


@dataclass
class QAScore:
    """One generated record, scored.

    Attributes:
        image: The image.
        task: LLaVA subset of the instruction ("conv", "desc", "comp").
        has_qa: The VIG output held a question and an answer (or a question, in a run that does not keep VIG's
            answer: `original_answer` null).
        question: The generated question (None without a QA pair).
        question_type: The question's type, None when it is not a question of the language.
        question_valid: The question is valid for the scene.
        answers: Answer field ("original_answer", "answer", ...) → its score; a field the record does not hold, or
            holds as null (VIG's answer in a run without it), is left out.
    """

    image: str
    task: str
    has_qa: bool
    question: str | None = None
    question_type: str | None = None
    question_valid: bool = False
    answers: dict[str, AnswerScore] = field(default_factory=dict)

    def fully_correct(self, answer_field: str) -> bool:
        """Valid question; every sentence true; the answering sentence; exact listings; nothing listed twice."""
        score = self.answers.get(answer_field)
        return (
            self.question_valid and score is not None and score.all_true and score.key_present and score.exact_listings
        )

    def answered(self, answer_field: str) -> bool:
        """Valid question and the sentence that answers it present, whatever else the answer says."""
        score = self.answers.get(answer_field)
        return self.question_valid and score is not None and score.key_present


def score_record(record: Mapping[str, Any], scene: Scene, fields: Sequence[str] = ANSWER_FIELDS) -> QAScore:
    """Score a generated record (`question`, `original_answer`, the answer `fields`, `task`) against its scene."""
    question = record.get("question")
    vig_answer = record.get("original_answer")
    has_qa = bool(question) and (vig_answer is None or bool(vig_answer))  # None: VIG's answer was not decoded
    result = QAScore(image=str(record.get("image", "")), task=str(record.get("task", "")), has_qa=has_qa)
    if not has_qa:
        return result
    result.question = str(question)
    parsed = parse_question(result.question, scene)
    reference: list[str] = []
    key: list[str] = []
    if parsed is not None:
        result.question_type = parsed.qtype.name
        result.question_valid = parsed.valid
        if parsed.valid:
            reference = parsed.answer(scene)
            key = parsed.qtype.key_sentences(reference)
    for name in fields:
        if record.get(name) is not None:
            result.answers[name] = score_answer(str(record[name]), scene, reference, key)
    return result


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


@dataclass(frozen=True)
class Summary:
    """Aggregate metrics of one answer field over many records (fractions in [0, 1]; NaN when undefined).

    `false_claims` and `sentences_per_answer` are means per answer; `omitted`, `extra` and `listed_twice` are the
    shares of answers (to valid questions) with at least one such error.
    """

    records: int
    parse_rate: float
    question_valid: float
    fully_correct: float
    fully_correct_given_valid: float
    answered: float
    omitted: float
    extra: float
    listed_twice: float
    sentence_precision: float
    unparsed_sentences: float
    coverage: float
    false_claims: float
    chair_i: float
    chair_s: float
    chair_i_attr: float
    chair_s_attr: float
    sentences_per_answer: float

    def as_dict(self) -> dict[str, float]:
        """Field name → value."""
        return dict(self.__dict__)


def summarize(scores: Sequence[QAScore], answer_field: str) -> Summary:
    """Aggregate the scores of `answer_field` ("original_answer" for VIG only, "answer" after VIC, ...)."""
    qa = [s for s in scores if s.has_qa and answer_field in s.answers]
    answers = [s.answers[answer_field] for s in qa]
    valid = [s for s in qa if s.question_valid]
    valid_answers = [s.answers[answer_field] for s in valid]
    sentences = sum(a.sentences for a in answers)
    mentioned = sum(a.mentions for a in answers)
    objects = sum(a.object_hallucinations for a in answers)
    return Summary(
        records=len(scores),
        parse_rate=_ratio(len(qa), len(scores)),
        question_valid=_ratio(len(valid), len(qa)),
        fully_correct=_ratio(sum(s.fully_correct(answer_field) for s in qa), len(qa)),
        fully_correct_given_valid=_ratio(sum(s.fully_correct(answer_field) for s in valid), len(valid)),
        answered=_ratio(sum(s.answered(answer_field) for s in qa), len(qa)),
        omitted=_ratio(sum(a.omitted > 0 for a in valid_answers), len(valid_answers)),
        extra=_ratio(sum(a.extra > 0 for a in valid_answers), len(valid_answers)),
        listed_twice=_ratio(sum(a.duplicates > 0 for a in valid_answers), len(valid_answers)),
        sentence_precision=_ratio(sum(a.true for a in answers), sentences),
        unparsed_sentences=_ratio(sentences - sum(a.parsed for a in answers), sentences),
        coverage=_ratio(sum(a.covered for a in valid_answers), sum(a.reference for a in valid_answers)),
        false_claims=_ratio(sum(a.false_claims for a in answers), len(answers)),
        chair_i=_ratio(objects, mentioned),
        chair_s=_ratio(sum(a.object_hallucinations > 0 for a in answers), len(answers)),
        chair_i_attr=_ratio(objects + sum(a.attribute_hallucinations for a in answers), mentioned),
        chair_s_attr=_ratio(sum(a.false_claims > 0 for a in answers), len(answers)),
        sentences_per_answer=_ratio(sentences, len(answers)),
    )


def error_by_sentence(scores: Sequence[QAScore], answer_field: str) -> list[tuple[int, int]]:
    """(wrong, total) for the 1st, 2nd, ... sentence of the answers: wrong = unparsed or false.

    The list is as long as the longest answer; entry i counts only answers with more than i sentences.
    """
    curve: list[list[int]] = []
    for score in scores:
        if not score.has_qa or answer_field not in score.answers:
            continue
        for index, ok in enumerate(score.answers[answer_field].sentence_ok):
            if index == len(curve):
                curve.append([0, 0])
            curve[index][0] += not ok
            curve[index][1] += 1
    return [(wrong, total) for wrong, total in curve]


@dataclass(frozen=True)
class Diversity:
    """How varied the generated questions are.

    Attributes:
        questions: Generated questions.
        distinct_per_100: Distinct questions (case and spacing ignored) per 100 questions.
        type_entropy_bits: Entropy of the question types (a question of no type counts as one type, "other").
        types: Question type → count.
    """

    questions: int
    distinct_per_100: float
    type_entropy_bits: float
    types: dict[str, int]


def question_diversity(scores: Sequence[QAScore]) -> Diversity:
    """Distinct questions per 100 and question-type entropy over the records that hold a question."""
    asked = [s for s in scores if s.has_qa and s.question is not None]
    types = Counter(s.question_type or "other" for s in asked)
    total = len(asked)
    entropy = -sum(n / total * math.log2(n / total) for n in types.values()) if total else float("nan")
    return Diversity(
        questions=total,
        distinct_per_100=100 * _ratio(len({_norm(str(s.question)) for s in asked}), total),
        type_entropy_bits=entropy + 0.0,  # + 0.0: one type gives -0.0
        types=dict(types.most_common()),
    )
