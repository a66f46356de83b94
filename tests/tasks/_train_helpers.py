"""Tiny synthetic data and configs for the training tests (imported by tests/tasks/test_train*.py).

Images are coloured shapes on a grey background drawn with PIL; the annotations ask for the shape's colour, in
the OKVQA, A-OKVQA and LLaVA formats, so every training and evaluation dataset of the shipped configs can point
at them.
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image, ImageDraw
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[2]
COLORS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}
SHAPES = ("circle", "square")
QUESTION = "what color is the shape?"
# The reference fixture's widths (the LLM's, 64, comes from its LLM directory). Its EVA ViT file gives the vision
# encoder real weights: a random transformers InstructBLIP ViT is initialised with std 1e-10 and sees nothing.
TINY_MODEL = {
    "image_size": 56,
    "patch_size": 14,
    "vit_width": 64,
    "vit_depth": 2,
    "vit_heads": 4,
    "vit_mlp_hidden": 279,
    "num_query_token": 8,
    "qformer_hidden": 64,
    "qformer_layers": 2,
    "qformer_heads": 4,
    "qformer_intermediate": 256,
    "random_init": True,
}


def draw_scene(color: str, shape: str, rng: random.Random, size: int = 56) -> Image.Image:
    """One coloured shape at a random place on a grey image."""
    image = Image.new("RGB", (size, size), (128, 128, 128))
    extent = rng.randint(size // 3, size // 2)
    left, top = rng.randint(0, size - extent), rng.randint(0, size - extent)
    box = (left, top, left + extent, top + extent)
    draw = ImageDraw.Draw(image)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLORS[color])
    return image


def write_scenes(folder: Path, count: int, *, seed: int, colors: Sequence[str] = tuple(COLORS)) -> list[dict[str, Any]]:
    """Write ``count`` PNG scenes to ``folder/images`` and return OKVQA-style records (10 identical answers)."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        color, shape = colors[index % len(colors)], SHAPES[(index // len(colors)) % len(SHAPES)]
        name = f"images/scene_{seed}_{index:03d}.png"
        draw_scene(color, shape, rng).save(folder / name)
        records.append(
            {"image": name, "question": QUESTION, "answer": [color] * 10, "question_id": index, "image_id": index}
        )
    return records


def write_annotations(folder: Path, records: list[dict[str, Any]], name: str) -> dict[str, str]:
    """Write records in the OKVQA, A-OKVQA and LLaVA formats; returns format → file path."""
    aokvqa = [
        {"image_path": r["image"], "question": r["question"], "direct_answers": r["answer"], "image_id": r["image_id"]}
        for r in records
    ]
    llava = [
        {"image": r["image"], "question": r["question"], "answer": r["answer"][:1], "dataset": "conversation_58k.json"}
        for r in records
    ]
    files = {}
    for kind, data in (("okvqa", records), ("aokvqa", aokvqa), ("llava", llava)):
        path = folder / f"{name}_{kind}.json"
        path.write_text(json.dumps(data))
        files[kind] = str(path)
    return files


def annotation_kind(dataset_name: str) -> str:
    """The annotation format a dataset builder reads."""
    if "aokvqa" in dataset_name:
        return "aokvqa"
    if "llava" in dataset_name:
        return "llava"
    return "okvqa"


def tiny_config(
    folder: Path,
    fixture: Path,
    *,
    datasets: dict[str, dict[str, Any]],
    run: dict[str, Any],
    model: dict[str, Any] | None = None,
) -> Path:
    """Write a training config for the tiny model on the reference fixture's LLM and BERT tokenizer."""
    model_section = {
        "arch": "vigc_model",
        "llm_model": str(fixture / "llm"),
        "qformer_tokenizer": str(fixture / "bert_base_uncased_tiny"),
        "vit_model": str(fixture / "eva_vit_tiny.pth"),
        **TINY_MODEL,
        **(model or {}),
    }
    run_section = {
        "task": "instruct_blip_vqa",
        "device": "cpu",
        "amp": False,
        "num_workers": 0,
        "output_dir": str(folder / "output"),
        "log_freq": 1,
        "generate_cfg": {"max_len": 6, "min_len": 1, "num_beams": 1},
        **run,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"model": model_section, "datasets": datasets, "run": run_section}))
    return path


def dataset_entry(annotation: str, images: Path, *, ratio: float | None = 1.0, split: str = "train") -> dict[str, Any]:
    """A dataset config entry with the deterministic eval image processor at the tiny image size."""
    entry: dict[str, Any] = {
        "build_info": {"annotation": annotation, "images": str(images)},
        "vis_processor": {split: {"name": "blip_image_eval", "image_size": TINY_MODEL["image_size"]}},
    }
    if ratio is not None:
        entry["sample_ratio"] = ratio
    return entry


def train_main(argv: Sequence[str]) -> int:
    """Run ``train.py``'s ``main`` in this process (loaded by path: the repository root need not be importable)."""
    spec = importlib.util.spec_from_file_location("vigc_train_entry", REPO_ROOT / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(list(argv)))


def run_train_py(args: Sequence[str], *, timeout: float = 300, torchrun: int | None = None) -> None:
    """Run ``train.py`` in a fresh process (optionally under torchrun) and fail with its output if it fails."""
    if torchrun:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    else:
        launcher = [sys.executable]
    result = subprocess.run(
        [*launcher, str(REPO_ROOT / "train.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"train.py failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )


def only_run_dir(output: Path) -> Path:
    """The single run folder under an output folder."""
    runs = [p for p in output.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The trainable weights of a run's newest checkpoint."""
    newest = sorted(run_dir.glob("checkpoint_*"))[-1]
    return load_file(str(newest / "model.safetensors"))


def read_metrics(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The records of one kind in a run's metrics.jsonl."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == kind]
