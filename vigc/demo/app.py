"""The Gradio page: the image, the task and Generate on the first screen, results streaming in on the right.

Handlers are thin: they call `vigc.demo` logic and turn every error into a message on the page. A `VIGCError` is
the user's to fix and its message is shown as is; anything else is logged with its traceback and reported as an
internal error, so no input can take the server down. Messages belong to the current input: choosing another
image clears the last one's messages and results, and Save shows only once there is a result to save.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from vigc.demo.controls import SETTING_FIELDS, applicable, settings_controls, task_control
from vigc.demo.display import format_message, format_pending, format_result, placeholder
from vigc.demo.engine import DemoResult, model_view, run_generation
from vigc.demo.models import DemoModel
from vigc.demo.records import save_result
from vigc.demo.settings import DemoSettings
from vigc.demo.uploads import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_PIXELS, load_upload
from vigc.errors import VIGCError

__all__ = ["CSS", "DemoHandlers", "Generation", "build_app", "image_input", "launch_app", "settings_from_page"]

logger = logging.getLogger(__name__)

CSS = """
.vigc-result { font-size: 15px; line-height: 1.45; }
.vigc-result h3 { margin: 0 0 2px 0; }
.vigc-meta, .vigc-timing, .vigc-dim, .vigc-legend { color: var(--body-text-color-subdued); font-size: 13px; }
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
.vigc-progress { margin: 6px 0; font-style: italic; }
.vigc-progress::before {
  content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 50%;
  border: 2px solid #f97316; border-right-color: transparent; vertical-align: -1px;
  animation: vigc-spin 0.8s linear infinite;
}
@keyframes vigc-spin { to { transform: rotate(360deg); } }
ins.vigc-added, .vigc-replaced ins { background: #d1f4dc; color: #14532d; text-decoration: none; padding: 0 2px; }
del.vigc-removed, .vigc-replaced del { background: #fde2e2; color: #8a1c1c; padding: 0 2px; }
.vigc-replaced { border-bottom: 2px dotted #b45309; }
#vigc-header h2 { margin: 0; }
#vigc-header p { margin: 2px 0 0 0; }
"""


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
    for name in ("steps", "num_beams", "min_length", "max_length", "seed"):
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


def image_input(**kwargs: Any) -> gr.Image:
    """A `gr.Image` (preview, drop, paste) whose handlers receive the uploaded file as it is.

    Gradio's own step opens the file and fails with a generic error; passing the path on lets `load_upload` refuse
    a file that is not an image, or is too large, with the demo's message naming the file. (Not a subclass:
    Gradio writes a `.pyi` stub beside the module of every component subclass.)
    """
    component = gr.Image(type="filepath", **kwargs)
    decode = component.preprocess

    def preprocess(payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return decode(payload)  # pasted data URLs: Gradio's decoding

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


@dataclass
class DemoHandlers:
    """The page's event handlers, over the loaded models (one per result panel).

    Attributes:
        models: the models, in panel order.
        output_dir: where Save writes (see `vigc.demo.records`).
        max_mb: largest upload accepted, in megabytes.
        max_pixels: largest upload accepted, in width x height.
        step_delay_s: a pause after each generation step (to watch the steps stream in; tests use it).
    """

    models: list[DemoModel]
    output_dir: Path
    max_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    step_delay_s: float = 0.0

    def select_image(self, path: str | None) -> tuple[Any, ...]:
        """A new image (or none): what the models see, or why the file cannot be used; the last results go.

        Returns:
            What each model sees, the image message, the status, one placeholder panel per model, the session
            state (None), the Save button (hidden) and the save message ("").
        """
        cleared = (*(placeholder(m.label) for m in self.models), None, gr.update(visible=False), "")
        nothing = tuple(None for _ in self.models)
        if not path:
            return *nothing, "", "", *cleared
        try:
            image = load_upload(path, self.max_mb, self.max_pixels)
        except VIGCError as exc:
            return *nothing, format_message(str(exc), "error"), "", *cleared
        views = tuple(model_view(dm, image) for dm in self.models)
        message = f"{Path(path).name}: {image.width} x {image.height} pixels."
        return *views, format_message(message, "info"), "", *cleared

    def generate(self, path: str | None, *values: Any) -> Iterator[tuple[Any, ...]]:
        """Run every model on the image, one after the other, yielding the page as each step is made.

        Yields:
            The status message, one panel per model, the session state, the Save button and the save message.
        """
        try:
            settings = settings_from_page(values)
            image = load_upload(path, self.max_mb, self.max_pixels)
        except VIGCError as exc:
            yield self._refused(str(exc))
            return
        except (TypeError, ValueError) as exc:
            yield self._refused(f"Unusable settings: {exc}")
            return
        generation = Generation(image=image, upload_name=Path(path or "").name)
        panels = [format_pending(m.label, settings, waiting=i > 0) for i, m in enumerate(self.models)]
        hidden, started = gr.update(visible=False), time.perf_counter()
        yield (format_message("Generating…", "info"), *panels, None, hidden, "")
        events: queue.Queue[tuple[int, str] | None] = queue.Queue()
        worker = threading.Thread(target=self._run_all, args=(generation, settings, events), daemon=True)
        worker.start()
        while (event := events.get()) is not None:
            panels[event[0]] = event[1]
            status = f"Generating… {time.perf_counter() - started:.0f} s"
            yield (format_message(status, "info"), *panels, None, hidden, gr.skip())
        seconds = time.perf_counter() - started
        if not generation.results:
            yield (format_message("Nothing was generated; see the panels.", "error"), *panels, None, hidden, "")
            return
        status = f"Generated in {seconds:.1f} s. Press Save to keep the QA as a record."
        yield (format_message(status, "ok"), *panels, generation, gr.update(visible=True), "")

    def _refused(self, message: str) -> tuple[Any, ...]:
        """The page after a request that could not start: its message; results and Save stay as they were."""
        return (format_message(message, "error"), *(gr.skip() for _ in self.models), gr.skip(), gr.skip(), gr.skip())

    def _run_all(
        self, generation: Generation, settings: DemoSettings, events: queue.Queue[tuple[int, str] | None]
    ) -> None:
        """The worker thread: every model in turn; each partial result and final panel goes to `events`."""
        try:
            for index, dm in enumerate(self.models):
                if index:
                    events.put((index, format_pending(dm.label, settings)))

                def progress(result: DemoResult, index: int = index) -> None:
                    events.put((index, format_result(result)))
                    if self.step_delay_s:
                        time.sleep(self.step_delay_s)

                def call(dm: DemoModel = dm, progress: Callable[[DemoResult], None] = progress) -> str:
                    result = run_generation(dm, generation.image, settings, progress)
                    generation.results.append(result)
                    return format_result(result)

                events.put((index, _guarded(f"Generation with {dm.name}", call)))
        finally:
            events.put(None)

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


def build_app(handlers: DemoHandlers, examples: Sequence[Path] = ()) -> gr.Blocks:
    """The page for `handlers.models` (one or two), with `examples` as thumbnails under the image."""
    defaults = handlers.models[0].defaults
    with gr.Blocks(title="VIGC demo", analytics_enabled=False) as app:
        gr.Markdown(
            "## VIGC: Visual Instruction Generation and Correction\n"
            "The model writes a question and an answer about the image (VIG); VIC then rewrites the answer one "
            "sentence at a time, looking at the image again before each sentence.",
            elem_id="vigc-header",
        )
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2, min_width=420):
                upload = image_input(
                    label="Image (drop, click to upload, or paste)",
                    sources=["upload", "clipboard"],
                    height=230,
                    buttons=["fullscreen"],
                    elem_id="vigc-upload",
                )
                upload_message = gr.HTML(elem_id="vigc-upload-message")
                task = task_control(defaults)
                generate = gr.Button("Generate", variant="primary", elem_id="vigc-generate")
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=[upload], label="Examples", examples_per_page=12)
                controls = settings_controls(task, defaults)
                with gr.Row(elem_id="vigc-model-view"):
                    seen = [
                        gr.Image(
                            label=f"What {m.name} sees: {m.processor.image_size} x {m.processor.image_size} px",
                            type="pil",
                            interactive=False,
                            height=200,
                            buttons=["fullscreen"],
                        )
                        for m in handlers.models
                    ]
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="vigc-status")
                with gr.Row():
                    panels = [
                        gr.HTML(placeholder(m.label), elem_id=f"vigc-result-{i}") for i, m in enumerate(handlers.models)
                    ]
                save = gr.Button("Save QA as a record", visible=False, elem_id="vigc-save")
                saved = gr.HTML(elem_id="vigc-saved")
        results = [status, *panels, state, save, saved]
        upload.change(handlers.select_image, inputs=[upload], outputs=[*seen, upload_message, *results])
        generate.click(handlers.generate, inputs=[upload, *controls.inputs], outputs=results, show_progress="minimal")
        save.click(handlers.save, inputs=[state], outputs=[saved])
        for control in (controls.task, controls.vic_mode, controls.sampling):
            control.change(
                applicable, inputs=[controls.task, controls.vic_mode, controls.sampling], outputs=controls.dependent
            )
        app.load(applicable, inputs=[controls.task, controls.vic_mode, controls.sampling], outputs=controls.dependent)
    return app


def launch_app(
    app: gr.Blocks, *, host: str, port: int, share: bool, max_mb: float, allowed: Sequence[Path] = ()
) -> None:
    """Serve the page until interrupted (one generation at a time: models are not shared between requests)."""
    app.queue(default_concurrency_limit=1)
    _, local_url, share_url = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{max_mb:g}mb",
        allowed_paths=[str(p) for p in allowed],
        ssr_mode=False,
        css=CSS,
        quiet=True,
        prevent_thread_lock=True,
    )
    where = (
        f"; public link: {share_url}"
        if share_url
        else (
            ""
            if host not in ("127.0.0.1", "localhost")
            else " (this machine only: --host 0.0.0.0 serves your network, --share opens a public link)"
        )
    )
    logger.info("serving on %s%s", local_url, where)
    app.block_thread()
