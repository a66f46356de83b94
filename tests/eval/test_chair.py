"""CHAIR against the authors' implementation (goldens in ../shared/fixtures/chair_reference), plus the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vigc.eval.chair import SYNONYMS, CocoObjects, Vocabulary, chair, main, read_synonyms
from vigc.eval.chair_text import singularize, split_sentences, word_tokenize

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "chair_reference"


@pytest.fixture(scope="module")
def reference() -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"CHAIR reference fixture not found at {FIXTURE}")
    return FIXTURE


@pytest.fixture(scope="module")
def goldens(reference: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((reference / "goldens.json").read_text())
    return result


@pytest.fixture(scope="module")
def vocabulary(reference: Path) -> Vocabulary:
    return read_synonyms(reference / "synonyms.txt")


@pytest.fixture(scope="module")
def objects(reference: Path, vocabulary: Vocabulary) -> CocoObjects:
    return CocoObjects.from_files(reference / "instances.json", vocabulary, reference / "captions.json")


def _pairs(items: list[Any]) -> list[tuple[str, str]]:
    return [(word, category) for word, category in items]


def test_every_caption_equals_the_reference(
    reference: Path, goldens: dict[str, Any], vocabulary: Vocabulary, objects: CocoObjects
) -> None:
    generated = json.loads((reference / "generated.json").read_text())
    result = chair(generated, objects, vocabulary, "caption")
    assert len(result.captions) == len(goldens["sentences"]) == 128 and result.skipped == 0
    for ours, gold in zip(result.captions, goldens["sentences"], strict=True):
        mine = ours.as_dict()
        assert ours.objects.mentioned == _pairs(gold["mentioned"]), gold["index"]
        assert mine["mscoco_generated_words"] == gold["mscoco_generated_words"], gold["index"]
        assert ours.hallucinated == _pairs(gold["mscoco_hallucinated_words"]), gold["index"]
        assert (mine["CHAIRs"], mine["CHAIRi"]) == (gold["CHAIRs"], gold["CHAIRi"]), gold["index"]
        assert mine["hallucination_idxs"] == gold["hallucination_idxs"], gold["index"]
        assert mine["words"] == gold["words"], gold["index"]
        assert mine["mention_idxs"] == gold["mention_idxs"], gold["index"]
        assert mine["mscoco_gt_words"] == gold["mscoco_gt_words"], gold["index"]
    counts = goldens["counts"]
    assert (len(result.captions), result.hallucinated_captions) == (counts["captions"], counts["hallucinated_captions"])
    assert (result.mentions, result.hallucinated) == (counts["object_mentions"], counts["hallucinated_mentions"])
    assert result.chair_s == goldens["overall"]["CHAIRs"] == 43 / 128
    assert result.chair_i == goldens["overall"]["CHAIRi"] == 57 / 323


def test_ground_truth_equals_the_reference(goldens: dict[str, Any], objects: CocoObjects) -> None:
    for image_id, truth in goldens["gt_objects"].items():
        assert objects.by_id[int(image_id)] == set(truth["all"]), image_id


def test_the_references_quirks() -> None:
    words = "buses bus glass tennis ties collies cookies species scissors four knives mice geese oxen calves people"
    expected = "bus bu glas tenni ty collies cookies species scissors fmy knife mouse goose ox calf person"
    assert [singularize(w) for w in words.split()] == expected.split()
    assert singularize("'") == "'s" and singularize("''") == "'s's" and singularize("mothers-in-law") == "mother-in-law"
    assert word_tokenize('is that a "stop sign"? yes; and a car, too!') == (
        "is that a `` stop sign '' ? yes ; and a car , too !".split()
    )
    # Outputs of NLTK 3.2.5's word_tokenize with Punkt's English model (Punkt: "3." and the initial "b." before a
    # lower-case word, "mr." and "..." are no sentence ends; "3." before "!''" is; closing quotes move back).
    expected = {
        "there are 3. the dog": "there are 3. the dog",
        "a b. the dog. 3. !'' c": "a b. the dog . 3 . ! '' c",
        'the dog. """ the cat': "the dog. `` '' '' the cat",
        "the dog's bowl. mr. smith can't see it.": "the dog 's bowl . mr. smith ca n't see it .",
        "the process's. next, a dog.) ok... so": "the process 's . next , a dog . ) ok ... so",
        "    \"a cat,\" she said 'hi' -- 2.5 dogs; (e.g. the tv.)": (
            "`` a cat , '' she said 'hi ' -- 2.5 dogs ; ( e.g . the tv . )"
        ),
    }
    for text, tokens in expected.items():
        assert word_tokenize(text) == tokens.split(), text
    assert split_sentences("a cat. mr. smith waits... then leaves! ok.") == [
        "a cat.",
        "mr. smith waits... then leaves!",
        "ok.",
    ]


def test_merges_and_qualifiers(vocabulary: Vocabulary) -> None:
    found = vocabulary.objects("A baby elephant, a passenger jet, a toilet seat and a seat. A motor bike and a bow.")
    assert found.mentioned == [("elephant", "elephant"), ("jet", "airplane"), ("toilet", "toilet"), ("bow", "tie")]
    assert vocabulary.objects("A baby goat.").mentioned == [("baby", "person"), ("goat", "sheep")]
    assert vocabulary.objects("A seat.").mentioned == [("seat", "chair")]


def _fixture_args(reference: Path) -> list[str]:
    return [
        "--instances",
        str(reference / "instances.json"),
        "--coco-captions",
        str(reference / "captions.json"),
        "--synonyms",
        str(reference / "synonyms.txt"),
    ]


def test_cli_captions_json(reference: Path, goldens: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--captions", str(reference / "generated.json"), *_fixture_args(reference), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["CHAIR_s"] == 0.3359375 and out["overall"]["CHAIR_i"] == 0.17647058823529413
    assert [s["mscoco_hallucinated_words"] for s in out["sentences"]] == [
        s["mscoco_hallucinated_words"] for s in goldens["sentences"]
    ]


def test_packaged_synonyms_are_the_references(reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert SYNONYMS.read_bytes() == (reference / "synonyms.txt").read_bytes()
    args = ["--captions", str(reference / "generated.json"), "--instances", str(reference / "instances.json")]
    assert main([*args, "--coco-captions", str(reference / "captions.json")]) == 0
    assert capsys.readouterr().out.strip() == "128 captions (0 skipped): CHAIR_s 33.6, CHAIR_i 17.6 (57/323 mentions)"


def test_cli_records_per_task(reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    records = [  # image 900001: couch, dog, remote, tv
        {
            "task": "desc",
            "image": "x/synthetic_000000900001.jpg",
            "original_answer": "A cat on a sofa.",
            "answer": "A dog.",
        },
        {"task": "desc", "image_id": 900001, "original_answer": "A dog and a tv.", "answer": "A dog and a tv."},
        {"task": "conv", "image_id": 900001, "original_answer": "A bus and a car.", "answer": "A remote."},
        {"task": "conv", "image_id": 12345, "original_answer": "A dog.", "answer": "A dog."},
    ]
    (run / "merged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["--records", str(run), *_fixture_args(reference)]) == 0
    out = capsys.readouterr().out
    assert "| conv | 1 | 100.0 | 100.0 | 0.0 | 0.0 | 1 | 1 | 1 |" in out  # "bus" → "bu": only the car counts
    assert "| desc | 2 | 50.0 | 25.0 | 0.0 | 0.0 | 4 | 3 | 0 |" in out
    assert "| all | 3 | 66.7 | 40.0 | 0.0 | 0.0 | 5 | 4 | 1 |" in out
    assert main(["--records", str(run), *_fixture_args(reference), "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert [(g["task"], g["field"], g["hallucinated_mentions"]) for g in groups] == [
        ("conv", "original_answer", 1),
        ("conv", "answer", 0),
        ("desc", "original_answer", 1),
        ("desc", "answer", 0),
        ("all", "original_answer", 2),
        ("all", "answer", 0),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--synonyms": "missing.txt"}, "cannot read"),
        ({"--captions": "bad.json"}, "is not valid JSON"),
        ({"--captions": "wrong.json"}, "expected a JSON list"),
        ({"--captions": "other.json"}, "no caption of"),
        ({"--instances": "wrong.json"}, "not a COCO instances file"),
        ({"--records": "nowhere"}, "does not exist"),
    ],
)
def test_cli_bad_inputs_are_one_line_errors(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text(json.dumps({"images": []}))
    (tmp_path / "other.json").write_text(json.dumps([{"image_id": 1, "caption": "A dog."}]))
    given = _fixture_args(reference)
    args = {"--captions": str(reference / "generated.json"), **dict(zip(given[::2], given[1::2], strict=True))}
    for key, name in change.items():
        if key == "--records":
            del args["--captions"]
        args[key] = str(tmp_path / name)
    assert main([item for pair in args.items() for item in pair]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
