"""The page's handlers without a browser: every bad input is a message, generation and saving work end to end."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

gr = pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")

from vigc.cli.main import build_parser  # noqa: E402
from vigc.demo.app import DemoHandlers, Generation, build_app, settings_from_page  # noqa: E402
from vigc.demo.controls import SETTING_FIELDS  # noqa: E402
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


def _last(updates: Iterator[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The page after a Generate handler has run to its end."""
    return list(updates)[-1]


def test_bad_input_is_a_message_not_a_crash(handlers: DemoHandlers, tmp_path: Path) -> None:
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4 not an image")
    status, panel, state, save, saved = _last(handlers.generate(str(tmp_path / "doc.pdf"), *page_values()))
    assert "vigc-error" in status and "&#x27;doc.pdf&#x27; cannot be used as an image" in status
    assert panel == state == save == saved == gr.skip()  # the last result (if any) stays
    status, *_ = _last(handlers.generate(None, *page_values()))
    assert "No image yet" in status
    status, *_ = _last(handlers.generate(str(tmp_path / "doc.pdf"), *page_values(min_length=40)))
    assert "min length (40) is above max length (30)" in status
    status, *_ = _last(handlers.generate(None, *page_values(steps="many")))
    assert "Unusable settings" in status
    assert "Nothing to save yet" in handlers.save(None)
    view, message, status, panel, state, save, saved = handlers.select_image(str(tmp_path / "doc.pdf"))
    assert view is None and "cannot be used as an image" in message and state is None


def test_a_new_image_clears_the_last_results_and_messages(handlers: DemoHandlers, example_image: Path) -> None:
    view, message, status, panel, state, save, saved = handlers.select_image(str(example_image))
    side = handlers.models[0].processor.image_size
    assert view.size == (side, side) and "224 x 224 pixels" in message  # the model's square, the upload's size
    assert (status, saved, state) == ("", "", None) and "press Generate" in panel and save["visible"] is False
    assert handlers.select_image(None)[:3] == (None, "", "")


def test_generate_streams_then_save(handlers: DemoHandlers, example_image: Path) -> None:
    pages = list(handlers.generate(str(example_image), *page_values(vic_mode="compat", steps=2)))
    first, *running, (status, panel, state, save, saved) = pages
    assert "Generating" in first[0] and "writing a question" in first[1] and first[4] == ""
    assert [p[1].count('class="vigc-step"') for p in running] == [0, 1, 2, 2]  # the question, each step, the end
    assert all('class="vigc-progress"' in p[1] for p in running[:-1]) and all(not p[3]["visible"] for p in running)
    assert "Generated in" in status and 'class="vigc-question"' in panel and isinstance(state, Generation)
    assert save["visible"] is True and 'class="vigc-progress"' not in panel
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
    pages = list(broken.generate(str(example_image), *page_values()))
    assert "waiting for the model before it" in pages[0][2]  # the second model waits its turn
    status, good, bad, state, save, _ = pages[-1]
    assert 'class="vigc-question"' in good and "internal error" in bad and len(state.results) == 1


def test_the_page_builds_with_two_models(handlers: DemoHandlers, tmp_path: Path, example_image: Path) -> None:
    two = DemoHandlers([handlers.models[0], handlers.models[0]], tmp_path)
    app = build_app(two, examples=[example_image])
    ids = {block.elem_id for block in app.blocks.values() if getattr(block, "elem_id", None)}
    assert {"vigc-upload", "vigc-task", "vigc-generate", "vigc-save", "vigc-result-0", "vigc-result-1"} <= ids
    assert not list(Path(build_app.__code__.co_filename).parent.glob("*.pyi"))  # Gradio wrote no stubs


def _cli() -> Any:
    spec = importlib.util.spec_from_file_location("vigc_demo", Path(__file__).resolve().parents[2] / "vigc_demo.py")
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_the_command_line_reports_a_bad_config_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli()
    assert cli.main(["--cfg-path", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist; check the path given to --cfg-path" in capsys.readouterr().err
    args = build_parser().parse_args(["demo"])
    assert (args.host, args.port, args.share, args.device0, args.device1) == ("127.0.0.1", 7860, False, "auto", None)
    assert args.cfg_path is None and args.step_delay == 0


def test_device0_and_device1_start_two_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`python vigc_demo.py --device0 cpu --device1 cpu`: without the paper's weights, two default models."""
    import vigc.demo.app as app_module

    cli = _cli()
    served: list[DemoHandlers] = []
    real_build = app_module.build_app

    def build(handlers: DemoHandlers, examples: Any = ()) -> Any:
        served.append(handlers)
        return real_build(handlers, examples)

    monkeypatch.setattr(app_module, "build_app", build)
    monkeypatch.setattr(app_module, "launch_app", lambda app, **kwargs: None)  # everything but serving
    assert cli.main(["--device0", "cpu", "--device1", "cpu", "--output-dir", str(tmp_path)]) == 0
    (handlers,) = served
    assert [m.label for m in handlers.models] == ["generate_qa · cpu", "generate_qa (2) · cpu"]
    assert handlers.models[0].model is not handlers.models[1].model


def test_help_explains_the_devices_and_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "--device0 DEVICE0 device of the first model: a GPU id (0, 1, ...), cuda:N, cpu or auto" in usage
    assert "--device1 DEVICE1 device of the second model" in usage
    assert "PAPER_MODELS in vigc/demo/models.py" in usage and "embedded default model" in usage
