"""Validation during training, on the VIG evaluation sets (``instruct_blip_*_vig_eval``).

The model gets the evaluation prompt (the generation instruction + ``" Question: {q}"``) and writes the answer:

* ``vqa`` (OKVQA, A-OKVQA, VQAv2; task ``instruct_blip_vqa``): the answer is generated with the run's
  ``generate_cfg``, a leading ``answer:`` is removed, and it is scored with the official VQA accuracy against
  every reference answer. Higher is better.
* ``caption`` (LLaVA; task ``instruct_blip_caption``): the LM loss of the reference answer given the prompt (lower
  is better), plus a few generated answers written out for a look. The original scored LLaVA with captioning
  metrics against a hard-coded file; there is no such file here.

Every rank evaluates its share of the records; the results are gathered, so every rank gets the same metrics.
Predictions are written by rank 0 to ``<run>/validation/<dataset>_<iteration>.jsonl``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from vigc import dist
from vigc.data.datasets import VIGEvalBatch, collate_vig_eval
from vigc.dist import DistInfo
from vigc.eval.vqa import strip_answer_prefix, vqa_accuracy
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

__all__ = ["ValidationKind", "ValidationSettings", "run_validation"]

logger = logging.getLogger(__name__)

ValidationKind = Literal["vqa", "caption"]


@dataclass(frozen=True)
class ValidationSettings:
    """How to validate.

    Attributes:
        kind: ``vqa`` or ``caption`` (see the module docstring).
        decoding: Decoding of the generated answers.
        batch_size: Records per batch and rank.
        num_workers: DataLoader workers.
        max_items: Evaluate only the first this many records of each set (None: all).
        num_samples: Generated answers written per set in ``caption`` validation.
    """

    kind: ValidationKind
    decoding: DecodingSettings
    batch_size: int
    num_workers: int
    max_items: int | None
    num_samples: int


def run_validation(
    model: VIGCModel,
    datasets: Mapping[str, Dataset[Any]],
    settings: ValidationSettings,
    *,
    info: DistInfo,
    autocast: Callable[[], AbstractContextManager[Any]],
    out_dir: Path,
    iteration: int,
) -> dict[str, float]:
    """Validate on every evaluation set; every rank must call this.

    Args:
        model: The unwrapped model; it is put in eval mode and left so (the caller restores training mode).
        datasets: Name → VIG evaluation dataset.
        settings: See `ValidationSettings`.
        info: This process's place in the job.
        autocast: Context factory for mixed precision.
        out_dir: Folder of the prediction files.
        iteration: Iterations done, for file names and records.

    Returns:
        ``"<dataset>/<metric>"`` → value, plus ``"agg_metric"``: the mean over sets of the primary metric,
        oriented so that higher is better (VQA accuracy, or minus the loss).
    """
    model.eval()
    metrics: dict[str, float] = {}
    primary: list[float] = []
    for name, dataset in datasets.items():
        records = _evaluate_set(model, dataset, settings, info=info, autocast=autocast)
        gathered = [r for part in dist.all_gather_object(records) for r in part]
        gathered.sort(key=lambda r: r["index"])
        if settings.kind == "vqa":
            accuracy = 100.0 * sum(r["accuracy"] for r in gathered) / max(len(gathered), 1)
            metrics[f"{name}/vqa_acc"] = accuracy
            primary.append(accuracy)
        else:
            tokens = sum(r["tokens"] for r in gathered)
            loss = sum(r["loss"] * r["tokens"] for r in gathered) / max(tokens, 1)
            metrics[f"{name}/loss"] = loss
            primary.append(-loss)
        if info.is_main:
            _write_records(out_dir / f"{name}_{iteration:08d}.jsonl", gathered)
    metrics["agg_metric"] = sum(primary) / len(primary) if primary else 0.0
    logger.info("validation at iteration %d: %s", iteration, {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def _evaluate_set(
    model: VIGCModel,
    dataset: Dataset[Any],
    settings: ValidationSettings,
    *,
    info: DistInfo,
    autocast: Callable[[], AbstractContextManager[Any]],
) -> list[dict[str, Any]]:
    """This rank's records of one set (strided shard), each with its score."""
    size = len(dataset)  # type: ignore[arg-type]
    count = size if settings.max_items is None else min(size, settings.max_items)
    indices = list(range(info.rank, count, info.world_size))
    loader = DataLoader(
        Subset(dataset, indices),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        collate_fn=collate_vig_eval,
    )
    records: list[dict[str, Any]] = []
    position = 0
    with torch.no_grad():
        for batch in loader:
            batch_indices = indices[position : position + len(batch.prompts)]
            position += len(batch.prompts)
            with autocast():
                embeds = model.encode_images(batch.images.to(info.device))
                if settings.kind == "vqa":
                    records += _vqa_records(model, embeds, batch, batch_indices, settings.decoding)
                else:
                    records += _caption_records(model, embeds, batch, batch_indices, settings)
    return records


def _vqa_records(
    model: VIGCModel, embeds: torch.Tensor, batch: VIGEvalBatch, indices: Sequence[int], decoding: DecodingSettings
) -> list[dict[str, Any]]:
    texts = model.generate(embeds, batch.prompts, decoding).texts
    records = []
    for index, candidates, reference in zip(indices, texts, batch.references, strict=True):
        prediction = strip_answer_prefix(candidates[0])
        records.append(
            {
                "index": index,
                "question_id": reference.question_id,
                "image": reference.image_path,
                "question": reference.question,
                "prediction": prediction,
                "answers": reference.answers,
                "accuracy": vqa_accuracy(prediction, reference.answers),
            }
        )
    return records


def _caption_records(
    model: VIGCModel, embeds: torch.Tensor, batch: VIGEvalBatch, indices: Sequence[int], settings: ValidationSettings
) -> list[dict[str, Any]]:
    """Per-record LM loss of the first reference answer; generated answers for the first `num_samples` records."""
    targets = [reference.gt_answers[0] if reference.gt_answers else "" for reference in batch.references]
    out = model.loss(embeds, batch.prompts, targets)
    labels = out.batch.labels[:, 1:]  # (B, L - 1), -100 outside the targets
    nll = F.cross_entropy(out.logits[:, :-1].float().transpose(1, 2), labels, ignore_index=-100, reduction="none")
    tokens = (labels != -100).sum(1)
    records = []
    for row, (index, reference) in enumerate(zip(indices, batch.references, strict=True)):
        count = int(tokens[row])
        record: dict[str, Any] = {
            "index": index,
            "question_id": reference.question_id,
            "image": reference.image_path,
            "prompt": reference.instruction,
            "reference": targets[row],
            "loss": float(nll[row].sum()) / max(count, 1),
            "tokens": count,
        }
        if index < settings.num_samples:
            generated = model.generate(embeds[row : row + 1], batch.prompts[row], settings.decoding).texts[0][0]
            record["generated"] = generated
            logger.info("sample %d: %r -> %r", index, reference.instruction, generated)
        records.append(record)
    return records


def _write_records(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
