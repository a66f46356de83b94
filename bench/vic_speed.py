"""VIC speed: the original algorithm (compat) against the default VIC, and our VIG against transformers' generate.

Four VIC paths run side by side in one process on the same tiny model and the same images, with the shipped
configs' decoding settings (5 beams, max_len 250, min_len 1, answer_length 4), their repeats interleaved after an
untimed warm-up: `compat` (the original loop, the vision encoder run at every step as the original did), `default`
(the shipped default: VIG stops at the end of its question, the VIC steps write the answer),
`default+early_stopping` (`run.vic_early_stopping: true`: the VIC steps' beam search ends an input once it holds 5
finished sentences) and `default+whole_output` (`run.vig_question_only: false`: under beam search VIG decodes its
whole output, the question ranked together with its answer, as the default did before); `--paths` picks some
(compat always runs: the ratios are against it). Prints, per QA and per LLaVA task: wall
and CPU time (the process's CPU time is less disturbed by other jobs on a shared machine), LLM tokens decoded
(decoding positions x beams), vision-encoder passes per image, the speed-ups and how many final answers and
questions two paths share.

    python bench/vic_speed.py [--model default] [--tasks conv desc comp] [--images 8] [--repeats 3] [--threads 1]
                              [--paths default default+early_stopping] [--skip-vig]

`--model default` (the default) is the embedded default model on held-out synthetic scenes (seed 999), which
writes multi-sentence answers; `--model fixture` is the parity fixture's tiny model on its own images
(`--fixture ../shared/fixtures/vigc_reference`), trained on outputs of at most 29 tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageOps
from transformers import InstructBlipConfig, InstructBlipForConditionalGeneration
from transformers.utils import logging as hf_logging

from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.data.shapes import make_scenes
from vigc.data.shapes_scene import render_scene
from vigc.generation.vic import GenerationStats, QAResult, VICSettings, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import vigc_default
from vigc.models.vigc_model import VIGCModel
from vigc.tools.check_parity import build_model

REPO = Path(__file__).resolve().parents[1]


def load_pixels(fixture: Path, count: int) -> torch.Tensor:
    """The fixture's PNGs, mirrored and rotated to make `count` distinct images."""
    size = int(torch.load(fixture / "inputs" / "pixels.pt", weights_only=True).shape[-1])
    base = [Image.open(p).convert("RGB") for p in sorted((fixture / "images").glob("*.png"))]
    variants = [lambda im: im, ImageOps.mirror, lambda im: im.rotate(90, expand=True), ImageOps.flip]
    images = [variants[(i // len(base)) % len(variants)](base[i % len(base)]) for i in range(count)]
    return torch.stack([EvalImageProcessor(size)(im) for im in images])


def load_scene_pixels(model: VIGCModel, count: int, seed: int) -> torch.Tensor:
    """`count` held-out synthetic scenes, at the model's image size."""
    processor = EvalImageProcessor(int(model.vision_model.config.image_size))  # type: ignore[arg-type]
    return torch.stack([processor(render_scene(scene)) for scene in make_scenes(count, seed)])


@dataclass
class ModeRun:
    """One VIC path's runs on one task: wall and CPU seconds of each repeat, the last results, the work done."""

    settings: VICSettings
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    results: list[QAResult] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


# The paths compared: the original algorithm (the vision encoder run at every step, as the original did), the
# shipped default VIC (VIG stops at the end of its question), the default with the VIC steps' early stopping
# (`run.vic_early_stopping: true`) and with `run.vig_question_only: false` (VIG's whole output under beam search,
# the question ranked with its answer: the default before question-only).
PATHS: dict[str, dict[str, object]] = {
    "compat": {"mode": "compat", "reencode_images": True},
    "default": {"mode": "default"},
    "default+early_stopping": {"mode": "default", "vic_early_stopping": True},
    "default+whole_output": {"mode": "default", "vig_question_only": False},
}


def vic_comparison(model: VIGCModel, pixels: torch.Tensor, task: str, args: argparse.Namespace) -> dict[str, ModeRun]:
    """The chosen paths on one LLaVA task, repeats interleaved (a load change on a shared machine hits every path
    alike); prints the table and returns the runs."""
    decoding = DecodingSettings.from_lavis(num_beams=args.beams, max_length=args.max_len, min_length=1)
    instructions = [GENERATION_INSTRUCTIONS[task]] * pixels.shape[0]
    runs = {
        path: ModeRun(
            VICSettings(
                answer_length=args.answer_length,
                max_sentences=args.answer_length,
                vig_decoding=decoding,
                **options,  # type: ignore[arg-type]
            )
        )
        for path, options in PATHS.items()
        if path in args.paths
    }
    if args.warmup:  # one untimed run of each path: first calls pay for allocations and lazily built tables
        for run in runs.values():
            vig_vic(model, pixels, instructions, run.settings)
    for _ in range(args.repeats):
        for run in runs.values():
            wall, cpu = time.perf_counter(), time.process_time()
            run.results = vig_vic(model, pixels, instructions, run.settings, run.stats)
            run.wall.append(time.perf_counter() - wall)
            run.cpu.append(time.process_time() - cpu)
    print_table(task, runs, pixels.shape[0], args)
    return runs


def per_qa(run: ModeRun, n: int) -> tuple[float, float]:
    """Median wall and CPU seconds per QA."""
    return statistics.median(run.wall) / n, statistics.median(run.cpu) / n


def print_table(task: str, runs: dict[str, ModeRun], n: int, args: argparse.Namespace) -> None:
    print(f"\nVIC, task {task}: {n} images, {args.beams} beams, max_len {args.max_len}, {args.answer_length} steps")
    header = f"{'path':<23}{'wall s/QA':>10}{'CPU s/QA':>10}{'tokens/QA':>11}{'encoder passes/image':>22}"
    print(header + f"{'valid':>7}{'sentences/answer':>18}")
    for path, run in runs.items():
        wall, cpu = per_qa(run, n)
        sentences = sum(len(r.steps) for r in run.results) / n
        print(
            f"{path:<23}{wall:>10.3f}{cpu:>10.3f}{run.stats.decoded_tokens / args.repeats / n:>11.0f}"
            f"{run.stats.images_encoded / args.repeats / n:>22.1f}{sum(r.valid for r in run.results):>7}"
            f"{sentences:>18.1f}"
        )
    # Every path against compat, and each variant of the default against the default.
    pairs = [(path, "compat") for path in runs if path != "compat"]
    pairs += [(path, "default") for path in runs if path.startswith("default+") and "default" in runs]
    for fast, slow in pairs:
        new, other = runs[fast], runs[slow]
        wall_ratio = per_qa(other, n)[0] / per_qa(new, n)[0]
        cpu_ratio = per_qa(other, n)[1] / per_qa(new, n)[1]
        same = sum(a.answer == b.answer for a, b in zip(other.results, new.results, strict=True))
        questions = sum(a.question == b.question for a, b in zip(other.results, new.results, strict=True))
        print(
            f"{fast} vs {slow}: speed-up {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU; "
            f"final answers identical {same}/{n}, questions identical {questions}/{n}"
        )


def hf_instructblip(model: VIGCModel) -> InstructBlipForConditionalGeneration:
    """transformers' own InstructBLIP with exactly our weights (the parameter names are the same)."""
    vision, qformer = model.vision_model.config, model.qformer.config
    config = InstructBlipConfig(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=model.language_model.config.to_dict(),
        num_query_tokens=model.query_tokens.shape[1],
        image_token_index=model.llm_tokenizer.pad_token_id,  # a placeholder id; its embedding is replaced
    )
    hf = InstructBlipForConditionalGeneration(config).eval()
    hf.load_state_dict(model.state_dict(), strict=True)
    hf.vision_model.post_layernorm.eps = model.vision_model.post_layernorm.eps
    return hf


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def vig_comparison(model: VIGCModel, pixels: torch.Tensor, args: argparse.Namespace) -> None:
    hf = hf_instructblip(model)
    prompt = GENERATION_INSTRUCTIONS[args.tasks[0]]
    n, q = pixels.shape[0], model.query_tokens.shape[1]
    ids = model.llm_tokenizer.encode(prompt)
    input_ids = torch.tensor([[model.llm_tokenizer.pad_token_id] * q + ids] * n)
    qformer_ids, qformer_mask = model.qformer_tokenizer([prompt] * n, max_length=model.max_txt_len)
    new_tokens = args.max_len - 1
    ours_settings = DecodingSettings(num_beams=args.beams, max_new_tokens=new_tokens, repetition_penalty=1.5)

    def ours() -> torch.Tensor:
        return model.generate(model.encode_images(pixels), prompt, ours_settings).sequences

    def theirs() -> torch.Tensor:
        return hf.generate(
            pixel_values=pixels,
            qformer_input_ids=qformer_ids,
            qformer_attention_mask=qformer_mask,
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            num_beams=args.beams,
            max_new_tokens=new_tokens,
            repetition_penalty=1.5,
            do_sample=False,
            eos_token_id=model.llm_tokenizer.eos_token_id,
            pad_token_id=model.llm_tokenizer.eos_token_id,
        )

    with torch.no_grad():
        t_ours, t_theirs = timed(ours, args.repeats), timed(theirs, args.repeats)
    print(f"\nVIG alone on {n} images ({args.beams} beams, up to {new_tokens} new tokens)")
    print(f"ours {t_ours / n:.3f} s/QA, InstructBlipForConditionalGeneration.generate {t_theirs / n:.3f} s/QA")
    print(f"ratio (transformers / ours): {t_theirs / t_ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["default", "fixture"], default="default", help="which tiny model")
    parser.add_argument("--fixture", type=Path, default=REPO.parent / "shared" / "fixtures" / "vigc_reference")
    parser.add_argument("--tasks", nargs="+", choices=sorted(GENERATION_INSTRUCTIONS), default=["conv", "desc", "comp"])
    parser.add_argument("--seed", type=int, default=999, help="seed of the synthetic scenes (--model default)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=250)
    parser.add_argument("--answer-length", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: ratios less disturbed by others)")
    parser.add_argument("--warmup", type=int, default=1, help="1: an untimed run of every path before timing")
    parser.add_argument("--skip-vig", action="store_true", help="leave out VIG against transformers' generate")
    parser.add_argument(
        "--paths", nargs="+", choices=[p for p in PATHS if p != "compat"], default=[p for p in PATHS if p != "compat"]
    )
    args = parser.parse_args()
    args.paths = ["compat", *args.paths]
    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.model == "default":
        model = vigc_default()
        pixels = load_scene_pixels(model, args.images, args.seed)
        source = f"the embedded default model, held-out synthetic scenes (seed {args.seed})"
    else:
        model = build_model(args.fixture, "b")
        pixels = load_pixels(args.fixture, args.images)
        source = "the parity fixture's weights and images"
    print(f"torch {torch.__version__}, {args.threads} threads, CPU float32, model: {source}")
    times = {}
    with torch.no_grad():
        for task in args.tasks:
            runs = vic_comparison(model, pixels, task, args)
            times[task] = [per_qa(runs[path], pixels.shape[0]) for path in runs]
    print(f"\nper QA over {', '.join(args.tasks)} (wall / CPU seconds):")
    for i, path in enumerate(runs):
        wall, cpu = (sum(t[i][j] for t in times.values()) / len(times) for j in (0, 1))
        print(f"  {path:<23}{wall:.3f} / {cpu:.3f}")
    if not args.skip_vig:
        vig_comparison(model, pixels, args)


if __name__ == "__main__":
    main()
