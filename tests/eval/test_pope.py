"""POPE: seeded question sampling, metrics on hand-made answers, and the model loop on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from vigc.data.prompts import GA_PROMPT
from vigc.eval.pope import (
    QUESTION,
    CocoImages,
    Probe,
    answer_probes,
    is_yes,
    main,
    pope_scores,
    read_coco_instances,
    sample_probes,
    score_probes,
)
from vigc.models.decoding import DecodingSettings

SAMPLE_IMAGES = Path(__file__).resolve().parents[2] / "vigc" / "assets" / "sample_images"
CONFIG = Path(__file__).resolve().parents[2] / "vigc" / "projects" / "default" / "generate_qa.yaml"

# Image frequency: car, cat, person 3; bus, chair, dog 2; tv 0. Image 9 has no object.
OBJECTS = {
    1: {"cat", "dog"},
    2: {"dog", "person"},
    3: {"person", "car"},
    4: {"person"},
    5: {"bus", "car"},
    6: {"bus", "car"},
    7: {"cat", "chair"},
    8: {"cat", "chair"},
    9: set(),
}
CATEGORIES = ("bus", "car", "cat", "chair", "dog", "person", "tv")


def _coco() -> CocoImages:
    objects = {image_id: frozenset(names) for image_id, names in OBJECTS.items()}
    return CocoImages(objects, {i: f"{i}.png" for i in OBJECTS}, CATEGORIES)


def _of(probes: list[Probe], image_id: int, way: str, present: bool) -> list[str]:
    return [p.object for p in probes if p.image_id == image_id and p.way == way and p.present == present]


def test_popular_and_adversarial_negatives() -> None:
    probes = sample_probes(_coco(), per_image=2, seed=0)
    assert sorted({p.image_id for p in probes}) == [1, 2, 3, 4, 5, 6, 7, 8]  # image 9 has nothing to ask about
    assert _of(probes, 1, "random", True) == _of(probes, 1, "popular", True) == ["cat", "dog"]
    assert _of(probes, 1, "popular", False) == ["car", "person"]  # most frequent first, absent from the image
    assert _of(probes, 1, "adversarial", False) == ["chair", "person"]  # chair goes with cat twice, person with dog
    assert _of(probes, 4, "popular", True) == ["person"] and _of(probes, 4, "popular", False) == ["car"]
    for image_id, names in OBJECTS.items():
        for way in ("random", "popular", "adversarial"):
            negatives = _of(probes, image_id, way, False)
            assert len(negatives) == len(set(negatives)) == len(_of(probes, image_id, way, True))
            assert not set(negatives) & names


def test_sampling_is_seeded() -> None:
    first = sample_probes(_coco(), images=5, per_image=1, seed=3)
    assert first == sample_probes(_coco(), images=5, per_image=1, seed=3)
    assert len({p.image_id for p in first}) == 5
    others = [sample_probes(_coco(), images=5, per_image=1, seed=s) for s in range(4, 8)]
    assert any(other != first for other in others)
    only = sample_probes(_coco(), per_image=1, seed=3, ways=["random"])
    assert {p.way for p in only} == {"random"} and len(only) == 16


def test_answers_and_metrics() -> None:
    answers = ["Yes", "yes, there is", "No.", "no", "There is not", "yes", "I see a dog", "nothing else"]
    assert [is_yes(a) for a in answers] == [True, True, False, False, False, True, True, True]
    present = [True, True, True, False, False, False, False]
    scores = pope_scores(present, [is_yes(a) for a in answers[:7]])
    assert (scores.true_yes, scores.false_no, scores.true_no, scores.false_yes) == (2, 1, 2, 2)
    assert scores.accuracy == pytest.approx(4 / 7) and scores.precision == pytest.approx(2 / 4)
    assert scores.recall == pytest.approx(2 / 3) and scores.f1 == pytest.approx(4 / 7)
    assert scores.yes_ratio == pytest.approx(4 / 7)
    never = pope_scores([True, False], [False, False])
    assert never.f1 == 0.0 and never.precision != never.precision and never.yes_ratio == 0.0
    with pytest.raises(ValueError, match="2 labels but 1 answers"):
        pope_scores([True, False], [True])


def test_score_probes_reuses_shared_questions() -> None:
    probes = [Probe(1, "cat", True, "random"), Probe(1, "dog", False, "random"), Probe(1, "cat", True, "popular")]
    scores = score_probes(probes, {(1, "cat"): "Yes.", (1, "dog"): "Yes"})
    assert list(scores) == ["random", "popular"]
    assert (scores["random"].true_yes, scores["random"].false_yes, scores["popular"].accuracy) == (1, 1, 1.0)


def _write_images(folder: Path, count: int) -> dict[int, Path]:
    paths = {}
    for i in range(count):
        paths[i + 1] = folder / f"{i + 1}.png"
        Image.new("RGB", (40, 30), (60 * i % 255, 120, 200)).save(paths[i + 1])
    return paths


def test_answer_probes_on_the_tiny_fixture_model(parity_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = _write_images(tmp_path, 2)
    coco = CocoImages({1: frozenset({"cat", "dog"}), 2: frozenset({"dog"})}, {1: "1.png", 2: "2.png"}, CATEGORIES)
    probes = sample_probes(coco, per_image=2, seed=0)
    settings = DecodingSettings(max_new_tokens=4)
    answers = answer_probes(parity_model, paths, probes, settings=settings, batch_size=3)
    assert set(answers) == {(p.image_id, p.object) for p in probes}  # every question once, across batches
    assert all(isinstance(text, str) for text in answers.values())
    # The batched answer to a question equals asking it alone.
    from vigc.data.datasets import load_image
    from vigc.data.processors import EvalImageProcessor

    processor = EvalImageProcessor(int(parity_model.vision_model.config.image_size))
    with torch.no_grad():
        embeds = parity_model.encode_images(processor(load_image(paths[2])).unsqueeze(0))
        prompt = GA_PROMPT.format(q=QUESTION.format(object="dog"))
        alone = parity_model.generate(embeds, [prompt], settings).texts[0][0]
    assert answers[2, "dog"] == alone


def _instances(tmp_path: Path) -> Path:
    images = [{"id": i, "file_name": f"shapes_123_00000{i}.png"} for i in range(3)]
    categories = [{"id": k, "name": name} for k, name in enumerate(CATEGORIES, start=1)]
    annotations = [
        {"image_id": 0, "category_id": 1},
        {"image_id": 0, "category_id": 3},
        {"image_id": 1, "category_id": 3},
        {"image_id": 2, "category_id": 6},
    ]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_cli_with_the_default_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--instances", str(_instances(tmp_path)), "--images", str(SAMPLE_IMAGES), "--images-count", "2"]
    args += ["--per-image", "2", "--max-new-tokens", "3", "--json", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    scores = json.loads(capsys.readouterr().out)
    assert list(scores) == ["random", "popular", "adversarial"]
    lines = (tmp_path / "out" / "answers.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for way, s in scores.items():
        mine = [r for r in rows if r["way"] == way]
        assert s["total"] == len(mine) and s["true_yes"] + s["false_no"] == sum(r["present"] for r in mine)
        assert s["yes_ratio"] == pytest.approx(sum(r["yes"] for r in mine) / len(mine))
    assert read_coco_instances(tmp_path / "instances.json").objects[0] == {"bus", "cat"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--prompt", "Question: Short answer:"], "must contain {q}"),
        (["--images", "nowhere"], "is not a folder"),
        (["--instances", "missing.json"], "cannot read"),
        (["--images", "."], "drawn images are not in"),
        (["--per-image", "0"], "--per-image"),
        (["--options", "model.llm_model=x"], "--options needs a config file"),
        (["--model", str(CONFIG), "--options", "model.nonexistent_key=1"], "unknown key 'nonexistent_key'"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    given = {"--instances": str(_instances(tmp_path)), "--images": str(SAMPLE_IMAGES)}
    given.update(zip(change[::2], change[1::2], strict=True))
    args = [item for pair in given.items() for item in pair]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
