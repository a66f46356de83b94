"""Every VIG + VIC output of a fixed workload, as JSON lines: run it before and after a speed change and compare
the files byte for byte (`cmp`), so a change that is meant to leave outputs alone is shown to.

    python bench/vic_records.py --out before.jsonl [--images 16] [--seed 999]
    # ... change the code ...
    python bench/vic_records.py --out after.jsonl && cmp before.jsonl after.jsonl

The workload: `--images` held-out synthetic scenes (seed 999) of the embedded default model, the three LLaVA
tasks, the shipped decoding settings (5 beams, max_len 250, min_len 1, answer_length 4, max_sentences 12), one
batch of 8 images at a time, in each setting of `SETTINGS`: compat, the default (VIG stops at its question), the
default with VIG's continued answer (`vig_answer`), the whole-output ranking (`vig_question_only: false`), the
VIC steps' early stopping (`vic_early_stopping`) and verify, with and without it. A line holds every field of each
`QAResult` and the run's work counters (LM steps, decoded tokens, vision-encoder passes), so a change in what is
decoded shows even where the texts agree. `--compare A B` then prints, per task, how many of setting B's final
answers and questions equal A's, and both settings' LM calls:

    python bench/vic_records.py --out es.jsonl --images 48 --settings default default+early_stopping \
        --compare default default+early_stopping
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from vic_speed import PATHS, load_scene_pixels  # the same workload and paths as the speed bench (bench/ is on the path)

from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.generation.vic import GenerationStats, VICSettings, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import vigc_default

# vic_speed's paths, plus VIG's continued answer and verify mode (with and without early stopping).
SETTINGS: dict[str, dict[str, object]] = {
    **PATHS,
    "default+vig_answer": {"mode": "default", "vig_answer": True},
    "verify": {"mode": "verify"},
    "verify+early_stopping": {"mode": "verify", "vic_early_stopping": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--compare", nargs=2, choices=list(SETTINGS), metavar=("A", "B"), help="two of --settings")
    args = parser.parse_args()
    if args.compare and not set(args.compare) <= set(args.settings):
        parser.error("--compare needs two settings that --settings runs")
    torch.set_num_threads(1)
    model = vigc_default()
    pixels = load_scene_pixels(model, args.images, args.seed)
    decoding = DecodingSettings.from_lavis(num_beams=5, max_length=250, min_length=1)
    with args.out.open("w", encoding="utf-8") as out, torch.no_grad():
        for name in args.settings:
            settings = VICSettings(vig_decoding=decoding, answer_length=4, max_sentences=12, **SETTINGS[name])  # type: ignore[arg-type]
            for task, instruction in GENERATION_INSTRUCTIONS.items():
                stats = GenerationStats()
                for start in range(0, args.images, args.batch_size):
                    batch = pixels[start : start + args.batch_size]
                    results = vig_vic(model, batch, [instruction] * batch.shape[0], settings, stats)
                    for i, result in enumerate(results):
                        line = {"setting": name, "task": task, "image": start + i, **asdict(result)}
                        out.write(json.dumps(line, sort_keys=True) + "\n")
                out.write(json.dumps({"setting": name, "task": task, "stats": asdict(stats)}, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    if args.compare:
        compare(args.out, *args.compare)


def compare(path: Path, first: str, second: str) -> None:
    """Per task: how many final answers and questions of `second` equal `first`'s, and each one's LM calls."""
    results: dict[tuple[str, str], dict[int, dict[str, object]]] = {}
    steps: dict[tuple[str, str], int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "stats" in record:
            steps[record["setting"], record["task"]] = record["stats"]["lm_steps"]
        else:
            results.setdefault((record["setting"], record["task"]), {})[record["image"]] = record
    for task in GENERATION_INSTRUCTIONS:
        a, b = results[first, task], results[second, task]
        same = sum(a[i]["answer"] == b[i]["answer"] for i in a)
        questions = sum(a[i]["question"] == b[i]["question"] for i in a)
        print(
            f"{task}: {second} vs {first}: final answers identical {same}/{len(a)}, questions identical "
            f"{questions}/{len(a)}, LM calls {steps[second, task]} vs {steps[first, task]}"
        )


if __name__ == "__main__":
    main()
