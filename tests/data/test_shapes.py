"""Synthetic scenes: determinism, ground truth, rendering, the answer language and the annotation files."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from vigc.data.annotations import read_llava, read_okvqa
from vigc.data.shapes import main, make_scenes, qa_records, read_scenes, short_answers
from vigc.data.shapes_language import (
    SENTENCES,
    mentions,
    parse_sentence,
    render,
    sentence_is_true,
    split_sentences,
)
from vigc.data.shapes_questions import FIRST_PAIR, QUESTION_PLANS, QUESTION_TYPES, parse_question, planned_question
from vigc.data.shapes_scene import COLORS, MAX_OBJECTS, POSITIONS, Scene, ShapeObject, render_scene


def _object(shape: str, color: str, size: str, cell: int) -> ShapeObject:
    cell_size = 224 / 3
    center = ((cell % 3 + 0.5) * cell_size, (cell // 3 + 0.5) * cell_size)
    return ShapeObject(shape, color, size, cell, center, (0.34 if size == "large" else 0.17) * cell_size)


@pytest.fixture
def scene() -> Scene:
    """red circle (large, top left), blue square (small, center), green circle (large, bottom left)."""
    objects = (
        _object("circle", "red", "large", 0),
        _object("square", "blue", "small", 4),
        _object("circle", "green", "large", 6),
    )
    return Scene("s.png", objects, (220, 220, 220), ())


def test_scenes_are_deterministic_and_prefix_stable() -> None:
    assert make_scenes(30, 7) == make_scenes(30, 7)
    assert make_scenes(40, 7)[:30] == make_scenes(30, 7)
    assert make_scenes(5, 7) != make_scenes(5, 8)


def test_scene_ground_truth_is_consistent() -> None:
    scenes = make_scenes(300, 3)
    assert {len(s.objects) for s in scenes} == set(range(1, MAX_OBJECTS + 1))
    assert any(s.overlaps for s in scenes)
    for s in scenes:
        assert len({o.cell for o in s.objects}) == len(s.objects)
        assert len({(o.color, o.shape) for o in s.objects}) == len(s.objects)
        for o in s.objects:  # the centre lies in the object's grid cell, so its position word is right
            x, y = o.center
            assert int(x // (224 / 3)) == o.col and int(y // (224 / 3)) == o.row
        assert Scene.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_render_draws_each_object_in_its_colour() -> None:
    for s in make_scenes(20, 11):
        image = render_scene(s)
        assert image.size == (224, 224)
        top = s.objects[-1]  # drawn last, never covered
        pixel = image.getpixel((int(top.center[0]), int(top.center[1] + top.half_extent * 0.4)))
        assert max(abs(a - b) for a, b in zip(pixel, COLORS[top.color], strict=True)) < 10


def test_every_ground_truth_answer_reads_back_true() -> None:
    scenes = make_scenes(150, 5)
    by_image = {s.image: s for s in scenes}
    records = qa_records(scenes, 5)
    seen_types = set()
    for stem in ("llava_conv", "llava_desc", "llava_comp"):
        for record in records[stem]:
            s = by_image[record["image"]]
            question = parse_question(record["question"], s)
            assert question is not None and question.valid, record
            seen_types.add(question.qtype.name)
            sentences = split_sentences(record["answer"][0])
            assert sentences == question.answer(s)
            for sentence in sentences:
                parsed = parse_sentence(sentence)
                assert parsed is not None and sentence_is_true(parsed, s), sentence
    assert seen_types == set(QUESTION_TYPES)
    assert max(len(split_sentences(r["answer"][0])) for r in records["llava_desc"]) >= 4


@pytest.mark.parametrize(
    ("sentence", "true", "template"),
    [
        ("The red circle is in the top left corner.", True, "where"),
        ("The red circle is in the center.", False, "where"),
        ("The circle is red.", True, "shape_color"),
        ("The triangle is red.", False, "shape_color"),
        ("There are two circles in the image.", True, "count_shape"),
        ("There is one circle in the image.", False, "count_shape_one"),
        ("I can see a large red circle and a small blue square.", True, "see"),
        ("I can see a large red circle and a large blue square.", False, "see"),
        ("So the red circle is above the blue square.", True, "vrel"),
        ("So the red circle is to the right of the green circle.", False, "side"),
        ("So the green circle is bigger than the blue square.", True, "bigger"),
        ("I count two circles and one square.", True, "count_pair"),
        ("So there are more circles than squares.", True, "more"),
        ("So there are as many circles as squares.", False, "as_many"),
        ("So there are three objects in total.", True, "total"),
        ("So there is one blue object.", True, "color_count_one"),
        ("So the blue square is smaller than the red circle.", True, "smaller"),
        ("So the red circle is smaller than the blue square.", False, "smaller"),
        ("So there are two large objects.", True, "size_count"),
        ("So there is one small object.", True, "size_count_one"),
        ("So there are three large objects.", False, "size_count"),
        ("So there is one object in the top row.", True, "row_count_one"),
        ("So there are two objects in the middle row.", False, "row_count"),
        ("The red circle does not overlap the blue square.", True, "overlap_not"),
        ("The red circle overlaps the blue square.", False, "overlap"),
        ("The red circle does not overlap the purple square.", False, "overlap_not"),
    ],
)
def test_sentences_are_checked_against_the_scene(scene: Scene, sentence: str, true: bool, template: str) -> None:
    parsed = parse_sentence(sentence)
    assert parsed is not None and parsed.template == template
    assert sentence_is_true(parsed, scene) is true


def test_mentions_carry_the_stated_attributes() -> None:
    parsed = parse_sentence("I can see a small red circle and a large blue square.")
    assert parsed is not None
    assert mentions(parsed) == [
        {"size": "small", "color": "red", "shape": "circle"},
        {"size": "large", "color": "blue", "shape": "square"},
    ]
    count = parse_sentence("There are two triangles in the image.")
    assert count is not None and mentions(count) == [{"shape": "triangle"}]
    assert parse_sentence("The sky is blue.") is None


def test_every_template_renders_and_parses_back() -> None:
    slots = {
        "color": "red", "color2": "blue", "shape": "circle", "shape2": "square", "shapes": "circles",
        "shapes2": "squares", "size": "small", "pos": POSITIONS[4], "num": "two", "side": "left", "vrel": "above",
        "cmp": "more", "cnt": "one circle", "cnt2": "two squares", "list": "a small red circle", "row": "middle",
    }  # fmt: skip
    for name in SENTENCES:
        parsed = parse_sentence(render(name, **slots))
        assert parsed is not None and parsed.template == name


def test_question_validity_depends_on_the_scene(scene: Scene) -> None:
    square = next(o for o in scene.objects if o.shape == "square")
    asked = parse_question(f"What color is the object {square.position}?", scene)
    assert asked is not None and asked.valid and asked.answer(scene) == [f"The object {square.position} is blue."]
    empty = next(p for p in POSITIONS if p not in {o.position for o in scene.objects})
    nothing_there = parse_question(f"What shape is the object {empty}?", scene)
    assert nothing_there is not None and not nothing_there.valid
    absent = parse_question("Where is the purple triangle?", scene)
    assert absent is not None and not absent.valid
    same_column = parse_question("Is the red circle to the left or to the right of the green circle?", scene)
    assert same_column is not None and not same_column.valid
    assert parse_question("What is the meaning of this?", scene) is None
    row = parse_question("How many objects are there in the bottom row?", scene)
    assert row is not None and row.valid
    assert row.answer(scene) == [
        "In the bottom left corner there is a large green circle.",
        "So there is one object in the bottom row.",
    ]
    middle = parse_question("How many objects are there in the middle row?", scene)
    assert (
        middle is not None and middle.valid and middle.answer(scene)[-1] == "So there is one object in the middle row."
    )
    far = parse_question("Does the red circle overlap the blue square?", scene)
    assert far is not None and not far.valid  # only neighbouring cells are asked about
    what = parse_question("What is in the center?", scene)
    assert what is not None and what.valid and what.answer(scene) == ["In the center there is a small blue square."]


def test_planned_questions_follow_the_image_and_vary() -> None:
    """The planned question depends on the scene alone (not the generator), is valid, its kind follows the object
    count, and it varies over scenes."""
    scenes = make_scenes(100, 3)
    kinds: Counter[str] = Counter()
    for task in ("conv", "comp"):
        plan = QUESTION_PLANS[task]
        for s in scenes:
            text, parsed = planned_question(s, task, random.Random(0))
            again, _ = planned_question(s, task, random.Random(1))
            reread = parse_question(text, s)
            assert reread is not None and reread.valid and reread.qtype is parsed.qtype
            assert parse_question(again, s).qtype is parsed.qtype  # type: ignore[union-attr]
            name = plan[len(s.objects) - 1]
            if name == FIRST_PAIR:  # where the first object is against the second, in reading order
                first, second = sorted(s.objects, key=lambda o: o.cell)[:2]
                assert parsed.qtype.name == "q_relpos"
                assert (parsed.slots["color"], parsed.slots["shape"]) == (first.color, first.shape)
                assert (parsed.slots["color2"], parsed.slots["shape2"]) == (second.color, second.shape)
                relation = parsed.answer(s)[-1]
                assert ("left" in relation or "right" in relation) == (first.row == second.row)
            else:
                assert parsed.qtype.name == name  # single-object kinds fit every scene
            kinds[parsed.qtype.name] += 1
    assert len([k for k in kinds if QUESTION_TYPES[k].task == "comp"]) == 5  # q_relpos and four counts
    assert len([k for k in kinds if QUESTION_TYPES[k].task == "conv"]) == 5
    assert max(kinds.values()) <= 50  # q_relpos: four of the nine object counts


def test_planned_questions_have_their_own_files() -> None:
    """The VIG samples' files hold exactly the first (planned) question of each scene; the full files hold more."""
    scenes = make_scenes(12, 5)
    records = qa_records(scenes, seed=5)
    for task in ("conv", "comp"):
        planned = records[f"llava_{task}_planned"]
        assert [r["image"] for r in planned] == [s.image for s in scenes]
        for scene, record in zip(scenes, planned, strict=True):
            text, _ = planned_question(scene, task, random.Random(0))
            assert parse_question(record["question"], scene).qtype is parse_question(text, scene).qtype  # type: ignore[union-attr]
            assert record in records[f"llava_{task}"]
        assert len(records[f"llava_{task}"]) > len(planned)
    assert "llava_desc_planned" not in records


def test_short_answers_are_ten() -> None:
    import random

    rng = random.Random(0)
    assert short_answers("red", rng) == ["red"] * 10
    counts = short_answers("2", rng)
    assert len(counts) == 10 and set(counts) == {"2", "two"}


def test_cli_writes_the_original_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--count", "6", "--seed", "3"]) == 0
    assert "6 scenes" in capsys.readouterr().out
    assert len(list((tmp_path / "images").glob("*.png"))) == 6
    scenes = read_scenes(tmp_path)
    assert len(scenes) == 6
    for stem, subset in (("conv", "conversation"), ("desc", "detail"), ("comp", "complex")):
        records = read_llava(tmp_path / f"llava_{stem}.json")
        assert records and all(r.image in scenes and len(r.answers) == 1 for r in records)
        assert all(r.subset is not None and r.subset.startswith(subset) for r in records)
    okvqa = read_okvqa(tmp_path / "okvqa.json")
    assert okvqa and all(len(r.answers) == 10 for r in okvqa)
    inputs = json.loads((tmp_path / "images.json").read_text())
    assert [r["image_id"] for r in inputs] == list(range(6))
