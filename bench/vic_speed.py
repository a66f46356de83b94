"""VIC speed: the original algorithm (compat) against the default VIC, and our VIG against transformers' generate.

Both run side by side in one process on the same tiny model and the same images, with the shipped configs'
decoding settings (5 beams, max_len 250, min_len 1, answer_length 4). Prints, per QA and per LLaVA task: wall
time, LLM tokens decoded (decoding positions x beams), vision-encoder calls, and how many answers agree.

    python bench/vic_speed.py [--model default] [--tasks conv desc comp] [--images 8] [--repeats 3]

`--model default` (the default) is the embedded default model on held-out synthetic scenes (seed 999), which
writes multi-sentence answers; `--model fixture` is the parity fixture's tiny model on its own images
(`--fixture ../shared/fixtures/vigc_reference`), trained on outputs of at most 29 tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
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


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of `repeats` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def vic_comparison(model: VIGCModel, pixels: torch.Tensor, task: str, args: argparse.Namespace) -> tuple[float, float]:
    """Compat against default VIC for one LLaVA task; prints the table and returns the two times per QA."""
    decoding = DecodingSettings.from_lavis(num_beams=args.beams, max_length=args.max_len, min_length=1)
    instructions = [GENERATION_INSTRUCTIONS[task]] * pixels.shape[0]
    runs: dict[str, tuple[float, list[QAResult], GenerationStats]] = {}
    for mode in ("compat", "default"):
        settings = VICSettings(
            mode=mode,
            answer_length=args.answer_length,
            max_sentences=args.answer_length,
            vig_decoding=decoding,
            reencode_images=mode == "compat",  # the original ran the vision encoder at every step
        )
        stats = GenerationStats()

        def run(settings: VICSettings = settings, stats: GenerationStats = stats) -> list[QAResult]:
            return vig_vic(model, pixels, instructions, settings, stats)

        seconds, results = timed(run, args.repeats)
        runs[mode] = (seconds, results, stats)  # type: ignore[assignment]
    n = pixels.shape[0]
    print(f"\nVIC, task {task}: {n} images, {args.beams} beams, max_len {args.max_len}, {args.answer_length} VIC steps")
    print(f"{'mode':<9}{'s/QA':>9}{'tokens/QA':>12}{'encoder passes/image':>22}{'valid':>7}{'sentences/answer':>18}")
    for mode, (seconds, results, stats) in runs.items():
        valid = sum(r.valid for r in results)
        sentences = sum(len(r.steps) for r in results) / n
        print(
            f"{mode:<9}{seconds / n:>9.3f}{stats.decoded_tokens / args.repeats / n:>12.0f}"
            f"{stats.images_encoded / args.repeats / n:>22.1f}{valid:>7}{sentences:>18.1f}"
        )
    old, new = runs["compat"][1], runs["default"][1]
    same_answer = sum(a.answer == b.answer for a, b in zip(old, new, strict=True))
    same_first = sum(bool(a.steps and b.steps and a.steps[0] == b.steps[0]) for a, b in zip(old, new, strict=True))
    print(f"speed-up (compat time / default time per QA): {runs['compat'][0] / runs['default'][0]:.2f}x")
    print(f"answers identical: {same_answer}/{n}; first VIC sentence identical: {same_first}/{n}")
    return runs["compat"][0] / n, runs["default"][0] / n


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
        t_ours, _ = timed(ours, args.repeats)
        t_theirs, _ = timed(theirs, args.repeats)
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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
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
            times[task] = vic_comparison(model, pixels, task, args)
    compat, default = (sum(t[i] for t in times.values()) for i in (0, 1))
    print(
        f"\nall tasks ({', '.join(args.tasks)}): compat {compat / len(times):.3f} s/QA, default "
        f"{default / len(times):.3f} s/QA, speed-up {compat / default:.2f}x"
    )
    vig_comparison(model, pixels, args)


if __name__ == "__main__":
    main()
