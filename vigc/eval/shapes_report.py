"""Data quality of a VIGC model on held-out synthetic scenes: VIG-only answers against compat and default VIC.

    python -m vigc.eval.shapes_report --model default --scenes 200 --seed 999

draws `--scenes` scenes with a seed not used in training, generates one QA per scene and LLaVA task (conv, desc,
comp) with VIG + VIC in both modes (`compat`: the original loop; `default`: ours) with the shipped decoding
settings (5 beams, max_len 250, 4 VIC steps in compat), and prints the metrics of `vigc.eval.shapes_metrics` side
by side for the VIG answer (`original_answer`, the same in both modes), the compat VIC answer and the default VIC
answer. `--out DIR` also writes every record and the table.

    python -m vigc.eval.shapes_report --records output/default/<run id> --ground-truth vigc/assets/sample_images

scores an existing generation run instead (e.g. `evaluate.py` on the packaged sample images, whose `scenes.json`
lies beside them, or on images written by `python -m vigc.data.shapes`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vigc.data.processors import EvalImageProcessor
from vigc.data.shapes import make_scenes, read_scenes
from vigc.data.shapes_questions import TASKS
from vigc.data.shapes_scene import Scene, render_scene
from vigc.errors import ConfigError, VIGCError
from vigc.eval.shapes_metrics import QAScore, Summary, score_record, summarize
from vigc.generation.prompts import GENERATION_INSTRUCTIONS
from vigc.generation.vic import GenerationStats, QAResult, VICSettings, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "ModeRun",
    "build_model_by_name",
    "format_table",
    "generate_records",
    "main",
    "read_records",
    "score_records",
]

logger = logging.getLogger(__name__)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("parse_rate", "parse"),
    ("question_valid", "q valid"),
    ("correct", "correct"),
    ("conclusion_correct", "conclusion"),
    ("sentence_precision", "sent prec"),
    ("coverage", "coverage"),
    ("chair_i", "CHAIR_i"),
    ("chair_s", "CHAIR_s"),
    ("chair_i_attr", "CHAIR_i+attr"),
    ("chair_s_attr", "CHAIR_s+attr"),
    ("sentences_per_answer", "sent/ans"),
)


@dataclass
class ModeRun:
    """One generation mode's records and cost.

    Attributes:
        mode: "compat" or "default".
        records: One record per (scene, task).
        seconds: Wall time of the generation.
        stats: Decoding work done.
    """

    mode: str
    records: list[dict[str, Any]]
    seconds: float
    stats: GenerationStats


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def generate_records(model: VIGCModel, scenes: Sequence[Scene], settings: VICSettings, batch_size: int = 8) -> ModeRun:
    """VIG + VIC for every (scene, task), batched; returns records with the generation task's field names."""
    processor = EvalImageProcessor(int(model.vision_model.config.image_size))  # type: ignore[arg-type]
    pixels = {scene.image: processor(render_scene(scene)) for scene in scenes}
    work = [(scene, task) for task in TASKS for scene in scenes]
    stats = GenerationStats()
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for batch in _batches(work, batch_size):
        images = torch.stack([pixels[scene.image] for scene, _ in batch]).to(model.device)
        instructions = [GENERATION_INSTRUCTIONS[task] for _, task in batch]
        with torch.no_grad():
            results = vig_vic(model, images, instructions, settings, stats)
        records.extend(_record(scene, task, settings.mode, r) for (scene, task), r in zip(batch, results, strict=True))
    return ModeRun(settings.mode, records, time.perf_counter() - start, stats)


def _record(scene: Scene, task: str, mode: str, result: QAResult) -> dict[str, Any]:
    return {
        "image": scene.image,
        "task": task,
        "mode": mode,
        "question": result.question,
        "original_answer": result.original_answer,
        "answer": result.answer,
        "valid": result.valid,
        "stop_reason": result.stop_reason,
        "vig_output": result.vig_output,
    }


def score_records(records: Sequence[dict[str, Any]], scenes: dict[str, Scene]) -> list[QAScore]:
    """Score records against the scene of their image (matched by file name)."""
    scored = []
    for record in records:
        scene = scenes.get(Path(str(record["image"])).name)
        if scene is None:
            raise ValueError(f"no ground truth for image {record['image']!r}: is --ground-truth the images' scenes?")
        scored.append(score_record(record, scene))
    return scored


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def format_table(rows: Sequence[tuple[str, Summary]]) -> str:
    """A Markdown table: one row per answer source, percentages (sentences per answer as a number)."""
    header = ["answers", *(label for _, label in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, summary in rows:
        values = summary.as_dict()
        cells = [_cell(values[key]) if key != "sentences_per_answer" else f"{values[key]:.2f}" for key, _ in COLUMNS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def _task_table(rows: Sequence[tuple[str, Sequence[QAScore], str]]) -> str:
    header = "| answers | " + " | ".join(f"correct {t}" for t in TASKS) + " |"
    lines = [header, "|" + "---|" * (len(TASKS) + 1)]
    for name, scores, answer_field in rows:
        cells = [_cell(summarize([s for s in scores if s.task == t], answer_field).correct) for t in TASKS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a generation run folder (`merged.jsonl`, else every `records.*.jsonl`) or of one JSON(L) file."""
    if path.is_dir():
        merged = path / "merged.jsonl"
        files = [merged] if merged.is_file() else sorted(path.glob("records.*.jsonl"))
    else:
        files = [path]
    records: list[dict[str, Any]] = []
    for file in files:
        text = file.read_text("utf-8")
        if file.suffix == ".json":
            records.extend(json.loads(text))
        else:
            records.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return records


def build_model_by_name(name: str, finetuned: str | None, device: str, options: Sequence[str] = ()) -> VIGCModel:
    """The packaged default model (`name` "default") or the model section of a config YAML, in eval mode.

    Args:
        name: "default" or the path of a config whose `model` section names a builder.
        finetuned: Weights to load over the model's (`model.finetuned`), or None.
        device: Where to put the model ("cpu", "cuda", "cuda:1").
        options: `section.key=value` overrides of the config, as `evaluate.py --options` takes them.

    Raises:
        ConfigError: If the config is missing or wrong, or options are given for the default model.
    """
    from vigc.builtins import register_all
    from vigc.config import build_model, load_config

    register_all()
    if name == "default":
        if options:
            raise ConfigError("--options needs a config file as --model; the default model has none.")
        from vigc.models.default_model import vigc_default

        return vigc_default(device=device, **({"finetuned": finetuned} if finetuned else {}))
    cfg = load_config(name, [*options, *([f"model.finetuned={finetuned}"] if finetuned else [])])
    model: VIGCModel = build_model(cfg.model, source=name)
    return model.to(device).eval()


def _settings(mode: str, args: argparse.Namespace) -> VICSettings:
    decoding = DecodingSettings.from_lavis(num_beams=args.beams, max_length=args.max_len, min_length=1)
    return VICSettings(
        mode=mode,
        answer_length=args.answer_length,
        max_sentences=args.max_sentences,
        vig_decoding=decoding,
        reencode_images=mode == "compat",  # the original ran the vision encoder at every step
        gen_style=args.gen_style,
    )


def _report(runs: dict[str, tuple[list[QAScore], str]]) -> str:
    rows = [(name, summarize(scores, answer_field)) for name, (scores, answer_field) in runs.items()]
    tasks = [(name, scores, answer_field) for name, (scores, answer_field) in runs.items()]
    return format_table(rows) + "\n\n" + _task_table(tasks)


def _generate_report(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    model = build_model_by_name(args.model, args.finetuned, args.device)
    scenes = make_scenes(args.scenes, args.seed)
    by_image = {scene.image: scene for scene in scenes}
    runs = {mode: generate_records(model, scenes, _settings(mode, args), args.batch_size) for mode in args.modes}
    scored = {mode: score_records(run.records, by_image) for mode, run in runs.items()}
    table: dict[str, tuple[list[QAScore], str]] = {
        "VIG only (original_answer)": (scored[args.modes[-1]], "original_answer")
    }
    for mode in args.modes:
        table[f"{mode} VIC (answer)"] = (scored[mode], "answer")
    n = len(scenes) * len(TASKS)
    timing = [
        f"{mode}: {run.seconds / n:.3f} s/QA, {run.stats.decoded_tokens / n:.0f} LLM tokens/QA (positions x beams), "
        f"{run.stats.vision_calls} vision-encoder calls"
        for mode, run in runs.items()
    ]
    header = (
        f"{len(scenes)} held-out scenes (seed {args.seed}) x {len(TASKS)} tasks = {n} QA per mode; "
        f"{args.beams} beams, max_len {args.max_len}, answer_length {args.answer_length} (compat), "
        f"max_sentences {args.max_sentences} (default), gen_style {args.gen_style}, {torch.get_num_threads()} threads"
    )
    text = header + "\n\n" + _report(table) + "\n\n" + "\n".join(timing)
    return text, [record for run in runs.values() for record in run.records]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="'default' (the packaged model) or a config YAML")
    parser.add_argument("--finetuned", default=None, help="weights to apply over the model's")
    parser.add_argument("--scenes", type=int, default=200, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=999, help="seed of the held-out scenes (training used 0)")
    parser.add_argument("--modes", nargs="+", default=["compat", "default"], choices=["compat", "default"])
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=250)
    parser.add_argument("--answer-length", type=int, default=4, help="compat: VIC steps")
    parser.add_argument("--max-sentences", type=int, default=8, help="default: most sentences per answer")
    parser.add_argument(
        "--gen-style", choices=["vig", "vic"], default="vig", help="VIC prompt: instruction + question, or question"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--records", type=Path, default=None, help="score this run folder / records file instead")
    parser.add_argument("--ground-truth", type=Path, default=None, help="scenes.json (or its folder) for --records")
    parser.add_argument("--out", type=Path, default=None, help="write records.jsonl and report.md here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (or read) records, score them and print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.records is not None and args.ground_truth is None:
        raise SystemExit("--records needs --ground-truth (the scenes.json of the images, or its folder)")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if args.records is not None:
            records = read_records(args.records)
            scores = score_records(records, read_scenes(args.ground_truth))
            answers = {"VIG only (original_answer)": (scores, "original_answer"), "VIC (answer)": (scores, "answer")}
            text = f"{len(records)} records from {args.records}\n\n{_report(answers)}"
        else:
            text, records = _generate_report(args)
        print(text)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
            (args.out / "report.md").write_text(text + "\n", encoding="utf-8")
    except (VIGCError, OSError, ValueError) as exc:  # a missing file, a bad config, records without ground truth
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # called in-process (tests, notebooks): leave the caller's setting alone
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
