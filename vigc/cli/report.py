"""Data quality on synthetic scenes: VIG's answers against each VIC mode's.

The scenes' ground truth is exact, so every claim of an answer is checked.

examples:
  vigc report --model default --scenes 300 --seed 999
      held-out scenes, one QA per scene and task (conv, desc, comp) in each VIC mode, scored
  vigc report --model default --scenes 300 --modes default verify --sampled-vig
      VIG sampled for varied questions (run.samples_per_image's later samples), VIC correcting it
  vigc report --model default --scenes 50 --modes default --out report/default
      also write records.jsonl, report.md and report.json
  vigc report --records output/default/<run id> --ground-truth vigc/assets/sample_images
      score a generation run on images whose scenes.json is known

Prints, per task and side by side for VIG's answer and each mode's VIC answer: fully correct, answered, listing
errors, sentence precision, coverage, false claims, CHAIR, sentences per answer; the error rate by sentence index;
question diversity. See vigc/eval/shapes_report.py for every measure. `python -m vigc.eval.shapes_report` is the
same.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from vigc.cli.common import exit_on_error, standalone

# The VIC modes: the keys of vigc.eval.shapes_report.VIC_ANSWER_FIELDS (a test keeps them equal). Spelled out here
# so that `--help` lists them without importing the report, which imports torch.
VIC_MODES = ("compat", "default", "verify")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Which model and scenes, how to decode, or which existing run to score; how to print."""
    parser.add_argument("--model", default="default", help="'default' (the packaged model) or a config YAML")
    parser.add_argument("--finetuned", default=None, help="weights to apply over the model's")
    parser.add_argument("--scenes", type=int, default=200, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=999, help="seed of the held-out scenes (training used 0)")
    parser.add_argument("--modes", nargs="+", default=list(VIC_MODES), choices=VIC_MODES, help="VIC modes to compare")
    parser.add_argument("--beams", type=int, default=5, help="beams of every decoding")
    parser.add_argument("--max-len", type=int, default=250, help="max_len of every decoding (run.generate_cfg's)")
    parser.add_argument("--answer-length", type=int, default=4, help="compat: VIC steps")
    parser.add_argument(
        "--max-sentences", type=int, default=12, help="default, verify: most sentences per answer (generate_qa.yaml's)"
    )
    parser.add_argument(
        "--verify-margin",
        type=float,
        default=None,
        help="verify: how much more likely a rewrite must be (default: run.verify_margin's default)",
    )
    parser.add_argument(
        "--gen-style", choices=["vig", "vic"], default="vig", help="VIC prompt: instruction + question, or question"
    )
    parser.add_argument(
        "--question-starts",
        action="store_true",
        help="default, verify: conv and comp questions start with drawn words (run.question_starts)",
    )
    parser.add_argument(
        "--whole-output-vig",
        action="store_true",
        help="default mode with run.vig_question_only=false (VIG's beams ranked on the question with its answer)",
    )
    parser.add_argument(
        "--vic-early-stopping",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default, verify: the VIC steps' beam search ends once it holds num_beams sentences "
        "(run.vic_early_stopping; default: its default)",
    )
    parser.add_argument(
        "--sampled-vig",
        action="store_true",
        help="VIG sampled (temperature 0.9, top-p 0.9; seeded by --seed) as the later samples of "
        "run.samples_per_image draw it; the default and verify VIC steps keep the beams",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="scenes per batch")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="where the model runs")
    parser.add_argument("--records", type=Path, default=None, help="score this run folder / records file instead")
    parser.add_argument(
        "--ground-truth",
        default=None,
        help="scenes.json (or its folder) for --records; pkg://vigc/... or vigc/... names one inside the package",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as one JSON object, not tables")
    parser.add_argument("--out", type=Path, default=None, help="write records.jsonl, report.md and report.json here")


def run(args: argparse.Namespace) -> int:
    """Generate (or read) records, score them and print the report; one ``error:`` line (exit 2) on bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return exit_on_error(lambda: _report(args), os_error=str)


def _report(args: argparse.Namespace) -> int:
    import torch

    from vigc.errors import EvalInputError

    if args.records is not None and args.ground_truth is None:
        raise EvalInputError("--records needs --ground-truth (the scenes.json of the images, or its folder)")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        text, data, records = _score(args)
    except ValueError as exc:  # records that are not JSON, or none at all
        raise EvalInputError(str(exc)) from None
    finally:
        torch.set_num_threads(threads)  # called in-process (tests, notebooks): leave the caller's setting alone
    print(json.dumps(data, indent=1) if args.json else text)
    if args.out is not None:
        from vigc.eval.shapes_report import write_report

        write_report(args.out, records, text, data)
    return 0


def _score(args: argparse.Namespace) -> tuple[str, dict[str, object], list[dict[str, object]]]:
    """The report as text and as JSON data, and the records it scored."""
    from vigc.data.shapes import read_scenes
    from vigc.eval import shapes_report as report
    from vigc.generation.sources import resolve_package_path

    if args.records is not None:
        records = report.read_records(args.records)
        if not records:
            raise ValueError(f"no records in {args.records}")
        truth = Path(resolve_package_path(args.ground_truth, "--ground-truth"))
        scores = report.score_by_mode(records, read_scenes(_packaged(truth)))
        header = f"{len(records)} records from {args.records}"
    else:
        header, scores, records = report.generate_and_score(args)
    data = report.report_data(scores)
    text = header + "\n\n" + report.format_report(data)
    return text, report.json_safe({"header": header, **data}), records


def _packaged(path: Path) -> Path:
    """A relative ``vigc/...`` path that is not there from the working directory → the same path inside the
    installed package, as for ``--cfg-path`` (``--ground-truth vigc/assets/sample_images`` from any folder)."""
    if path.exists() or path.is_absolute() or path.parts[:1] != ("vigc",):
        return path
    import vigc

    packaged = Path(vigc.__file__).resolve().parent.joinpath(*path.parts[1:])
    return packaged if packaged.exists() else path


def main(argv: Sequence[str] | None = None) -> int:
    """This command with its own parser."""
    return standalone(__doc__, add_arguments, run, argv)
