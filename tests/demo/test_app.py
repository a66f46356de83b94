"""The page's handlers without a browser: every bad input is a message, generation and saving work end to end."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

gr = pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")

from vigc.demo.app import SETTING_FIELDS, DemoHandlers, Generation, build_app, settings_from_page  # noqa: E402
from vigc.demo.models import DemoModel, load_demo_model  # noqa: E402
from vigc.demo.settings import DemoSettings  # noqa: E402


def page_values(**changes: Any) -> list[Any]:
    """The controls' values for `DemoSettings` defaults with `changes`, as the page sends them."""
    values = {**DemoSettings(max_length=30, num_beams=1).as_dict(), **changes}
    values["paragraphs"] = "paragraphs" if values["paragraphs"] else "sentences"
    values["sampling"] = "sampling" if values["sampling"] else "beam"
    return [values[name] for name in SETTING_FIELDS]


@pytest.fixture(scope="module")
def handlers(demo_config: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoHandlers:
    model: DemoModel = load_demo_model(demo_config, "cpu")
    return DemoHandlers([model], tmp_path_factory.mktemp("demo_out"))


def test_page_values_map_to_settings() -> None:
    settings = settings_from_page(page_values(steps=3.0, paragraphs=True, sampling=True, seed=5.0, question=None))
    assert (settings.steps, settings.paragraphs, settings.sampling, settings.seed, settings.question) == (
        3,
        True,
        True,
        5,
        "",
    )


def test_bad_input_is_a_message_not_a_crash(handlers: DemoHandlers, tmp_path: Path) -> None:
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4 not an image")
    status, panel, state = handlers.generate(str(tmp_path / "doc.pdf"), *page_values())
    assert "vigc-error" in status and "&#x27;doc.pdf&#x27; cannot be used as an image" in status
    assert state is None and panel == gr.skip()
    status, _, state = handlers.generate(None, *page_values())
    assert "No image yet" in status and state is None
    status, _, _ = handlers.generate(str(tmp_path / "doc.pdf"), *page_values(min_length=40))
    assert "min length (40) is above max length (30)" in status
    status, _, _ = handlers.generate(None, *page_values(steps="many"))
    assert "Unusable settings" in status
    assert "Nothing to save yet" in handlers.save(None)
    image, message = handlers.preview(str(tmp_path / "doc.pdf"))
    assert image is None and "cannot be used as an image" in message


def test_generate_then_save(handlers: DemoHandlers, example_image: Path) -> None:
    image, message = handlers.preview(str(example_image))
    assert image is not None and "224 x 224 pixels" in message
    status, panel, state = handlers.generate(str(example_image), *page_values(vic_mode="compat", steps=2))
    assert "Generated in" in status and 'class="vigc-question"' in panel and isinstance(state, Generation)
    assert state.results[0].question and panel.count('class="vigc-step"') == 2
    saved = handlers.save(state)
    records = handlers.output_dir / "llava_vig" / "records.demo.jsonl"
    assert "Saved 1 record(s)" in saved and str(records.resolve()) in saved
    record = json.loads(records.read_text())
    assert record["question"] == state.results[0].question and record["demo"]["upload_name"] == example_image.name


def test_a_model_failure_is_reported_and_the_others_still_run(handlers: DemoHandlers, example_image: Path) -> None:
    good_model = handlers.models[0]
    no_model = replace(good_model, name="broken", model=None)  # type: ignore[arg-type]  # fails inside generation
    broken = DemoHandlers([good_model, no_model], handlers.output_dir)
    status, good, bad, state = broken.generate(str(example_image), *page_values())
    assert 'class="vigc-question"' in good and "internal error" in bad and len(state.results) == 1


def test_the_page_builds_with_two_models(handlers: DemoHandlers, tmp_path: Path, example_image: Path) -> None:
    two = DemoHandlers([handlers.models[0], handlers.models[0]], tmp_path)
    app = build_app(two, examples=[example_image])
    ids = {block.elem_id for block in app.blocks.values() if getattr(block, "elem_id", None)}
    assert {"vigc-upload", "vigc-generate", "vigc-save", "vigc-result-0", "vigc-result-1"} <= ids


def test_the_command_line_reports_a_bad_config_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("vigc_demo", Path(__file__).resolve().parents[2] / "vigc_demo.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--cfg-path", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist; check the path given to --cfg-path" in capsys.readouterr().err
    args = cli.parse_args([])
    assert (args.host, args.port, args.share, args.device1) == ("127.0.0.1", 7860, False, "auto")
