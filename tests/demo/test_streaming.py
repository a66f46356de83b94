"""Steps as they are made (the VIC step callback and the demo's progress), change marks, the model's view of the
image, which models the demo serves, and which settings apply."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vigc.data.processors import resize_bicubic
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.demo.diff import compare_words
from vigc.demo.display import format_result
from vigc.demo.engine import DemoResult, model_view, run_generation
from vigc.demo.models import DEFAULT_CFG_PATH, DemoModel, NamedModel, choose_models, load_demo_model
from vigc.demo.settings import DemoSettings
from vigc.demo.uploads import load_upload
from vigc.generation.vic import QAResult, vig_vic

FAST = DemoSettings(max_length=30, num_beams=1)


@pytest.fixture(scope="module")
def demo_model(demo_config: Path) -> DemoModel:
    return load_demo_model(demo_config, "cpu")


@pytest.fixture(scope="module")
def image(example_image: Path) -> Image.Image:
    return load_upload(example_image)


# ---- the VIC step callback -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["default", "compat"])
def test_vig_vic_reports_vig_then_every_step(demo_model: DemoModel, image: Image.Image, mode: str) -> None:
    settings = replace(FAST, vic_mode=mode, steps=3).vic_settings()
    pixels = demo_model.processor(image)[None]
    seen: list[QAResult] = []
    with torch.no_grad():
        reported = vig_vic(demo_model.model, pixels, [GENERATION_INSTRUCTIONS["conv"]], settings, on_step=seen.append)
        silent = vig_vic(demo_model.model, pixels, [GENERATION_INSTRUCTIONS["conv"]], settings)
    assert reported == silent  # reporting changes nothing
    final = reported[0]
    assert all(result is final for result in seen)
    assert len(seen) == 1 + len(final.step_outputs)  # VIG, then one call per VIC step


def test_steps_are_reported_as_they_are_made(demo_model: DemoModel, image: Image.Image) -> None:
    snapshots: list[tuple[bool, str | None, list[str], str]] = []

    def progress(result: DemoResult) -> None:
        snapshots.append((result.done, result.question, [s.kept for s in result.steps], format_result(result)))

    settings = replace(FAST, vic_mode="compat", steps=3)
    result = run_generation(demo_model, image, settings, progress)
    assert result.done and len(snapshots) == 1 + 3 and not any(done for done, *_ in snapshots)
    assert snapshots[0][1] == result.question and snapshots[0][2] == []  # the question comes first
    assert [len(kept) for _, _, kept, _ in snapshots] == [0, 1, 2, 3]
    assert snapshots[-1][2] == [s.kept for s in result.steps]
    assert "VIC step 1 of 3" in snapshots[0][3] and "VIC step 2 of 3" in snapshots[1][3]
    assert "(so far)" in snapshots[1][3] and "total " not in snapshots[1][3]
    plain = run_generation(demo_model, image, settings)
    assert (plain.question, plain.answer) == (result.question, result.answer)


def test_knowledge_questions_report_the_question_first(demo_model: DemoModel, image: Image.Image) -> None:
    seen: list[DemoResult] = []
    # The embedded model never trained on the gq instruction; with this image and the start word seed 1 draws it
    # still writes a question ("What objects are in the picture?"), so the answer pass runs and its beams come after
    # the question.
    result = run_generation(demo_model, image, replace(FAST, task="okvqa", seed=1), seen.append)
    assert result.question and [r.question for r in seen] == [result.question]
    assert seen[0].beams == [] and result.beams


# ---- change marks --------------------------------------------------------------------------------------------
def test_word_changes_mark_added_removed_and_replaced_words() -> None:
    changes = compare_words("A red circle is <b>. It is big.", "A blue circle is <b>. It is big. Two squares.")
    assert (changes.added, changes.removed, changes.replaced) == (2, 0, 1)
    assert '<span class="vigc-replaced" title="replaced by VIC"><del>red</del> <ins>blue</ins></span>' in changes.html
    assert '<ins class="vigc-added" title="added by VIC">Two squares.</ins>' in changes.html
    assert "&lt;b&gt;." in changes.html and "<b>" not in changes.html
    assert changes.summary() == "2 words added, 1 replaced"
    removed = compare_words("one two three", "one three")
    assert (removed.removed, removed.summary()) == (1, "1 removed") and "<del" in removed.html
    assert not compare_words("same words", " same   words ").changed


def test_the_vic_answer_is_marked_against_the_vig_answer() -> None:
    settings = replace(FAST, vic_mode="default")
    result = DemoResult("m", settings, "q?", "A blue circle.", "A red circle.", "")
    page = format_result(result)
    assert 'class="vigc-answer vigc-pre vigc-marked"' in page and "<del>red</del> <ins>blue</ins>" in page
    assert "Marked against the answer before VIC" in page and "1 replaced" in page
    same = format_result(replace(result, answer="A red circle."))
    assert "kept the answer before VIC word for word" in same and "<ins" not in same
    assert "<del" not in format_result(replace(result, done=False))  # no marks while VIC still writes
    assert "<del" not in format_result(replace(result, settings=replace(settings, vic_mode="off")))


# ---- what the model sees -------------------------------------------------------------------------------------
def test_model_view_is_the_processed_square(demo_model: DemoModel, tmp_path: Path) -> None:
    wide = Image.new("RGB", (300, 100), (200, 30, 40))
    wide.paste((10, 220, 30), (0, 0, 150, 100))
    view = model_view(demo_model, wide)
    side = demo_model.processor.image_size
    assert view.size == (side, side) and view.mode == "RGB"
    expected = np.asarray(resize_bicubic(wide, side, side), dtype=np.int16)
    assert np.abs(np.asarray(view, dtype=np.int16) - expected).max() <= 1


# ---- which models are served ---------------------------------------------------------------------------------
def test_the_paper_models_are_served_when_their_weights_are_present(tmp_path: Path) -> None:
    weight = tmp_path / "w.pth"
    pair = (
        NamedModel("A", Path("a.yaml"), {"finetuned": str(weight)}),
        NamedModel("B", Path("b.yaml"), {"pretrained": str(weight)}),
    )
    missing = choose_models(None, None, ("cpu", None), named=pair)
    assert [(c.cfg_path, c.device, c.name) for c in missing] == [(DEFAULT_CFG_PATH, "cpu", None)]
    two_default = choose_models(None, None, ("cpu", "cpu"), (("x=1",), ("y=2",)), named=pair)
    assert [(c.cfg_path, c.options, c.device) for c in two_default] == [
        (DEFAULT_CFG_PATH, ("x=1",), "cpu"),
        (DEFAULT_CFG_PATH, ("x=1", "y=2"), "cpu"),
    ]
    weight.write_bytes(b"")
    present = choose_models(None, None, ("0", "1"), (("x=1",), ()), named=pair)
    assert [(c.name, c.device, c.options) for c in present] == [
        ("A", "0", (f"model.finetuned={weight}", "x=1")),
        ("B", "1", (f"model.pretrained={weight}",)),
    ]
    mine = choose_models("mine.yaml", "other.yaml", ("cpu", None), named=pair)
    assert [(c.cfg_path, c.device) for c in mine] == [(Path("mine.yaml"), "cpu"), (Path("other.yaml"), "auto")]


# ---- which settings apply ------------------------------------------------------------------------------------
def test_settings_that_do_not_apply_are_disabled_with_a_reason() -> None:
    pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")
    from vigc.demo.controls import applicable

    names = ("vic", "unit", "steps", "last_all", "question_only", "beams", "top_p", "temperature")
    knowledge = dict(zip(names, applicable("okvqa", "default", "beam"), strict=True))
    assert not knowledge["vic"]["interactive"] and "knowledge questions" in knowledge["vic"]["info"]
    assert not knowledge["steps"]["interactive"] and "knowledge questions" in knowledge["steps"]["info"]
    assert knowledge["beams"]["interactive"]
    assert not knowledge["top_p"]["interactive"] and "Sampling only" in knowledge["top_p"]["info"]
    off = dict(zip(names, applicable("conv", "off", "sampling"), strict=True))
    assert off["vic"]["interactive"] and not off["steps"]["interactive"] and "VIC is off" in off["steps"]["info"]
    assert not off["beams"]["interactive"] and off["temperature"]["interactive"]
    default = dict(zip(names, applicable("desc", "default", "beam"), strict=True))
    assert default["steps"]["interactive"] and not default["last_all"]["interactive"]
    assert dict(zip(names, applicable("desc", "compat", "beam"), strict=True))["last_all"]["interactive"]
    verify = dict(zip(names, applicable("desc", "verify", "beam"), strict=True))
    assert (
        verify["steps"]["interactive"]
        and not verify["unit"]["interactive"]
        and "Sentences only" in verify["unit"]["info"]
    )
    assert copy.deepcopy(default) == default
