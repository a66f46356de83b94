"""The Gradio page: inputs on the left, one result panel per model on the right, a button that saves the QA.

Handlers are thin: they call `vigc.demo` logic and turn every error into a message on the page. A `VIGCError` is
the user's to fix and its message is shown as is; anything else is logged with its traceback and reported as an
internal error, so no input can take the server down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from vigc.demo.display import format_message, format_result, placeholder
from vigc.demo.engine import DemoResult, run_generation
from vigc.demo.models import DemoModel
from vigc.demo.records import DEMO_WRITER, RUN_TASKS, save_result
from vigc.demo.settings import TASK_LABELS, DemoSettings
from vigc.demo.uploads import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_PIXELS, load_upload
from vigc.errors import VIGCError

__all__ = ["CSS", "DemoHandlers", "Generation", "build_app", "launch_app"]

logger = logging.getLogger(__name__)

CSS = """
.vigc-result { font-size: 15px; line-height: 1.45; }
.vigc-result h3 { margin: 0 0 2px 0; }
.vigc-meta, .vigc-timing, .vigc-dim { color: var(--body-text-color-subdued); font-size: 13px; }
.vigc-timing { margin-top: 10px; }
.vigc-label { font-weight: 600; margin: 10px 0 2px 0; }
.vigc-question { font-size: 17px; }
.vigc-answer { font-size: 16px; border-left: 3px solid var(--color-accent); padding-left: 8px; }
.vigc-pre { white-space: pre-wrap; }
.vigc-steps { margin: 2px 0 0 1.2em; padding: 0; }
.vigc-step details { font-size: 13px; margin: 0 0 4px 0; }
.vigc-beams td, .vigc-beams th { padding: 1px 8px; text-align: left; }
.vigc-message { padding: 6px 10px; border-radius: 6px; margin: 4px 0; }
.vigc-error { background: #fde8e8; color: #8a1c1c; }
.vigc-ok { background: #e6f4ea; color: #14532d; }
.vigc-info { background: var(--background-fill-secondary); }
"""

# Settings fields fed by the page's controls, in the order the handler receives them.
SETTING_FIELDS = (
    "task",
    "question",
    "vic_mode",
    "paragraphs",
    "last_infer_all",
    "steps",
    "question_only_prompt",
    "sampling",
    "num_beams",
    "top_p",
    "temperature",
    "min_length",
    "max_length",
    "repetition_penalty",
    "length_penalty",
    "seed",
)
INT_FIELDS = frozenset({"steps", "num_beams", "min_length", "max_length", "seed"})


@dataclass
class Generation:
    """The last generation of a browser session (what Save writes)."""

    image: Image.Image
    upload_name: str
    results: list[DemoResult] = field(default_factory=list)


def settings_from_page(values: Sequence[Any]) -> DemoSettings:
    """`DemoSettings` from the controls' values (in `SETTING_FIELDS` order; radio labels already mapped)."""
    named = dict(zip(SETTING_FIELDS, values, strict=True))
    named["paragraphs"] = named["paragraphs"] == "paragraphs"
    named["sampling"] = named["sampling"] == "sampling"
    named["question"] = named["question"] or ""
    for name in INT_FIELDS:
        named[name] = int(round(float(named[name])))
    return DemoSettings(**named)


def _guarded(action: str, call: Callable[[], str]) -> str:
    """Run `call`; a `VIGCError` becomes its message, anything else an internal-error message (logged)."""
    try:
        return call()
    except VIGCError as exc:
        return format_message(str(exc), "error")
    except Exception:
        logger.exception("%s failed", action)
        return format_message(f"{action} failed with an internal error; the server log has the details.", "error")


@dataclass
class DemoHandlers:
    """The page's event handlers, over the loaded models (one per result panel).

    Attributes:
        models: the models, in panel order.
        output_dir: where Save writes (see `vigc.demo.records`).
        max_mb: largest upload accepted, in megabytes.
        max_pixels: largest upload accepted, in width x height.
    """

    models: list[DemoModel]
    output_dir: Path
    max_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS

    def preview(self, path: str | None) -> tuple[Image.Image | None, str]:
        """Show what the model will see, or why the file cannot be used."""
        if not path:
            return None, ""
        try:
            image = load_upload(path, self.max_mb, self.max_pixels)
        except VIGCError as exc:
            return None, format_message(str(exc), "error")
        return image, format_message(f"{Path(path).name}: {image.width} x {image.height} pixels.", "info")

    def generate(self, path: str | None, *values: Any) -> tuple[Any, ...]:
        """Run every model on the image; returns the status message, one panel per model and the session state."""
        try:
            settings = settings_from_page(values)
            image = load_upload(path, self.max_mb, self.max_pixels)
        except VIGCError as exc:
            return (format_message(str(exc), "error"), *(gr.skip() for _ in self.models), None)
        except (TypeError, ValueError) as exc:
            return (format_message(f"Unusable settings: {exc}", "error"), *(gr.skip() for _ in self.models), None)
        generation = Generation(image=image, upload_name=Path(path or "").name)
        started = time.perf_counter()
        panels = [_guarded(f"Generation with {dm.name}", self._run_one(dm, generation, settings)) for dm in self.models]
        seconds = time.perf_counter() - started
        status = f"Generated in {seconds:.1f} s. Press Save to keep the QA as a record."
        return (format_message(status, "ok"), *panels, generation if generation.results else None)

    @staticmethod
    def _run_one(dm: DemoModel, generation: Generation, settings: DemoSettings) -> Callable[[], str]:
        def call() -> str:
            result = run_generation(dm, generation.image, settings)
            generation.results.append(result)
            return format_result(result)

        return call

    def save(self, generation: Generation | None) -> str:
        """Append the last generation's QA (one record per model) and say where they went."""
        if generation is None or not generation.results:
            return format_message("Nothing to save yet: press Generate first.", "error")

        def call() -> str:
            saved = [
                save_result(r, generation.image, self.output_dir, generation.upload_name) for r in generation.results
            ]
            lines = "; ".join(f"{s.key} → {s.records_file}" for s in saved)
            return format_message(f"Saved {len(saved)} record(s): {lines}", "ok")

        return _guarded("Saving", call)


def _decoding_controls(defaults: DemoSettings) -> list[Any]:
    """The decoding block (an accordion); returns its controls in `SETTING_FIELDS` order."""
    with gr.Accordion("Decoding", open=False):
        method = gr.Radio(
            [("beam search", "beam"), ("nucleus sampling", "sampling")],
            value="sampling" if defaults.sampling else "beam",
            label="Method",
        )
        with gr.Row():
            beams = gr.Slider(1, 10, value=defaults.num_beams, step=1, label="Beams")
            top_p = gr.Slider(0.1, 1.0, value=defaults.top_p, step=0.05, label="Top-p (sampling)")
            temperature = gr.Slider(0.1, 2.0, value=defaults.temperature, step=0.05, label="Temperature (sampling)")
        with gr.Row():
            min_length = gr.Slider(0, 50, value=defaults.min_length, step=1, label="Min length (tokens)")
            max_length = gr.Slider(10, 500, value=defaults.max_length, step=5, label="Max length (tokens)")
        with gr.Row():
            repetition = gr.Slider(0.5, 3.0, value=defaults.repetition_penalty, step=0.05, label="Repetition penalty")
            length = gr.Slider(-1.0, 2.0, value=defaults.length_penalty, step=0.1, label="Length penalty")
            seed = gr.Number(value=defaults.seed, precision=0, label="Seed")
    return [method, beams, top_p, temperature, min_length, max_length, repetition, length, seed]


def _setting_controls(defaults: DemoSettings) -> list[Any]:
    """Every control that feeds `DemoSettings`, in `SETTING_FIELDS` order."""
    task = gr.Radio([(label, key) for key, label in TASK_LABELS.items()], value=defaults.task, label="Task")
    question = gr.Textbox(
        label="Your own question (optional: then only the answer is generated)",
        placeholder="e.g. What is on the left of the picture?",
        lines=2,
        elem_id="vigc-question-input",
    )
    vic = gr.Radio(
        [("off (VIG only)", "off"), ("compat (the original loop)", "compat"), ("default", "default")],
        value=defaults.vic_mode,
        label="VIC (correction, a step at a time)",
    )
    with gr.Row():
        unit = gr.Radio(
            ["sentences", "paragraphs"], value="paragraphs" if defaults.paragraphs else "sentences", label="Steps are"
        )
        steps = gr.Slider(1, 12, value=defaults.steps, step=1, label="VIC steps (compat: exactly; default: at most)")
    with gr.Row():
        last_all = gr.Checkbox(value=defaults.last_infer_all, label="compat: no truncation (last step keeps all)")
        question_only = gr.Checkbox(value=defaults.question_only_prompt, label="VIC prompt: question only")
    method, *decoding = _decoding_controls(defaults)
    return [task, question, vic, unit, last_all, steps, question_only, method, *decoding]


def build_app(handlers: DemoHandlers, examples: Sequence[Path] = ()) -> gr.Blocks:
    """The page for `handlers.models` (one or two), with `examples` under the upload box."""
    defaults = handlers.models[0].defaults
    records = ", ".join(
        sorted({str(handlers.output_dir.resolve() / t / f"records.{DEMO_WRITER}.jsonl") for t in RUN_TASKS.values()})
    )
    with gr.Blocks(title="VIGC demo", analytics_enabled=False) as app:
        gr.Markdown(
            "# VIGC: Visual Instruction Generation and Correction\n"
            "VIG writes a question and an answer about the image; VIC rewrites the answer one sentence at a time, "
            "reading the image again before each sentence."
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Image", type="filepath", file_count="single", elem_id="vigc-upload")
                preview = gr.Image(label="What the model sees", type="pil", interactive=False, height=240)
                upload_message = gr.HTML(elem_id="vigc-upload-message")
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[upload], label="Examples")
                controls = _setting_controls(defaults)
                generate = gr.Button("Generate", variant="primary", elem_id="vigc-generate")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="vigc-status")
                with gr.Row():
                    panels = [
                        gr.HTML(placeholder(m.label), elem_id=f"vigc-result-{i}") for i, m in enumerate(handlers.models)
                    ]
                save = gr.Button("Save QA as a record", elem_id="vigc-save")
                saved = gr.HTML(format_message(f"Records are appended to {records}", "info"), elem_id="vigc-saved")
        upload.change(handlers.preview, inputs=[upload], outputs=[preview, upload_message])
        generate.click(handlers.generate, inputs=[upload, *controls], outputs=[status, *panels, state])
        save.click(handlers.save, inputs=[state], outputs=[saved])
    return app


def launch_app(
    app: gr.Blocks, *, host: str, port: int, share: bool, max_mb: float, allowed: Sequence[Path] = ()
) -> None:
    """Serve the page until interrupted (one generation at a time: models are not shared between requests)."""
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{max_mb:g}mb",
        allowed_paths=[str(p) for p in allowed],
        ssr_mode=False,
        css=CSS,
    )
