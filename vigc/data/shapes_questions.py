"""Questions about synthetic scenes, their ground-truth answers, and reading generated questions back.

A `QuestionType` knows which argument sets make a valid question about a scene (the objects it names exist, once;
the relation it asks about is decidable), its wordings (templates of `vigc.data.shapes_language`), its LLaVA-style
answer (one or more sentences) and its OKVQA-style short answer. The types are grouped by LLaVA subset: `conv`
(one fact about one object), `desc` (a description, one sentence per object) and `comp` (counting, comparison and
relations, with the reasoning spelled out before the conclusion).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vigc.data.shapes_language import (
    ROWS,
    count_phrase,
    matching,
    number_word,
    object_list,
    plural,
    render,
    template_regex,
)
from vigc.data.shapes_scene import COLORS, SHAPES, SIZES, Scene, ShapeObject

__all__ = [
    "FIRST_PAIR",
    "QUESTION_PLANS",
    "QUESTION_TYPES",
    "TASKS",
    "ParsedQuestion",
    "QuestionType",
    "parse_question",
    "planned_question",
    "question_starts",
    "sample_question",
]

TASKS = ("conv", "desc", "comp")
Slots = dict[str, str]


def _reading_order(objects: list[ShapeObject] | tuple[ShapeObject, ...]) -> list[ShapeObject]:
    return sorted(objects, key=lambda o: o.cell)


def _obj(scene: Scene, slots: Mapping[str, str], suffix: str = "") -> ShapeObject:
    return matching(scene, {"color": slots["color" + suffix], "shape": slots["shape" + suffix]})[0]


def _ref(obj: ShapeObject, suffix: str = "") -> Slots:
    return {"color" + suffix: obj.color, "shape" + suffix: obj.shape}


def _pairs(scene: Scene, keep: Callable[[ShapeObject, ShapeObject], bool]) -> list[Slots]:
    return [{**_ref(a), **_ref(b, "2")} for a in scene.objects for b in scene.objects if a is not b and keep(a, b)]


def _count_sentence(n: int, one: str, many: str, **slots: str) -> str:
    return render(one, **slots) if n == 1 else render(many, num=number_word(n), **slots)


def _short_position(obj: ShapeObject) -> str:
    words = obj.position.split(" ", 2)[2]
    return words.removesuffix(" corner")


# ---- conv ------------------------------------------------------------------------------------------------------
# Objects are named by their position (one object per cell), so such a question is valid whenever the model
# asks about a cell that holds an object; naming them by a colour or shape that two objects share is not.
def _position_args(scene: Scene) -> list[Slots]:
    return [{"pos": o.position} for o in scene.objects]


def _at(scene: Scene, slots: Mapping[str, str]) -> ShapeObject:
    return matching(scene, {"pos": slots["pos"]})[0]


def _object_args(scene: Scene) -> list[Slots]:
    return [_ref(o) for o in scene.objects]


# ---- desc ------------------------------------------------------------------------------------------------------
MAX_OVERLAP_SENTENCES = 2


def _describe_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    objects = _reading_order(scene.objects)
    sentences = [_count_sentence(len(objects), "count_all_one", "count_all")]
    sentences += [render("obj_at", size=o.size, color=o.color, shape=o.shape, pos=o.position) for o in objects]
    for i, j in scene.overlaps[:MAX_OVERLAP_SENTENCES]:
        a, b = _reading_order([scene.objects[i], scene.objects[j]])
        sentences.append(render("overlap", **_ref(a), **_ref(b, "2")))
    return sentences


# ---- comp ------------------------------------------------------------------------------------------------------
def _shape_count_args(scene: Scene) -> list[Slots]:
    return [{"shapes": plural(s)} for s in SHAPES if matching(scene, {"shape": s})]


def _shape_count_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    found = _reading_order(matching(scene, {"shape": slots["shapes"][:-1]}))
    count = _count_sentence(len(found), "count_shape_one", "count_shape", shape=found[0].shape, shapes=slots["shapes"])
    return [count, render("see", list=object_list(found))]


def _total_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    objects = _reading_order(scene.objects)
    return [render("see", list=object_list(objects)), _count_sentence(len(objects), "total_one", "total")]


def _color_count_args(scene: Scene) -> list[Slots]:
    return [{"color": c} for c in COLORS if matching(scene, {"color": c})]


def _color_count_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    found = _reading_order(matching(scene, {"color": slots["color"]}))
    last = _count_sentence(len(found), "color_count_one", "color_count", color=slots["color"])
    return [render("see", list=object_list(found)), last]


def _where(obj: ShapeObject) -> str:
    return render("where", **_ref(obj), pos=obj.position)


def _side_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    side = "left" if a.col < b.col else "right"
    return [_where(a), _where(b), render("side", **_ref(a), **_ref(b, "2"), side=side)]


def _vrel_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    vrel = "above" if a.row < b.row else "below"
    return [_where(a), _where(b), render("vrel", **_ref(a), **_ref(b, "2"), vrel=vrel)]


def _relpos_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    """Where one object is against another: left / right in one row, else above / below."""
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    return (_side_answer if a.row == b.row else _vrel_answer)(scene, slots)


def _relpos_short(scene: Scene, slots: Mapping[str, str]) -> str:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    if a.row == b.row:
        return "left" if a.col < b.col else "right"
    return "above" if a.row < b.row else "below"


def _bigger_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    big, small = (a, b) if a.size == "large" else (b, a)
    sizes = [render("size_of", **_ref(o), size=o.size) for o in (a, b)]
    return [*sizes, render("bigger", **_ref(big), **_ref(small, "2"))]


def _more_args(scene: Scene) -> list[Slots]:
    present = [s for s in SHAPES if matching(scene, {"shape": s})]
    return [{"shapes": plural(a), "shapes2": plural(b)} for a in present for b in present if a != b]


def _more_counts(scene: Scene, slots: Mapping[str, str]) -> tuple[int, int]:
    return tuple(len(matching(scene, {"shape": slots[k][:-1]})) for k in ("shapes", "shapes2"))  # type: ignore[return-value]


def _more_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    n1, n2 = _more_counts(scene, slots)
    shape1, shape2 = slots["shapes"][:-1], slots["shapes2"][:-1]
    pair = render("count_pair", cnt=count_phrase(n1, shape1), cnt2=count_phrase(n2, shape2))
    if n1 == n2:
        return [pair, render("as_many", **slots)]
    return [pair, render("more", cmp="more" if n1 > n2 else "fewer", **slots)]


def _more_short(scene: Scene, slots: Mapping[str, str]) -> str:
    n1, n2 = _more_counts(scene, slots)
    return "yes" if n1 > n2 else "no"


def _smaller_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    big, small = (a, b) if a.size == "large" else (b, a)
    sizes = [render("size_of", **_ref(o), size=o.size) for o in (a, b)]
    return [*sizes, render("smaller", **_ref(small), **_ref(big, "2"))]


def _neighbours(a: ShapeObject, b: ShapeObject) -> bool:
    """Horizontally or vertically adjacent cells: the only pairs that can overlap, so the question is not trivial."""
    return abs(a.row - b.row) + abs(a.col - b.col) == 1


def _overlaps(scene: Scene, slots: Mapping[str, str]) -> bool:
    both = tuple(sorted(scene.objects.index(_obj(scene, slots, x)) for x in ("", "2")))
    return both in scene.overlaps


def _overlap_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    a, b = _obj(scene, slots), _obj(scene, slots, "2")
    last = "overlap" if _overlaps(scene, slots) else "overlap_not"
    return [_where(a), _where(b), render(last, **_ref(a), **_ref(b, "2"))]


def _size_count_args(scene: Scene) -> list[Slots]:
    return [{"size": s} for s in SIZES if matching(scene, {"size": s})]


def _size_count_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    found = _reading_order(matching(scene, {"size": slots["size"]}))
    last = _count_sentence(len(found), "size_count_one", "size_count", size=slots["size"])
    return [render("see", list=object_list(found)), last]


def _row_objects(scene: Scene, row: str) -> list[ShapeObject]:
    return _reading_order([o for o in scene.objects if o.row == ROWS.index(row)])


def _row_args(scene: Scene) -> list[Slots]:
    return [{"row": r} for r in ROWS if _row_objects(scene, r)]


def _row_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    found = _row_objects(scene, slots["row"])
    sentences = [render("obj_at", size=o.size, color=o.color, shape=o.shape, pos=o.position) for o in found]
    return [*sentences, _count_sentence(len(found), "row_count_one", "row_count", row=slots["row"])]


def _at_answer(scene: Scene, slots: Mapping[str, str]) -> list[str]:
    o = _at(scene, slots)
    return [render("obj_at", size=o.size, color=o.color, shape=o.shape, pos=o.position)]


@dataclass(frozen=True)
class QuestionType:
    """One kind of question.

    Attributes:
        name: Identifier (`q_color`, ...).
        task: LLaVA subset: "conv", "desc" or "comp".
        texts: Wordings (templates); the first is the canonical one.
        arguments: Scene → every slot set that makes a valid question.
        answer: (scene, slots) → the ground-truth answer sentences.
        short: (scene, slots) → the short (OKVQA-style) answer.
        key: Which answer sentence answers the question: "first" or "last" (the conclusion).
    """

    name: str
    task: str
    texts: tuple[str, ...]
    arguments: Callable[[Scene], list[Slots]]
    answer: Callable[[Scene, Mapping[str, str]], list[str]]
    short: Callable[[Scene, Mapping[str, str]], str]
    key: str = "last"

    def key_sentences(self, sentences: list[str]) -> list[str]:
        """The ground-truth sentences an answer must contain to answer the question."""
        return sentences[:1] if self.key == "first" else sentences[-1:]


def _no_args(scene: Scene) -> list[Slots]:
    return [{}]


QUESTION_TYPES: dict[str, QuestionType] = {
    q.name: q
    for q in (
        QuestionType(
            "q_color",
            "conv",
            ("What color is the object {pos}?",),
            _position_args,
            lambda sc, s: [render("at_color", pos=s["pos"], color=_at(sc, s).color)],
            lambda sc, s: _at(sc, s).color,
        ),
        QuestionType(
            "q_shape",
            "conv",
            ("What shape is the object {pos}?",),
            _position_args,
            lambda sc, s: [render("at_shape", pos=s["pos"], shape=_at(sc, s).shape)],
            lambda sc, s: _at(sc, s).shape,
        ),
        QuestionType(
            "q_where",
            "conv",
            ("Where is the {color} {shape}?",),
            _object_args,
            lambda sc, s: [_where(_obj(sc, s))],
            lambda sc, s: _short_position(_obj(sc, s)),
        ),
        QuestionType(
            "q_size",
            "conv",
            ("How big is the {color} {shape}?", "What size is the {color} {shape}?"),
            _object_args,
            lambda sc, s: [render("size_of", **s, size=_obj(sc, s).size)],
            lambda sc, s: _obj(sc, s).size,
        ),
        QuestionType(
            "q_what_at",
            "conv",
            ("What is {pos}?", "Which object is {pos}?"),
            _position_args,
            _at_answer,
            lambda sc, s: _at(sc, s).name,
        ),
        QuestionType(
            "q_count_shape",
            "comp",
            ("How many {shapes} are there in the image?",),
            _shape_count_args,
            _shape_count_answer,
            lambda sc, s: str(len(matching(sc, {"shape": s["shapes"][:-1]}))),
            key="first",
        ),
        QuestionType(
            "q_describe",
            "desc",
            (
                "Describe the image in detail.",
                "What can you see in the image?",
                "What objects are in the picture?",
                "Can you describe this picture?",
            ),
            _no_args,
            _describe_answer,
            lambda sc, s: str(len(sc.objects)),
            key="first",
        ),
        QuestionType(
            "q_total",
            "comp",
            ("How many objects are there in total?",),
            _no_args,
            _total_answer,
            lambda sc, s: str(len(sc.objects)),
        ),
        QuestionType(
            "q_color_count",
            "comp",
            ("How many {color} objects are there?",),
            _color_count_args,
            _color_count_answer,
            lambda sc, s: str(len(matching(sc, dict(s)))),
        ),
        QuestionType(
            "q_side",
            "comp",
            ("Is the {color} {shape} to the left or to the right of the {color2} {shape2}?",),
            lambda sc: _pairs(sc, lambda a, b: a.col != b.col),
            _side_answer,
            lambda sc, s: "left" if _obj(sc, s).col < _obj(sc, s, "2").col else "right",
        ),
        QuestionType(
            "q_vrel",
            "comp",
            ("Is the {color} {shape} above or below the {color2} {shape2}?",),
            lambda sc: _pairs(sc, lambda a, b: a.row != b.row),
            _vrel_answer,
            lambda sc, s: "above" if _obj(sc, s).row < _obj(sc, s, "2").row else "below",
        ),
        QuestionType(  # valid for any two objects: the answer, not the question, says which relation holds
            "q_relpos",
            "comp",
            ("Where is the {color} {shape} compared with the {color2} {shape2}?",),
            lambda sc: _pairs(sc, lambda a, b: True),
            _relpos_answer,
            _relpos_short,
        ),
        QuestionType(
            "q_bigger",
            "comp",
            ("Which is bigger, the {color} {shape} or the {color2} {shape2}?",),
            lambda sc: _pairs(sc, lambda a, b: a.size != b.size),
            _bigger_answer,
            lambda sc, s: next(o.name for o in (_obj(sc, s), _obj(sc, s, "2")) if o.size == "large"),
        ),
        QuestionType(
            "q_more",
            "comp",
            ("Are there more {shapes} than {shapes2}?",),
            _more_args,
            _more_answer,
            _more_short,
        ),
        QuestionType(
            "q_fewer",
            "comp",
            ("Are there fewer {shapes} than {shapes2}?",),
            _more_args,
            _more_answer,
            lambda sc, s: "yes" if _more_counts(sc, s)[0] < _more_counts(sc, s)[1] else "no",
        ),
        QuestionType(
            "q_smaller",
            "comp",
            ("Which is smaller, the {color} {shape} or the {color2} {shape2}?",),
            lambda sc: _pairs(sc, lambda a, b: a.size != b.size),
            _smaller_answer,
            lambda sc, s: next(o.name for o in (_obj(sc, s), _obj(sc, s, "2")) if o.size == "small"),
        ),
        QuestionType(
            "q_overlap",
            "comp",
            ("Does the {color} {shape} overlap the {color2} {shape2}?",),
            lambda sc: _pairs(sc, _neighbours),
            _overlap_answer,
            lambda sc, s: "yes" if _overlaps(sc, s) else "no",
        ),
        QuestionType(
            "q_size_count",
            "comp",
            ("How many {size} objects are there?",),
            _size_count_args,
            _size_count_answer,
            lambda sc, s: str(len(matching(sc, dict(s)))),
        ),
        QuestionType(
            "q_row_count",
            "comp",
            ("How many objects are there in the {row} row?",),
            _row_args,
            _row_answer,
            lambda sc, s: str(len(_row_objects(sc, s["row"]))),
        ),
    )
}


@dataclass(frozen=True)
class ParsedQuestion:
    """A question read back: its type and slots, and whether it is a valid question about the scene.

    Attributes:
        qtype: The question type.
        slots: Slot values (lower case).
        valid: The objects it names exist (once) and what it asks is decidable in the scene.
    """

    qtype: QuestionType
    slots: Mapping[str, str]
    valid: bool

    def answer(self, scene: Scene) -> list[str]:
        """The ground-truth answer sentences (only for a valid question)."""
        return self.qtype.answer(scene, self.slots)


def parse_question(question: str, scene: Scene) -> ParsedQuestion | None:
    """Read a generated question; None if it is no question of the language."""
    question = " ".join(question.split())
    for qtype in QUESTION_TYPES.values():
        for text in qtype.texts:
            match = template_regex(text).fullmatch(question)
            if match:
                slots = {k: v.lower() for k, v in match.groupdict().items()}
                return ParsedQuestion(qtype, slots, slots in qtype.arguments(scene))
    return None


def sample_question(scene: Scene, task: str, rng: random.Random) -> tuple[str, ParsedQuestion]:
    """A random valid question of `task` about the scene (type, arguments and wording drawn from `rng`)."""
    candidates = [(q, a) for q in QUESTION_TYPES.values() if q.task == task for a in [q.arguments(scene)] if a]
    qtype, options = rng.choice(candidates)
    slots = rng.choice(options)
    text = rng.choice(qtype.texts).format(**slots)
    return text, ParsedQuestion(qtype, slots, True)


def _reading_key(scene: Scene, slots: Mapping[str, str]) -> tuple[int, ...]:
    """The cells of the objects a question names, or of the first object with the attribute it asks about."""
    key = []
    for suffix in ("", "2"):
        if "pos" + suffix in slots:
            key.append(_at(scene, {"pos": slots["pos" + suffix]}).cell)
        elif "shape" + suffix in slots and "color" + suffix in slots:
            key.append(_obj(scene, slots, suffix).cell)
        elif "shapes" + suffix in slots:
            key.append(min(o.cell for o in matching(scene, {"shape": slots["shapes" + suffix][:-1]})))
    for attr in ("color", "size"):
        if attr in slots and "shape" not in slots:
            key.append(min(o.cell for o in matching(scene, {attr: slots[attr]})))
    if "row" in slots:
        key.append(min(o.cell for o in _row_objects(scene, slots["row"])))
    return tuple(key)


# The question kinds a scene "calls for", by its number of objects (1 to 9): the first kind that is valid in the
# scene, then the task's other kinds in `QUESTION_TYPES` order; the kind's objects are the first ones in reading
# order. Reasoning asks about one attribute of the first object (its shape, colour, size or row: valid whatever
# count the model believes it sees) or, as `FIRST_PAIR`, where the first object is compared with the second
# (`q_relpos`: valid for any two objects; the answer places both and concludes left / right in one row, above /
# below otherwise). Earlier plans made the writer judge the pair before asking: any two objects that differ in
# column, row, size or shape (25 of 300 and 18 of 60 held-out questions named pairs that do not qualify); left /
# right or above / below about the first two objects (7 % invalid on 300 held-out scenes, 16 of 21 of them "above
# or below" about two objects of one row); above / below about the first and the last object in scenes of four or
# more (5 to 9 % invalid, 16 to 24 % of the pair questions: the writer could not name the last object, and the
# counting kinds it asked instead in small scenes were answered worse).
FIRST_PAIR = "first_pair"
QUESTION_PLANS: dict[str, tuple[str, ...]] = {
    "conv": ("q_color", "q_shape", "q_where", "q_size", "q_what_at", "q_color", "q_shape", "q_where", "q_size"),
    "comp": (
        "q_count_shape",
        FIRST_PAIR,
        "q_color_count",
        FIRST_PAIR,
        "q_size_count",
        "q_row_count",
        FIRST_PAIR,
        "q_count_shape",
        FIRST_PAIR,
    ),
}


def planned_question(scene: Scene, task: str, rng: random.Random) -> tuple[str, ParsedQuestion]:
    """The question a scene "calls for": its kind and objects follow from what the image shows.

    `sample_question` draws uniformly, so a model that learns its data asks the most likely question of the
    marginal under beam search, whatever the image (the reasoning question was "How many objects are there in
    total?" for 29 of 30 scenes). Here the number of objects picks the kind (`QUESTION_PLANS`) and the kind's
    objects are the first ones in reading order: the count and the reading order are what a model of this world
    sees best (every description starts with the count and lists the objects in that order). The first rule (the
    first object's colour and shape indexed the kinds) was not learnt: 0 of 16 held-out reasoning questions
    followed it. Only the wording is drawn from `rng`.
    """
    types = [q for q in QUESTION_TYPES.values() if q.task == task]
    plan = QUESTION_PLANS.get(task, ())
    name = plan[(len(scene.objects) - 1) % len(plan)] if plan else None
    preferred = [QUESTION_TYPES["q_relpos" if name == FIRST_PAIR else name]] if name is not None else []
    for qtype in [*preferred, *(q for q in types if q not in preferred)]:
        options = qtype.arguments(scene)
        if options:
            slots = min(options, key=lambda s: _reading_key(scene, s))
            return rng.choice(qtype.texts).format(**slots), ParsedQuestion(qtype, slots, True)
    raise ValueError(f"no {task!r} question fits scene {scene.image!r}")


def question_starts(task: str, words: int = 2) -> dict[str, float]:
    """The first `words` words of the task's question kinds (canonical wordings), each weighted by how many kinds
    start that way: `run.question_starts` for generating this world's questions (e.g. comp: "How many" 4, ...)."""
    starts: dict[str, float] = {}
    for qtype in QUESTION_TYPES.values():
        if qtype.task == task:
            start = " ".join(qtype.texts[0].split()[:words])
            starts[start] = starts.get(start, 0.0) + 1.0
    return starts
