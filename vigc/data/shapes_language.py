"""The language of the synthetic scenes: sentence templates that both write answers and read them back.

Every answer sentence is one of `SENTENCES`, a template with slots (`{color}`, `{shape2}`, `{list}`, ...). The same
template renders a sentence and, compiled to a regular expression, parses one: `parse_sentence` turns a generated
sentence into its template name and slot values, `mentions` lists the objects it talks about (as attribute
dicts), and `sentence_is_true` checks it against a scene. Questions are built and read the same way in
`vigc.data.shapes_questions`. The vocabulary is small and regular (a few hundred words) so that a tiny model can
learn it; the answers depend on the pixels (colours, shapes, sizes, counts, positions).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vigc.data.shapes_scene import COLORS, POSITIONS, SHAPES, SIZES, Scene, ShapeObject

__all__ = [
    "NUMBERS",
    "ROWS",
    "SENTENCES",
    "Mention",
    "ParsedSentence",
    "count_phrase",
    "matching",
    "mentions",
    "number_word",
    "object_list",
    "parse_sentence",
    "plural",
    "render",
    "sentence_is_true",
    "split_sentences",
    "template_regex",
]

ROWS: tuple[str, ...] = ("top", "middle", "bottom")  # grid row 0, 1, 2
NUMBERS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
Mention = dict[str, str]  # attribute → value, e.g. {"color": "red", "shape": "circle", "size": "large"}

SENTENCES: dict[str, str] = {
    "shape_color": "The {shape} is {color}.",
    "color_shape": "The {color} object is a {shape}.",
    "at_color": "The object {pos} is {color}.",
    "at_shape": "The object {pos} is a {shape}.",
    "where": "The {color} {shape} is {pos}.",
    "size_of": "The {color} {shape} is {size}.",
    "count_shape_one": "There is one {shape} in the image.",
    "count_shape": "There are {num} {shapes} in the image.",
    "see": "I can see {list}.",
    "count_all_one": "There is one object in the image.",
    "count_all": "There are {num} objects in the image.",
    "obj_at": "{pos} there is a {size} {color} {shape}.",  # where first: the next object is read at its cell
    "overlap": "The {color} {shape} overlaps the {color2} {shape2}.",
    "overlap_not": "The {color} {shape} does not overlap the {color2} {shape2}.",
    "total_one": "So there is one object in total.",
    "total": "So there are {num} objects in total.",
    "color_count_one": "So there is one {color} object.",
    "color_count": "So there are {num} {color} objects.",
    "side": "So the {color} {shape} is to the {side} of the {color2} {shape2}.",
    "vrel": "So the {color} {shape} is {vrel} the {color2} {shape2}.",
    "bigger": "So the {color} {shape} is bigger than the {color2} {shape2}.",
    "smaller": "So the {color} {shape} is smaller than the {color2} {shape2}.",
    "size_count_one": "So there is one {size} object.",
    "size_count": "So there are {num} {size} objects.",
    "row_count_one": "So there is one object in the {row} row.",
    "row_count": "So there are {num} objects in the {row} row.",
    "count_pair": "I count {cnt} and {cnt2}.",
    "more": "So there are {cmp} {shapes} than {shapes2}.",
    "as_many": "So there are as many {shapes} as {shapes2}.",
}


def plural(shape: str) -> str:
    """ "circle" → "circles"."""
    return shape + "s"


def number_word(n: int) -> str:
    """2 → "two" (0 to 9)."""
    return NUMBERS[n]


def count_phrase(n: int, shape: str) -> str:
    """(1, "circle") → "one circle"; (2, "circle") → "two circles"."""
    return f"{number_word(n)} {shape if n == 1 else plural(shape)}"


def object_list(objects: list[ShapeObject]) -> str:
    """ "a small red circle, a large blue square and a small green triangle"."""
    items = [f"a {o.size} {o.color} {o.shape}" for o in objects]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def render(name: str, **slots: str) -> str:
    """The sentence of template `name` with its slots filled (first letter capitalised)."""
    text = SENTENCES[name].format(**slots)
    return text[:1].upper() + text[1:]


def _alternatives(words: tuple[str, ...] | list[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_PLURALS = _alternatives([plural(s) for s in SHAPES])
_ITEM = rf"a {_alternatives(SIZES)} {_alternatives(list(COLORS))} {_alternatives(SHAPES)}"
_ITEM_RE = re.compile(rf"a ({_alternatives(SIZES)}) ({_alternatives(list(COLORS))}) ({_alternatives(SHAPES)})")
_SLOT_PATTERNS: dict[str, str] = {
    "color": _alternatives(list(COLORS)),
    "shape": _alternatives(SHAPES),
    "shapes": _PLURALS,
    "size": _alternatives(SIZES),
    "pos": _alternatives(POSITIONS),
    "num": _alternatives(NUMBERS[2:]),
    "side": "(?:left|right)",
    "vrel": "(?:above|below)",
    "row": _alternatives(ROWS),
    "cmp": "(?:more|fewer)",
    "cnt": rf"(?:one {_alternatives(SHAPES)}|{_alternatives(NUMBERS[2:])} {_PLURALS})",
    "list": rf"{_ITEM}(?:(?:, | and ){_ITEM})*",
}
_SLOT_RE = re.compile(r"\{(\w+?)\}")


def _slot_type(slot: str) -> str:
    return slot.rstrip("0123456789")


@functools.cache
def template_regex(text: str) -> re.Pattern[str]:
    """The regular expression of a template: literal text, one named group per slot (case-insensitive)."""
    parts, last = [], 0
    for match in _SLOT_RE.finditer(text):
        parts.append(re.escape(text[last : match.start()]))
        slot = match.group(1)
        parts.append(f"(?P<{slot}>{_SLOT_PATTERNS[_slot_type(slot)]})")
        last = match.end()
    parts.append(re.escape(text[last:]))
    return re.compile("".join(parts), re.IGNORECASE)


@dataclass(frozen=True)
class ParsedSentence:
    """A sentence read back: its template and slot values (lower case)."""

    template: str
    slots: Mapping[str, str]


def split_sentences(text: str) -> list[str]:
    """Split an answer into sentences (after ".", "?" or "!" followed by whitespace)."""
    return [s.strip() for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s.strip()]


def parse_sentence(sentence: str) -> ParsedSentence | None:
    """The template and slots of a sentence, or None if it is not a sentence of the language."""
    sentence = " ".join(sentence.split())
    for name, text in SENTENCES.items():
        match = template_regex(text).fullmatch(sentence)
        if match:
            return ParsedSentence(name, {k: v.lower() for k, v in match.groupdict().items()})
    return None


def _ref(slots: Mapping[str, str], suffix: str = "") -> Mention:
    return {a: slots[a + suffix] for a in ("size", "color", "shape", "pos") if a + suffix in slots}


def _singular(shapes: str) -> str:
    return shapes[:-1]


def _parse_count(phrase: str) -> tuple[int, str]:
    word, noun = phrase.split(" ")
    return NUMBERS.index(word), noun if word == "one" else _singular(noun)


def mentions(parsed: ParsedSentence) -> list[Mention]:
    """The objects a sentence mentions, each as the attributes it states about it."""
    slots = parsed.slots
    if parsed.template == "see":
        return [{"size": m[0], "color": m[1], "shape": m[2]} for m in _ITEM_RE.findall(slots["list"].lower())]
    if parsed.template == "count_pair":
        return [{"shape": _parse_count(slots[k])[1]} for k in ("cnt", "cnt2")]
    if "shapes" in slots:
        return [{"shape": _singular(slots[k])} for k in ("shapes", "shapes2") if k in slots]
    found = [_ref(slots)] + ([_ref(slots, "2")] if "shape2" in slots else [])
    return [m for m in found if m]


def matching(scene: Scene, mention: Mapping[str, str]) -> list[ShapeObject]:
    """The scene's objects that have every attribute of `mention` (position as its phrase)."""
    attrs = {"size": "size", "color": "color", "shape": "shape", "pos": "position"}
    return [o for o in scene.objects if all(getattr(o, attrs[k]) == v for k, v in mention.items())]


def _count(scene: Scene, **attrs: str) -> int:
    return len(matching(scene, attrs))


def _one(scene: Scene, slots: Mapping[str, str], suffix: str = "") -> ShapeObject:
    return matching(scene, {"color": slots["color" + suffix], "shape": slots["shape" + suffix]})[0]


def _num(slots: Mapping[str, str]) -> int:
    return NUMBERS.index(slots["num"]) if "num" in slots else 1


def _compare(a: int, b: int, word: str) -> bool:
    return a > b if word == "more" else a < b


def _overlapping(scene: Scene, slots: Mapping[str, str]) -> bool:
    pair = tuple(sorted(scene.objects.index(_one(scene, slots, x)) for x in ("", "2")))
    return pair in scene.overlaps


def _in_row(scene: Scene, row: str) -> int:
    return sum(1 for o in scene.objects if o.row == ROWS.index(row))


_PREDICATES: dict[str, Callable[[Scene, Mapping[str, str]], bool]] = {
    "count_shape_one": lambda sc, s: _count(sc, shape=s["shape"]) == 1,
    "count_shape": lambda sc, s: _count(sc, shape=_singular(s["shapes"])) == _num(s),
    "count_all_one": lambda sc, s: len(sc.objects) == 1,
    "count_all": lambda sc, s: len(sc.objects) == _num(s),
    "total_one": lambda sc, s: len(sc.objects) == 1,
    "total": lambda sc, s: len(sc.objects) == _num(s),
    "color_count_one": lambda sc, s: _count(sc, color=s["color"]) == 1,
    "color_count": lambda sc, s: _count(sc, color=s["color"]) == _num(s),
    "overlap": lambda sc, s: _overlapping(sc, s),
    "overlap_not": lambda sc, s: not _overlapping(sc, s) and _one(sc, s) is not _one(sc, s, "2"),
    "side": lambda sc, s: (
        (_one(sc, s).col < _one(sc, s, "2").col) == (s["side"] == "left") and _one(sc, s).col != _one(sc, s, "2").col
    ),
    "vrel": lambda sc, s: (
        (_one(sc, s).row < _one(sc, s, "2").row) == (s["vrel"] == "above") and _one(sc, s).row != _one(sc, s, "2").row
    ),
    "bigger": lambda sc, s: _one(sc, s).size == "large" and _one(sc, s, "2").size == "small",
    "smaller": lambda sc, s: _one(sc, s).size == "small" and _one(sc, s, "2").size == "large",
    "size_count_one": lambda sc, s: _count(sc, size=s["size"]) == 1,
    "size_count": lambda sc, s: _count(sc, size=s["size"]) == _num(s),
    "row_count_one": lambda sc, s: _in_row(sc, s["row"]) == 1,
    "row_count": lambda sc, s: _in_row(sc, s["row"]) == _num(s),
    "count_pair": lambda sc, s: all(_count(sc, shape=sh) == n for n, sh in map(_parse_count, (s["cnt"], s["cnt2"]))),
    "more": lambda sc, s: _compare(
        _count(sc, shape=_singular(s["shapes"])), _count(sc, shape=_singular(s["shapes2"])), s["cmp"]
    ),
    "as_many": lambda sc, s: _count(sc, shape=_singular(s["shapes"])) == _count(sc, shape=_singular(s["shapes2"])),
}


def sentence_is_true(parsed: ParsedSentence, scene: Scene) -> bool:
    """Whether a parsed sentence holds in the scene: every mentioned object exists, and the relation holds."""
    if any(not matching(scene, m) for m in mentions(parsed)):
        return False
    predicate = _PREDICATES.get(parsed.template)
    return predicate is None or predicate(scene, parsed.slots)
