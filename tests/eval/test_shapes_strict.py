"""The strict scorer against answers perturbed by construction from the data layer's own true answers.

Over many seeded random scenes and every question type, each ground-truth answer (written by the templates of
`vigc.data.shapes_questions`) must be fully correct, and every perturbation of it must not be: a colour, shape,
size or position swapped; an object dropped, listed twice or added (one not in the scene, or one the listing does
not hold); a false count, comparison or relation. Perturbations re-render parsed sentences with the language's
templates, so every perturbed sentence is still a sentence of the language: what catches it is the check against
the scene, not the parser.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from vigc.data.shapes import make_scenes
from vigc.data.shapes_language import (
    NUMBERS,
    SENTENCES,
    ParsedSentence,
    count_phrase,
    mentions,
    object_list,
    parse_sentence,
    plural,
    render,
)
from vigc.data.shapes_questions import QUESTION_TYPES
from vigc.data.shapes_scene import COLORS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject
from vigc.eval.shapes_metrics import score_record

Answer = list[ParsedSentence]
Perturbation = Callable[[Answer, Scene, random.Random], "Answer | None"]

VOCABULARY: dict[str, list[str]] = {
    "color": list(COLORS),
    "shape": list(SHAPES),
    "shapes": [plural(s) for s in SHAPES],
    "size": list(SIZES),
    "pos": list(POSITIONS),
}
FLIPS = {"side": ("left", "right"), "vrel": ("above", "below"), "cmp": ("more", "fewer")}


def _text(parsed: ParsedSentence) -> str:
    return render(parsed.template, **parsed.slots)


def _with(parsed: ParsedSentence, **slots: str) -> ParsedSentence:
    return ParsedSentence(parsed.template, {**parsed.slots, **slots})


def _item(size: str, color: str, shape: str) -> ShapeObject:
    return ShapeObject(shape, color, size, 0, (0.0, 0.0), 0.0)


def _items(parsed: ParsedSentence) -> list[ShapeObject]:
    return [_item(m["size"], m["color"], m["shape"]) for m in mentions(parsed)]


def _with_items(parsed: ParsedSentence, items: list[ShapeObject]) -> ParsedSentence:
    return _with(parsed, list=object_list(items))


def _other(value: str, words: list[str], rng: random.Random) -> str:
    return rng.choice([w for w in words if w != value])


def _is_listing(parsed: ParsedSentence) -> bool:
    """A sentence that names objects one by one (not a relation between two, not a count of a kind)."""
    named = [m for m in mentions(parsed) if ("color" in m and "shape" in m) or "pos" in m]
    return bool(named) and not any(slot[-1].isdigit() for slot in parsed.slots)


def _swap(attribute: str) -> Perturbation:
    """Replace one value of `attribute` (a slot, or an item of an "I can see" list) with another."""

    def perturb(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
        sites = [(i, s) for i, p in enumerate(answer) for s in p.slots if s.rstrip("2") in (attribute, attribute + "s")]
        if attribute != "pos":  # list items have no position
            sites += [(i, "list") for i, p in enumerate(answer) if "list" in p.slots]
        if not sites:
            return None
        i, slot = rng.choice(sites)
        out = list(answer)
        if slot == "list":
            items = _items(answer[i])
            k = rng.randrange(len(items))
            values = {"size": items[k].size, "color": items[k].color, "shape": items[k].shape}
            values[attribute] = _other(values[attribute], VOCABULARY[attribute], rng)
            items[k] = _item(values["size"], values["color"], values["shape"])
            out[i] = _with_items(answer[i], items)
        else:
            words = VOCABULARY[slot.rstrip("2")]
            out[i] = _with(answer[i], **{slot: _other(answer[i].slots[slot], words, rng)})
        return out

    return perturb


def _false_count(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    sites = [
        i
        for i, p in enumerate(answer)
        if {"num", "cnt"} & set(p.slots) or p.template.removesuffix("_one") != p.template
    ]
    if not sites:
        return None
    i = rng.choice(sites)
    parsed, out = answer[i], list(answer)
    if "num" in parsed.slots:
        out[i] = _with(parsed, num=_other(parsed.slots["num"], list(NUMBERS[2:]), rng))
    elif "cnt" in parsed.slots:
        slot = rng.choice([s for s in parsed.slots if s.startswith("cnt")])
        word, noun = parsed.slots[slot].split(" ")
        shape = next(s for s in SHAPES if noun in (s, plural(s)))
        n = _other(word, list(NUMBERS[1:]), rng)
        out[i] = _with(parsed, **{slot: count_phrase(NUMBERS.index(n), shape)})
    else:  # "There is one ..." → "There are <n> ..."
        many = parsed.template.removesuffix("_one")
        slots = {k: v for k, v in parsed.slots.items()}
        if "shape" in slots and "{shapes}" in SENTENCES[many]:
            slots["shapes"] = plural(slots.pop("shape"))
        out[i] = ParsedSentence(many, {**slots, "num": rng.choice(NUMBERS[2:])})
    return out


def _false_comparison(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    for i, parsed in enumerate(answer):
        out = list(answer)
        if "cmp" in parsed.slots:
            out[i] = _with(parsed, cmp=_other(parsed.slots["cmp"], list(FLIPS["cmp"]), rng))
        elif parsed.template == "as_many":
            out[i] = ParsedSentence("more", {**parsed.slots, "cmp": rng.choice(FLIPS["cmp"])})
        elif parsed.template == "bigger":
            s = parsed.slots
            out[i] = _with(parsed, color=s["color2"], shape=s["shape2"], color2=s["color"], shape2=s["shape"])
        else:
            continue
        return out
    return None


def _false_relation(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    for i, parsed in enumerate(answer):
        out = list(answer)
        flip = next((slot for slot in ("side", "vrel") if slot in parsed.slots), None)
        if flip:
            out[i] = _with(parsed, **{flip: _other(parsed.slots[flip], list(FLIPS[flip]), rng)})
            return out
        if parsed.template == "overlap":
            name = f"{parsed.slots['color']} {parsed.slots['shape']}"
            first = next(k for k, o in enumerate(scene.objects) if o.name == name)
            apart = [
                o for k, o in enumerate(scene.objects) if k != first and tuple(sorted((first, k))) not in scene.overlaps
            ]
            if apart:
                other = rng.choice(apart)
                out[i] = _with(parsed, color2=other.color, shape2=other.shape)
                return out
    return None


def _listing_site(answer: Answer, rng: random.Random) -> int | None:
    sites = [i for i, p in enumerate(answer) if _is_listing(p)]
    return rng.choice(sites) if sites else None


def _drop(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    i = _listing_site(answer, rng)
    if i is None:
        return None
    out = list(answer)
    items = _items(answer[i]) if "list" in answer[i].slots else []
    if len(items) > 1:
        items.pop(rng.randrange(len(items)))
        out[i] = _with_items(answer[i], items)
    else:
        out.pop(i)
    return out


def _duplicate(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    i = _listing_site(answer, rng)
    if i is None:
        return None
    out = list(answer)
    if "list" in answer[i].slots:
        items = _items(answer[i])
        k = rng.randrange(len(items))
        out[i] = _with_items(answer[i], [*items[: k + 1], items[k], *items[k + 1 :]])
    else:
        out.insert(i + 1, answer[i])
    return out


def _listed_like(parsed: ParsedSentence, obj: ShapeObject) -> ParsedSentence:
    """The listing sentence of `parsed`'s kind about `obj` (its attributes as the scene has them)."""
    if "list" in parsed.slots:
        return _with_items(parsed, [*_items(parsed), _item(obj.size, obj.color, obj.shape)])
    attributes = {"color": obj.color, "shape": obj.shape, "size": obj.size, "pos": obj.position}
    return _with(parsed, **{slot: attributes[slot] for slot in parsed.slots if slot in attributes})


def _add_absent(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    i = _listing_site(answer, rng)
    present = {(o.color, o.shape) for o in scene.objects}
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    free = [p for p in POSITIONS if p not in {o.position for o in scene.objects}]
    if i is None or not absent or not free:
        return None
    color, shape = rng.choice(absent)
    ghost = ShapeObject(shape, color, rng.choice(SIZES), POSITIONS.index(rng.choice(free)), (0.0, 0.0), 0.0)
    out = list(answer)
    if "list" in answer[i].slots:
        out[i] = _listed_like(answer[i], ghost)
    else:
        out.insert(i + 1, _listed_like(answer[i], ghost))
    return out


def _names(parsed: ParsedSentence, scene: Scene) -> set[str]:
    """The scene objects a sentence names, by colour and shape or by position."""
    names = set()
    for m in mentions(parsed):
        if "color" in m and "shape" in m:
            names.add(f"{m['color']} {m['shape']}")
        elif "pos" in m:
            names.update(o.name for o in scene.objects if o.position == m["pos"])
    return names


def _add_foreign(answer: Answer, scene: Scene, rng: random.Random) -> Answer | None:
    """Add an object of the scene to a listing that does not hold it (a true sentence, but not asked for)."""
    i = _listing_site(answer, rng)
    if i is None:
        return None
    listed = set().union(*(_names(p, scene) for p in answer if p.template == answer[i].template))
    others = [o for o in scene.objects if o.name not in listed]
    if not others:
        return None
    out = list(answer)
    added = _listed_like(answer[i], rng.choice(others))
    if "list" in answer[i].slots:
        out[i] = added
    else:
        out.insert(i + 1, added)
    return out


PERTURBATIONS: dict[str, Perturbation] = {
    "swap color": _swap("color"),
    "swap shape": _swap("shape"),
    "swap size": _swap("size"),
    "swap position": _swap("pos"),
    "drop an object": _drop,
    "list an object twice": _duplicate,
    "add an absent object": _add_absent,
    "add an object the listing lacks": _add_foreign,
    "false count": _false_count,
    "false comparison": _false_comparison,
    "false relation": _false_relation,
}


def _cases(count: int, seed: int) -> list[tuple[Scene, str, str, list[str]]]:
    """(scene, task, question, true answer sentences): every question type, up to 3 argument sets per scene."""
    rng = random.Random(seed)
    cases = []
    for scene in make_scenes(count, seed):
        for qtype in QUESTION_TYPES.values():
            options = qtype.arguments(scene)
            for slots in rng.sample(options, min(3, len(options))):
                question = rng.choice(qtype.texts).format(**slots)
                cases.append((scene, qtype.task, question, qtype.answer(scene, slots)))
    return cases


def _fully_correct(scene: Scene, task: str, question: str, answer: str) -> bool:
    record = {"image": scene.image, "task": task, "question": question, "original_answer": answer, "answer": answer}
    return score_record(record, scene).fully_correct("answer")


@pytest.fixture(scope="module")
def cases() -> list[tuple[Scene, str, str, list[str]]]:
    return _cases(120, 4242)


def test_every_true_answer_is_fully_correct(cases: list[tuple[Scene, str, str, list[str]]]) -> None:
    assert {task for _, task, _, _ in cases} == {q.task for q in QUESTION_TYPES.values()}
    for scene, task, question, reference in cases:
        assert _fully_correct(scene, task, question, " ".join(reference)), (question, reference)


def test_every_perturbation_is_caught(cases: list[tuple[Scene, str, str, list[str]]]) -> None:
    rng = random.Random(7)
    applied: Counter[str] = Counter()
    for scene, task, question, reference in cases:
        parsed = [parse_sentence(s) for s in reference]
        assert all(p is not None for p in parsed), reference
        answer: Answer = [p for p in parsed if p is not None]
        for name, perturb in PERTURBATIONS.items():
            perturbed = perturb(answer, scene, rng)
            if perturbed is None:
                continue
            texts = [_text(p) for p in perturbed]
            assert all(parse_sentence(t) is not None for t in texts), (name, texts)  # still the language
            assert texts != reference, name
            assert not _fully_correct(scene, task, question, " ".join(texts)), (name, question, reference, texts)
            applied[name] += 1
    assert set(applied) == set(PERTURBATIONS) and min(applied.values()) >= 30, applied
