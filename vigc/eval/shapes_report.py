"""Data quality of a VIGC model on held-out synthetic scenes: VIG-only answers against compat, default, verify VIC.

    vigc report --model default --scenes 200 --seed 999

draws `--scenes` scenes with a seed not used in training, generates one QA per scene and LLaVA task (conv, desc,
comp) with VIG + VIC in each mode of `--modes` (`compat`: the original loop; `default`: ours; `verify`: VIG's
sentences kept unless a VIC re-read clearly prefers its own) with the shipped
decoding settings (5 beams, max_len 250, 4 VIC steps in compat), scores every answer strictly against the
scenes' ground truth (`vigc.eval.shapes_metrics`) and prints, per task and side by side for VIG's own answer
(`original_answer`: compat and verify keep VIG's whole output; default mode, as shipped, stops VIG at its question
and decodes VIG's answer to it as a continuation, `run.vig_answer`, a second VIG row; `--whole-output-vig` ranks
VIG's whole output in default mode too, `run.vig_question_only: false`) and each mode's VIC answer:

* fully correct (valid question, every sentence true, the answering sentence, every listing exact, nothing twice),
  answered (the answering sentence present), the shares of answers that omit a listed object, list an extra one
  or list one twice, sentence precision, coverage, false claims per answer, CHAIR_i / CHAIR_s with and without
  attributes, sentences per answer;
* the error rate by sentence index (share of i-th sentences unparsed or false: does an answer drift late?);
* question diversity per generation mode and task (distinct questions per 100, question-type entropy in bits).

`--json` prints the same numbers as one JSON object instead of Markdown tables; `--out DIR` writes every record
(`records.jsonl`) and the report (`report.md`, `report.json`).

    vigc report --records output/default/<run id> --ground-truth vigc/assets/sample_images

scores an existing generation run instead (e.g. `evaluate.py` on the packaged sample images, whose `scenes.json`
lies beside them, on images written by `python -m vigc.data.shapes`, or a `records.jsonl` this report wrote): one
VIC column per generation mode found in the records (`mode`, or the run's `provenance.vic.mode`), and a VIG column
when the records hold VIG's answers (a default-mode run keeps them with `run.vig_answer: true`).

The command line is `vigc.cli.report` (`python -m vigc.eval.shapes_report` takes the same arguments); this module
holds the work. The answer columns come from `VIC_ANSWER_FIELDS` (VIC mode → the record field holding its answer):
a new VIC mode is one entry there.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.data.shapes import make_scenes
from vigc.data.shapes_questions import TASKS, question_starts
from vigc.data.shapes_scene import Scene, render_scene
from vigc.errors import ConfigError
from vigc.eval.shapes_metrics import QAScore, error_by_sentence, question_diversity, score_record, summarize
from vigc.generation.records import RECORDS_GLOB, read_run_records
from vigc.generation.vic import GenerationStats, QAResult, VICSettings, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "VIC_ANSWER_FIELDS",
    "AnswerSource",
    "ModeRun",
    "answer_sources",
    "build_model_by_name",
    "format_report",
    "generate_and_score",
    "generate_records",
    "json_safe",
    "read_records",
    "report_data",
    "score_by_mode",
    "score_records",
    "write_report",
]

logger = logging.getLogger(__name__)

# VIC mode → the record field that holds its answer (VIG's own answer is always "original_answer").
VIC_ANSWER_FIELDS: dict[str, str] = {"compat": "answer", "default": "answer", "verify": "answer"}
VIG_FIELD = "original_answer"
ALL_TASKS = "all"

# Summary field → column label; the values are percentages except the per-answer means in `_MEANS`.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("parse_rate", "parse"),
    ("question_valid", "q valid"),
    ("fully_correct", "fully correct"),
    ("answered", "answered"),
    ("omitted", "omits"),
    ("extra", "extra"),
    ("listed_twice", "twice"),
    ("sentence_precision", "sent prec"),
    ("coverage", "coverage"),
    ("false_claims", "false/ans"),
    ("chair_i", "CHAIR_i"),
    ("chair_s", "CHAIR_s"),
    ("chair_i_attr", "CHAIR_i+attr"),
    ("chair_s_attr", "CHAIR_s+attr"),
    ("sentences_per_answer", "sent/ans"),
)
_MEANS = ("false_claims", "sentences_per_answer")
MAX_CURVE_SENTENCES = 10  # columns of the sentence-index table (the JSON holds every index)


@dataclass(frozen=True)
class AnswerSource:
    """One answer column: the answers in `field` of the records generated in `mode`.

    Attributes:
        label: Row name in the report.
        mode: The generation mode of the records (None: a run that does not say).
        field: The record field holding the answer.
    """

    label: str
    mode: str | None
    field: str


def answer_sources(modes: Sequence[str | None], vig_modes: Sequence[str | None] | None = None) -> list[AnswerSource]:
    """VIG's own answers, then each mode's VIC answer.

    VIG's rows come from `vig_modes` (by default the last mode): "VIG only" from the last of them that is not
    default mode (compat and verify decode the same whole VIG output), and "default VIG only" from default mode's
    records when they hold VIG's answers too: there VIG stops at its question and answers it as a continuation, so
    both its questions and its answers can differ (with `--whole-output-vig` they are the compat ones)."""
    chosen = list(vig_modes) if vig_modes is not None else [modes[-1]]
    others = [mode for mode in chosen if mode != "default"]
    sources = []
    if chosen:
        sources.append(AnswerSource(f"VIG only ({VIG_FIELD})", (others or chosen)[-1], VIG_FIELD))
    if others and "default" in chosen:
        sources.append(AnswerSource(f"default VIG only ({VIG_FIELD})", "default", VIG_FIELD))
    for mode in modes:
        field = VIC_ANSWER_FIELDS.get(mode, "answer") if mode else "answer"
        sources.append(AnswerSource(f"{mode} VIC ({field})" if mode else f"VIC ({field})", mode, field))
    return sources


@dataclass
class ModeRun:
    """One generation mode's records and cost.

    Attributes:
        mode: A key of `VIC_ANSWER_FIELDS`.
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


def generate_records(
    model: VIGCModel,
    scenes: Sequence[Scene],
    settings: VICSettings,
    batch_size: int = 8,
    draw_question_starts: bool = False,
) -> ModeRun:
    """VIG + VIC for every (scene, task), batched; returns records with the generation task's field names.

    With `draw_question_starts` (default and verify modes), conv and comp questions start with words drawn, seeded per
    scene and task, from the world's question kinds (`shapes_questions.question_starts`), as `run.question_starts`
    does in a generation run.
    """
    processor = EvalImageProcessor(int(model.vision_model.config.image_size))  # type: ignore[arg-type]
    pixels = {scene.image: processor(render_scene(scene)) for scene in scenes}
    work = [(scene, task) for task in TASKS for scene in scenes]
    stats = GenerationStats()
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    for batch in _batches(work, batch_size):
        images = torch.stack([pixels[scene.image] for scene, _ in batch]).to(model.device)
        instructions = [GENERATION_INSTRUCTIONS[task] for _, task in batch]
        # compat is the original's prompt: no question starts there
        use_starts = draw_question_starts and settings.mode != "compat"
        starts = [_question_start(scene, task) for scene, task in batch] if use_starts else None
        with torch.no_grad():
            results = vig_vic(model, images, instructions, settings, stats, question_starts=starts)
        records.extend(_record(scene, task, settings.mode, r) for (scene, task), r in zip(batch, results, strict=True))
    return ModeRun(settings.mode, records, time.perf_counter() - start, stats)


def _question_start(scene: Scene, task: str) -> str | None:
    starts = question_starts(task)
    if task == "desc" or not starts:  # one kind of question: nothing to vary
        return None
    words, weights = list(starts), list(starts.values())
    return random.Random(f"{scene.image}:{task}").choices(words, weights=weights)[0]


def _record(scene: Scene, task: str, mode: str, result: QAResult) -> dict[str, Any]:
    return {
        "image": scene.image,
        "task": task,
        "mode": mode,
        "question": result.question,
        "original_answer": result.original_answer,
        "answer": result.answer,
        # the mode's own answer field, when it is not "answer"
        VIC_ANSWER_FIELDS[mode]: getattr(result, VIC_ANSWER_FIELDS[mode]),
        "valid": result.valid,
        "stop_reason": result.stop_reason,
        "vig_output": result.vig_output,
    }


def score_records(
    records: Sequence[dict[str, Any]], scenes: dict[str, Scene], fields: Sequence[str] = (VIG_FIELD, "answer")
) -> list[QAScore]:
    """Score the answer `fields` of records against the scene of their image (matched by file name)."""
    scored = []
    for record in records:
        scene = scenes.get(Path(str(record["image"])).name)
        if scene is None:
            raise ValueError(f"no ground truth for image {record['image']!r}: is --ground-truth the images' scenes?")
        scored.append(score_record(record, scene, fields))
    return scored


def _record_mode(record: dict[str, Any]) -> str | None:
    """The VIC mode a record was generated in: ours say it; a generation run's provenance does."""
    if record.get("mode"):
        return str(record["mode"])
    provenance = record.get("provenance")
    vic = provenance.get("vic") if isinstance(provenance, dict) else None
    return str(vic["mode"]) if isinstance(vic, dict) and vic.get("mode") else None


def score_by_mode(records: Sequence[dict[str, Any]], scenes: dict[str, Scene]) -> dict[str | None, list[QAScore]]:
    """Records grouped by generation mode (known modes first), each scored on VIG's answer and its mode's answer."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(_record_mode(record), []).append(record)
    order = [m for m in VIC_ANSWER_FIELDS if m in groups] + [m for m in groups if m not in VIC_ANSWER_FIELDS]
    return {
        mode: score_records(groups[mode], scenes, (VIG_FIELD, VIC_ANSWER_FIELDS.get(mode or "", "answer")))
        for mode in order
    }


def _by_task(scores: Sequence[QAScore]) -> dict[str, list[QAScore]]:
    tasks = {ALL_TASKS: list(scores)}
    tasks.update({task: [s for s in scores if s.task == task] for task in TASKS})
    return tasks


def report_data(scores: dict[str | None, list[QAScore]]) -> dict[str, Any]:
    """Every number of the report: per task ("all" first) and answer source; diversity per mode and task.

    VIG's answers come from the modes whose records hold them (`answer_sources`); without any (runs that do not
    keep VIG's answer, `run.vig_answer: false`), the report has no VIG row."""
    with_vig = [mode for mode, mode_scores in scores.items() if any(VIG_FIELD in s.answers for s in mode_scores)]
    sources = answer_sources(list(scores), with_vig)
    summary: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, Any]] = {}
    for source in sources:
        for task, task_scores in _by_task(scores[source.mode]).items():
            summary.setdefault(task, {})[source.label] = summarize(task_scores, source.field).as_dict()
            curve = error_by_sentence(task_scores, source.field)
            curves.setdefault(task, {})[source.label] = [{"wrong": w, "total": n} for w, n in curve]
    diversity = {
        str(mode or "run"): {task: asdict(question_diversity(s)) for task, s in _by_task(mode_scores).items()}
        for mode, mode_scores in scores.items()
    }
    return {
        "records": sum(len(s) for s in scores.values()),
        "answers": [asdict(s) for s in sources],
        "summary": summary,
        "sentence_errors": curves,
        "diversity": diversity,
    }


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _summary_table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    header = ["task", "answers", *(label for _, label in COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, rows in summary.items():
        for name, values in rows.items():
            cells = [f"{values[k]:.2f}" if k in _MEANS else _pct(values[k]) for k, _ in COLUMNS]
            lines.append("| " + " | ".join([task, name, *cells]) + " |")
    return "\n".join(lines)


def _curve_table(curves: dict[str, dict[str, list[dict[str, int]]]]) -> str:
    width = min(MAX_CURVE_SENTENCES, max((len(c) for rows in curves.values() for c in rows.values()), default=0))
    header = ["task", "answers", *(f"s{i + 1}" for i in range(width))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, rows in curves.items():
        for name, curve in rows.items():
            cells = [f"{_pct(p['wrong'] / p['total'])} ({p['total']})" for p in curve[:width]]
            lines.append("| " + " | ".join([task, name, *cells, *[""] * (width - len(cells))]) + " |")
    return "\n".join(lines)


def _diversity_table(diversity: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| mode | task | questions | distinct/100 | type entropy (bits) | types |", "|---|---|---|---|---|---|"]
    for mode, tasks in diversity.items():
        for task, d in tasks.items():
            entropy = "n/a" if math.isnan(d["type_entropy_bits"]) else f"{d['type_entropy_bits']:.2f}"
            distinct = "n/a" if math.isnan(d["distinct_per_100"]) else f"{d['distinct_per_100']:.1f}"
            lines.append(f"| {mode} | {task} | {d['questions']} | {distinct} | {entropy} | {len(d['types'])} |")
    return "\n".join(lines)


def format_report(data: dict[str, Any]) -> str:
    """The report's Markdown tables: per task and answer source, the sentence-index curve, question diversity."""
    return "\n\n".join(
        [
            "Per task and answer (percentages; false/ans and sent/ans per answer):",
            _summary_table(data["summary"]),
            "Error rate by sentence index (% of i-th sentences unparsed or false, and how many there are):",
            _curve_table(data["sentence_errors"]),
            "Question diversity:",
            _diversity_table(data["diversity"]),
        ]
    )


def json_safe(value: Any) -> Any:
    """NaN (undefined ratios) → null, so that the output is valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a generation run folder (as `read_run_records` reads them: each key once; a folder holding only
    its `merged.jsonl` is read from that) or of one JSON or JSONL file (a report's `records.jsonl`: no keys)."""
    if path.is_dir():
        if (path / "merged.jsonl").is_file() and not any(path.glob(RECORDS_GLOB)):
            path = path / "merged.jsonl"
        else:
            return read_run_records(path)
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


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
    import vigc.models.builders  # noqa: F401  (registers the named model builders)
    import vigc.models.default_model  # noqa: F401
    from vigc.config import build_model, load_config

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
    # The flags a user leaves unset (None) take the run settings' defaults.
    margin = VICSettings.verify_margin if args.verify_margin is None else args.verify_margin
    early_stopping = VICSettings.vic_early_stopping if args.vic_early_stopping is None else args.vic_early_stopping
    settings = VICSettings(
        mode=mode,
        answer_length=args.answer_length,
        max_sentences=args.max_sentences,
        vig_decoding=decoding,
        reencode_images=mode == "compat",  # the original ran the vision encoder at every step
        gen_style=args.gen_style,
        verify_margin=margin,
        # The VIG-only rows need VIG's answer: in default mode VIG's answer to its question, decoded after it (the
        # shipped default's QA); `--whole-output-vig` ranks VIG's whole output there instead.
        vig_answer=True,
        vig_question_only=not args.whole_output_vig,
        vic_early_stopping=early_stopping,
    )
    return settings.with_sampled_vig() if args.sampled_vig else settings


def generate_and_score(args: argparse.Namespace) -> tuple[str, dict[str | None, list[QAScore]], list[dict[str, Any]]]:
    """Draw the held-out scenes, generate in each mode of ``args.modes`` and score (``vigc report``'s arguments).

    Returns:
        The report's header (settings and speed), the scores by mode and every record.
    """
    model = build_model_by_name(args.model, args.finetuned, args.device)
    scenes = make_scenes(args.scenes, args.seed)
    by_image = {scene.image: scene for scene in scenes}
    settings = {mode: _settings(mode, args) for mode in args.modes}
    runs = {}
    for mode, mode_settings in settings.items():
        torch.manual_seed(args.seed)  # --sampled-vig: each mode draws the same way
        runs[mode] = generate_records(model, scenes, mode_settings, args.batch_size, args.question_starts)
    records = [record for run in runs.values() for record in run.records]
    n = len(scenes) * len(TASKS)
    timing = "\n".join(
        f"{mode}: {run.seconds / n:.3f} s/QA, {run.stats.decoded_tokens / n:.0f} LLM tokens/QA (positions x beams), "
        f"{run.stats.vision_calls} vision-encoder calls"
        for mode, run in runs.items()
    )
    shared = next(iter(settings.values()))  # the settings every mode has in common
    header = (
        f"{len(scenes)} held-out scenes (seed {args.seed}) x {len(TASKS)} tasks = {n} QA per mode; "
        f"{args.beams} beams, max_len {args.max_len}, answer_length {args.answer_length} (compat), "
        f"max_sentences {args.max_sentences} (default, verify), verify_margin {shared.verify_margin}, "
        f"gen_style {args.gen_style}, question starts {'drawn' if args.question_starts else 'off'}, "
        f"default VIG {'ranks its whole output' if args.whole_output_vig else 'stops at its question'}, "
        f"VIC early stopping {'on' if shared.vic_early_stopping else 'off'} (default, verify), "
        f"VIG {'sampled (as samples_per_image draws later samples)' if args.sampled_vig else 'as VIC decodes'}, "
        f"{torch.get_num_threads()} threads\n" + timing
    )
    return header, score_by_mode(records, by_image), records


def write_report(out: Path, records: Sequence[dict[str, Any]], text: str, data: dict[str, Any]) -> None:
    """Write ``records.jsonl``, ``report.md`` (`text`) and ``report.json`` (`data`) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (out / "report.md").write_text(text + "\n", encoding="utf-8")
    (out / "report.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":  # the command line is the top layer: imported only when run as a program
    from vigc.cli.report import main

    sys.exit(main())
