"""The demo's logic without a browser: uploads, settings, generation in every mode, display, saved records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from vigc.config import load_config
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.demo.answer import answer_question
from vigc.demo.display import format_result
from vigc.demo.engine import DemoResult, run_generation
from vigc.demo.models import DemoModel, load_demo_model, resolve_device
from vigc.demo.records import save_result
from vigc.demo.settings import DemoInputError, DemoSettings
from vigc.demo.uploads import load_upload
from vigc.errors import ConfigError, VIGCError
from vigc.generation.merge import merge
from vigc.generation.records_format import vic_record_fields
from vigc.generation.vic import GenerationStats, QAResult, vig_vic

REPO = Path(__file__).resolve().parents[2]
# Short outputs keep each generation well under a second on a CPU.
FAST = DemoSettings(max_length=30, num_beams=1)
QUESTION = "What color is the object in the top left corner?"


@pytest.fixture(scope="module")
def demo_model(demo_config: Path) -> DemoModel:
    return load_demo_model(demo_config, "cpu")


@pytest.fixture(scope="module")
def image(example_image: Path) -> Image.Image:
    return load_upload(example_image)


def _pixels(demo_model: DemoModel, image: Image.Image) -> torch.Tensor:
    return demo_model.processor(image)[None]


# ---- uploads -------------------------------------------------------------------------------------------------
def test_bad_uploads_give_one_message_naming_the_file(tmp_path: Path, example_image: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(example_image.read_bytes()[:60])
    cases = {
        None: "No image yet",
        str(tmp_path / "notes.txt"): "'notes.txt' cannot be used as an image: not an image file",
        str(tmp_path / "empty.png"): "'empty.png' cannot be used as an image: empty file",
        str(tmp_path / "cut.png"): "'cut.png' cannot be used as an image: cannot decode",
        str(tmp_path / "gone.png"): "no longer on the server",
    }
    for path, message in cases.items():
        with pytest.raises(DemoInputError, match="^.*" + message.replace("(", r"\(")) as caught:
            load_upload(path)
        assert str(tmp_path) not in str(caught.value)  # the server's temporary folder is not shown


def test_oversized_uploads_are_refused_before_decoding(example_image: Path) -> None:
    too_big = rf"'{example_image.name}' is 0.0 MB; the demo takes images up to 0.0001 MB"
    with pytest.raises(DemoInputError, match=too_big):
        load_upload(example_image, max_mb=0.0001)
    with pytest.raises(DemoInputError, match=r"too large: 224x224 = 50176 pixels exceeds max_pixels=1000"):
        load_upload(example_image, max_pixels=1000)


def test_uploads_become_rgb(tmp_path: Path) -> None:
    Image.new("RGBA", (30, 20), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    image = load_upload(tmp_path / "clear.png")
    assert image.mode == "RGB" and image.size == (30, 20) and image.getpixel((0, 0)) == (255, 255, 255)


# ---- settings ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "vqa"}, "task must be one of conv, desc, comp, okvqa"),
        ({"vic_mode": "on"}, "VIC must be one of off, compat, default, verify"),
        ({"vic_mode": "verify", "paragraphs": True}, "corrects sentences: turn paragraph steps off"),
        ({"min_length": 30, "max_length": 20}, r"min length \(30\) is above max length \(20\)"),
        ({"repetition_penalty": -1.0}, "repetition penalty must be above 0"),
        ({"question": "x" * 1001}, "at most 1000"),
        ({"steps": 0}, "VIC steps must be at least 1"),
    ],
)
def test_bad_settings_are_one_message(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DemoInputError, match=message):
        DemoSettings(**changes)  # type: ignore[arg-type]


def test_page_defaults_come_from_the_run_section() -> None:
    run = {"llava_task": "desc", "vic_mode": "compat", "answer_length": 3, "in_section": True}
    run["generate_cfg"] = {"max_len": 120, "num_beams": 3, "repetition_penalty": 1.2}
    settings = DemoSettings.from_run_config(run)
    assert (settings.task, settings.vic_mode, settings.steps, settings.paragraphs) == ("desc", "compat", 3, True)
    assert (settings.max_length, settings.num_beams, settings.repetition_penalty) == (120, 3, 1.2)
    assert settings.decoding().max_new_tokens == 119  # max_len counts the hidden BOS, as in generation configs
    assert DemoSettings.from_run_config({"task": "instruct_blip_vqg", "generate_task": "gq"}).task == "okvqa"
    with pytest.raises(ConfigError, match="'run.generate_cfg' does not fit .*unknown key 'beams'"):
        DemoSettings.from_run_config({"generate_cfg": {"beams": 2}})


@pytest.mark.parametrize("path", sorted((REPO / "vigc" / "projects").rglob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_gives_page_defaults(path: Path) -> None:
    cfg = load_config(path)
    run = OmegaConf.to_container(cfg.run, resolve=True) if cfg.get("run") is not None else {}
    settings = DemoSettings.from_run_config(run)  # type: ignore[arg-type]
    assert settings.decoding().max_new_tokens >= 1
    if "generate_qa" in path.parts:
        kind = path.stem.rsplit("_", 1)[-1]  # generate_llava_qa_<conv|detail|complex>, generate_<question|answer>
        expected = (
            "okvqa" if "okvqa" in path.parent.name else {"conv": "conv", "detail": "desc", "complex": "comp"}[kind]
        )
        assert settings.task == expected and settings.max_length >= 200


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == resolve_device("0") == torch.device("cpu")  # the original's fallback
        with pytest.raises(ConfigError, match="not available"):
            resolve_device("cuda:1")
    with pytest.raises(ConfigError, match="Unknown device"):
        resolve_device("gpu-please")


def test_missing_default_config_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_demo_model(tmp_path / "nope.yaml", "cpu")


# ---- generation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["default", "compat", "verify"])
def test_vig_vic_is_what_generation_runs(demo_model: DemoModel, image: Image.Image, mode: str) -> None:
    settings = replace(FAST, vic_mode=mode, steps=3)
    result = run_generation(demo_model, image, settings)
    expected = vig_vic(
        demo_model.model, _pixels(demo_model, image), [GENERATION_INSTRUCTIONS["conv"]], settings.vic_settings()
    )[0]
    assert result.qa is not None and vic_record_fields(result.qa) == vic_record_fields(expected)
    assert (result.question, result.answer, result.vig_answer) == (
        expected.question,
        expected.answer,
        expected.original_answer,
    )
    assert result.question and result.answer and result.valid
    assert [step.kept for step in result.steps][: len(expected.steps)] == expected.steps
    assert [step.prompt for step in result.steps] == expected.step_prompts[1:]  # the first prompt was VIG's
    if mode == "compat":
        assert len(result.steps) == 3 and result.stop_reason == "steps"
    assert result.timings["total"] >= result.timings["generation"] > 0 and result.decoded_tokens > 0


def test_vic_off_is_vig_alone(demo_model: DemoModel, image: Image.Image) -> None:
    result = run_generation(demo_model, image, replace(FAST, vic_mode="off"))
    vig = run_generation(demo_model, image, replace(FAST, vic_mode="compat"))
    assert (result.question, result.answer) == (vig.question, vig.vig_answer)
    assert result.steps == [] and result.stop_reason == "vic_off" and result.raw_output == vig.raw_output


@pytest.mark.parametrize("mode", ["default", "compat"])
def test_own_question_is_answered_as_a_generated_one(demo_model: DemoModel, image: Image.Image, mode: str) -> None:
    """Given VIG's own question, the own-question path writes exactly the answer VIG + VIC wrote."""
    generated = run_generation(demo_model, image, replace(FAST, vic_mode=mode, steps=3))
    assert generated.question
    own = run_generation(demo_model, image, replace(FAST, vic_mode=mode, steps=3, question=f"  {generated.question} "))
    assert (own.question, own.answer) == (generated.question, generated.answer)
    assert [s.kept for s in own.steps] == [s.kept for s in generated.steps]
    assert own.qa is not None and own.qa.original_answer is None and own.raw_output == ""
    assert own.steps[0].prompt.endswith(f"Question: {generated.question} Answer:")
    assert own.vig_answer and "comparison" in own.timings  # the one-pass answer, for comparison


def test_own_question_prompt_options(demo_model: DemoModel, image: Image.Image) -> None:
    alone = run_generation(demo_model, image, replace(FAST, question=QUESTION, question_only_prompt=True))
    assert alone.steps[0].prompt == QUESTION  # the original demo's prompt for a given question
    off = run_generation(demo_model, image, replace(FAST, question=QUESTION, vic_mode="off"))
    assert off.steps == [] and off.answer and off.stop_reason == "vic_off" and off.vig_answer is None
    assert off.qa is not None and off.qa.step_prompts == [
        f"{GENERATION_INSTRUCTIONS['conv']} Question: {QUESTION} Answer:"
    ]


def test_paragraph_steps(demo_model: DemoModel, image: Image.Image) -> None:
    result = run_generation(demo_model, image, replace(FAST, vic_mode="compat", paragraphs=True, steps=2))
    assert result.qa is not None and result.qa.answer_lst == [s.kept for s in result.steps] and len(result.steps) == 2


def test_sampling_is_reproducible_with_its_seed(demo_model: DemoModel, image: Image.Image) -> None:
    sampled = replace(FAST, sampling=True, seed=7, temperature=1.5)
    first, again = (run_generation(demo_model, image, sampled) for _ in range(2))
    assert (first.question, first.answer) == (again.question, again.answer)


def test_okvqa_style_asks_then_scores_every_beam(demo_model: DemoModel, image: Image.Image) -> None:
    # The embedded model never saw the OKVQA-style instruction in training: after the drawn start word it mostly
    # writes scene sentences, not a question. The pass must say so (no question: not usable), not invent one.
    asked = run_generation(demo_model, image, replace(FAST, task="okvqa", num_beams=3))
    assert asked.question_pass is not None and asked.raw_output.startswith("Question: ")
    assert asked.valid == bool(asked.question) and (asked.question is not None or asked.answer_pass is None)
    own = run_generation(demo_model, image, replace(FAST, task="okvqa", num_beams=3, question=QUESTION))
    assert own.question == QUESTION and own.question_pass is None and own.answer_pass is not None and own.valid
    assert own.answer_pass.prompt == f"Question: {QUESTION} Short answer:"
    assert len(own.beams) == 3 and own.answer == own.beams[0].answer
    assert [b.weight for b in own.beams] == sorted((b.weight for b in own.beams), reverse=True)


# ---- display -------------------------------------------------------------------------------------------------
def test_display_escapes_and_shows_every_step(demo_model: DemoModel, image: Image.Image) -> None:
    result = run_generation(demo_model, image, replace(FAST, question="<b>is it</b> & red?", vic_mode="compat"))
    page = format_result(result)
    assert "&lt;b&gt;is it&lt;/b&gt; &amp; red?" in page and "<b>is it" not in page
    assert page.count('class="vigc-step"') == len(result.steps) > 0
    assert "Answer in one pass, without VIC" in page and "total " in page
    invalid = DemoResult("m", FAST, None, "", None, "no pair here", valid=False, stop_reason="invalid_vig")
    assert "Not usable as data: the model wrote no usable question and answer" in format_result(invalid)


# ---- records -------------------------------------------------------------------------------------------------
def test_saved_records_have_the_generation_fields_and_merge(
    demo_model: DemoModel, image: Image.Image, tmp_path: Path
) -> None:
    result = run_generation(demo_model, image, FAST)
    first = save_result(result, image, tmp_path, upload_name="img0.png")
    second = save_result(result, image, tmp_path)
    assert first.records_file == second.records_file == (tmp_path / "llava_vig" / "records.demo.jsonl").resolve()
    assert first.key.endswith("#conv#0") and second.key.endswith("#conv#1") and first.image_file.is_file()
    records = [json.loads(line) for line in first.records_file.read_text().splitlines()]
    assert len(records) == 2
    record = records[0]
    assert result.qa is not None
    generation_fields = {"image", "key", "task", "sample_index", "valid", "provenance", *vic_record_fields(result.qa)}
    assert set(record) == generation_fields | {"demo"}  # generate_llava's record, plus what the page set
    assert record["image"] == first.image_file.name and record["question"] == result.question
    assert record["provenance"]["model"]["arch"] == "vigc_default" and record["provenance"]["vic"]["mode"] == "default"
    assert record["demo"]["upload_name"] == "img0.png" and record["demo"]["settings"]["max_length"] == 30
    llava = tmp_path / "llava.json"
    merge(tmp_path / "llava_vig", llava)
    conversation = json.loads(llava.read_text())[0]["conversations"]
    assert conversation[0]["value"] == f"<image>\n{result.question}" and conversation[1]["value"] == result.answer


def test_saved_okvqa_records_are_answer_pass_records(demo_model: DemoModel, image: Image.Image, tmp_path: Path) -> None:
    result = run_generation(demo_model, image, replace(FAST, task="okvqa", question=QUESTION))  # the ga pass
    saved = save_result(result, image, tmp_path)
    record = json.loads(saved.records_file.read_text())
    assert saved.records_file.parent.name == "vqg_answer" and len(record["answer"]) == len(record["weight"]) == 1
    merge(tmp_path / "vqg_answer")
    exported = json.loads((tmp_path / "vqg_answer" / "question_answer.json").read_text())
    assert exported[0]["question"] == result.question and exported[0]["answer"] == record["answer"]


def test_unwritable_output_is_a_message(demo_model: DemoModel, image: Image.Image, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    result = DemoResult("m", FAST, QUESTION, "red.", None, "", qa=QAResult(instruction="i", question=QUESTION))
    with pytest.raises(VIGCError, match="Cannot save the record under"):
        save_result(result, image, tmp_path / "taken")


def test_answer_question_counts_its_work(demo_model: DemoModel, image: Image.Image) -> None:
    stats = GenerationStats()
    embeds = demo_model.model.encode_images(_pixels(demo_model, image))
    qa = answer_question(
        demo_model.model, embeds, "Describe.", QUESTION, replace(FAST, vic_mode="compat", steps=2).vic_settings(), stats
    )
    assert len(qa.step_outputs) == 2 and stats.lm_steps > 0 and qa.whole_text.startswith("Describe. Question:")
