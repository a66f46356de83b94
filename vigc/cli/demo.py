"""Local Gradio demo: VIG and every VIC step for an image (needs vigc[demo]).

One model, or two side by side. `python vigc_demo.py` takes the same arguments.

examples:
  vigc demo --device0 cpu
      no weights here: the embedded default model, on the CPU
  vigc demo --device0 0 --device1 1
      the paper's two models (PAPER_MODELS in vigc/demo/models.py), on GPUs 0 and 1
  vigc demo --cfg-path vigc/projects/mini_gpt4_vicuna7b/generate_qa/llava-150k/generate_llava_qa_conv.yaml \\
      --options model.llm_model=/models/vicuna-7b model.finetuned=/ckpt/vigc7b_minigpt4_llava.pth
  vigc demo --cfg-path A.yaml --cfg-path2 B.yaml --device0 0 --device1 1
      any two models side by side

Models: without --cfg-path the demo serves the original demo's two models (MODEL_CKPT there; PAPER_MODELS in
vigc/demo/models.py holds their configs and weight paths: edit it, or use --cfg-path/--options) when all their
weights are present, and the embedded default model (it runs on a CPU) otherwise. --device1 (or --cfg-path2)
adds a second model: --cfg-path2, else the first model's config again.

Then open the printed URL (http://127.0.0.1:7860 by default). The page is served on this machine only unless
you pass --host 0.0.0.0 (your network) or --share (a temporary public gradio.live link). Saved QA records go to
output/demo/ (see vigc/demo/records.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vigc.cli.common import exit_on_error, standalone
from vigc.demo.limits import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_PIXELS

MISSING_GRADIO = "the demo needs Gradio, which is not installed: pip install 'vigc[demo]' (from a clone: '.[demo]')"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's arguments: which models on which devices, where to serve, upload limits."""
    parser.add_argument(
        "--cfg-path", default=None, metavar="YAML", help="config of the first model (default: the paper's models)"
    )
    parser.add_argument("--cfg-path2", default=None, metavar="YAML", help="config of a second model shown side by side")
    parser.add_argument(
        "--options", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for the first model: section.key=value"
    )
    parser.add_argument("--options2", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for the second model")
    parser.add_argument(
        "--device0", default="auto", help="device of the first model: a GPU id (0, 1, ...), cuda:N, cpu or auto"
    )
    parser.add_argument(
        "--device1", default=None, help="device of the second model (a GPU id, cuda:N, cpu, auto); adds it if needed"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--output-dir", type=Path, default=Path("output/demo"), help="where saved records go")
    parser.add_argument(
        "--examples", type=Path, default=None, help="folder of example images (default: the packaged sample scenes)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, help="largest upload in MB")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_UPLOAD_PIXELS, help="largest width x height")
    parser.add_argument(
        "--step-delay", type=float, default=0.0, help="seconds to wait after each generation step (to watch streaming)"
    )
    parser.add_argument("--verbose", action="store_true", help="also log every web request")


def run(args: argparse.Namespace) -> int:
    """Load the models (errors before any server starts), build the page and serve it."""
    if importlib.util.find_spec("gradio") is None:
        print(f"error: {MISSING_GRADIO}", file=sys.stderr)
        return 2
    # Before Gradio is imported: no usage statistics and no version check leave this machine.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_libraries(args.verbose)
    return exit_on_error(lambda: _serve(args), os_error=str)  # a port in use, an unreadable examples folder


def _serve(args: argparse.Namespace) -> int:
    from vigc.demo.app import DemoHandlers, build_app, launch_app
    from vigc.demo.examples import SAMPLE_IMAGES, find_images
    from vigc.demo.models import choose_models, load_demo_model

    options = (tuple(args.options), tuple(args.options2))
    chosen = choose_models(args.cfg_path, args.cfg_path2, (args.device0, args.device1), options)
    models = [load_demo_model(c.cfg_path, c.device, c.options, c.name) for c in chosen]
    if len({m.label for m in models}) < len(models):
        models[1].name += " (2)"
    examples = find_images(args.examples or SAMPLE_IMAGES)
    handlers = DemoHandlers(models, args.output_dir, args.max_upload_mb, args.max_pixels, args.step_delay)
    app = build_app(handlers, examples)
    allowed = [p.parent.resolve() for p in examples[:1]]
    launch_app(app, host=args.host, port=args.port, share=args.share, max_mb=args.max_upload_mb, allowed=allowed)
    return 0


def _quiet_libraries(verbose: bool) -> None:
    """Keep the log to the demo's own lines: the HTTP client logs every request Gradio makes to itself, and
    transformers draws a progress bar for every weight file."""
    for name in ("httpx", "httpcore", "uvicorn.access", "urllib3"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """``python vigc_demo.py ...``: this command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
