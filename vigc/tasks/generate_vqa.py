"""Workflow: OKVQA / A-OKVQA style QA generation in two passes (`run.task: instruct_blip_vqg`).

gq (`generate_task: gq`): for each image, a question-start word is drawn (count-weighted with `weighted_sample`)
and the model writes `Question: {word} ... Answer: ...`; the run ends with `question.json`. ga (`generate_task:
ga`): each question of that file is answered with every beam and a weight per beam; the run ends with
`question_answer.json`, the input of the COCO-pseudo training set. `vigc.tasks.generate.run_generation` runs
both.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import torch

from vigc import dist
from vigc.config import AT_LEAST_ONE, check_ranges
from vigc.data.prompts import GA_PROMPT, GQ_INSTRUCTION, QUESTION_START_WORDS
from vigc.errors import ConfigError
from vigc.generation.inputs import GenerationItem
from vigc.generation.runner import (
    Counters,
    ImageBatch,
    RunContext,
    finish_run,
    model_provenance,
    run_pass,
    start_run,
)
from vigc.generation.sources import GenerationSource
from vigc.generation.vqa import draw_question_starts, generate_answers, generate_questions
from vigc.models.decoding import DecodingSettings
from vigc.models.generate_config import GenerateConfig
from vigc.models.vigc_model import VIGCModel
from vigc.registry import TASKS

logger = logging.getLogger(__name__)

TASK_KINDS = {"gq": "vqg_question", "ga": "vqg_answer"}


@dataclass(frozen=True)
class VQAGeneration:
    """A configured question (gq) or answer (ga) pass; `run` does the work."""

    generate_task: str
    data_type: str | None
    weighted_sample: bool
    decoding: DecodingSettings
    batch_size: int
    output_dir: str
    seed: int
    fsync: bool
    device: str

    def run(
        self,
        model: VIGCModel,
        source: GenerationSource,
        *,
        config: dict[str, Any],
        run_id: str | None = None,
        shard: tuple[int, int] | None = None,
        info: dist.DistInfo | None = None,
    ) -> RunContext:
        """Run the pass over every item of `source` not already in the run; returns the run's paths."""
        info = info or dist.init_distributed("cpu")
        provenance = {"model": model_provenance(config.get("model", {})), "decoding": vars(self.decoding)}
        task = TASK_KINDS[self.generate_task]
        ctx = start_run(
            output_dir=self.output_dir,
            run_id=run_id,
            shard_spec=shard,
            task=task,
            config=config,
            provenance=provenance,
            info=info,
        )
        counters = Counters()
        run_pass(
            ctx,
            source.items,
            key=lambda item: item.key,
            produce=lambda batch: self._produce(model, batch, source, provenance),
            batch_size=self.batch_size,
            processor=source.image_processor,
            counters=counters,
            fsync=self.fsync,
            max_pixels=source.max_pixels,
        )
        logger.info("rank %d: %s", info.rank, counters.summary())
        finish_run(ctx, export_llava_file=self.generate_task == "ga")
        return ctx

    def _produce(
        self, model: VIGCModel, batch: ImageBatch, source: GenerationSource, provenance: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        with torch.no_grad():
            embeds = model.encode_images(batch.pixels.to(model.device))
            records = self._records(model, embeds, batch.items, source)
        return [{**record, "provenance": provenance} for record in records], 0

    def _records(
        self, model: VIGCModel, embeds: torch.Tensor, items: list[GenerationItem], source: GenerationSource
    ) -> list[dict[str, Any]]:
        if self.generate_task == "gq":
            starts = [self._start_word(item.key) for item in items] if self.data_type else None
            results = generate_questions(model, embeds, [GQ_INSTRUCTION] * len(items), starts, self.decoding)
            return [
                {
                    **item.record,
                    "image": item.image,
                    "key": item.key,
                    "prompt": r.prompt,
                    "question_answer": r.question_answer,
                    "question": r.question,
                    "ori_answer": r.ori_answer,
                    "valid": r.valid,
                }
                for item, r in zip(items, results, strict=True)
            ]
        prompts = [GA_PROMPT.format(q=source.question_processor(item.question or "")) for item in items]
        answers = generate_answers(model, embeds, prompts, self.decoding)
        return [
            {
                **item.record,
                "image": item.image,
                "key": item.key,
                "question": item.question,
                "prompt": a.prompt,
                "question_answer": a.raw_answers,
                "answer": a.answers,
                "weight": a.weights,
                "scores": a.scores,
                "valid": True,
            }
            for item, a in zip(items, answers, strict=True)
        ]

    def _start_word(self, key: str) -> str:
        """Drawn per image from (seed, key), so a resumed or re-sharded run draws the same words."""
        rng = random.Random(f"{self.seed}/{key}")
        return draw_question_starts(rng, str(self.data_type), 1, self.weighted_sample)[0]


@TASKS.register
def instruct_blip_vqg(
    *,
    generate_task: str = "gq",
    data_type: str | None = None,
    weighted_sample: bool = False,
    generate_cfg: dict[str, Any] | None = None,
    batch_size_eval: int = 8,
    output_dir: str = "output",
    seed: int = 42,
    fsync: bool = True,
    device: str = "auto",
) -> VQAGeneration:
    """OKVQA / A-OKVQA question (gq) or answer (ga) generation (the original task name).

    Args:
        generate_task: "gq" (questions with short answers) or "ga" (all beams for given questions).
        data_type: gq: "okvqa" or "a_okvqa" to start questions with a drawn word; None for no start word.
        weighted_sample: draw start words by their counts.
        generate_cfg: the original's decoding block (max_len, min_len, num_beams, ...; see GenerateConfig).
        batch_size_eval: images per batch.
        output_dir: folder of runs (never inside the package).
        seed: seed of the start-word draws.
        fsync: fsync every record.
        device: "auto", "cpu", "cuda" or "cuda:N".
    """
    if generate_task not in TASK_KINDS:
        raise ConfigError(f"run.generate_task must be 'gq' or 'ga', got {generate_task!r}.")
    if data_type is not None and (generate_task != "gq" or data_type not in QUESTION_START_WORDS):
        raise ConfigError(
            f"run.data_type is for the gq pass and must be one of {sorted(QUESTION_START_WORDS)}, got {data_type!r}."
        )
    check_ranges("run", [("batch_size_eval", batch_size_eval, AT_LEAST_ONE)])
    cfg = GenerateConfig.from_mapping(generate_cfg)
    decoding = cfg.decoding(num_return_sequences=cfg.num_beams if generate_task == "ga" else 1)
    return VQAGeneration(
        generate_task=generate_task,
        data_type=data_type,
        weighted_sample=weighted_sample,
        decoding=decoding,
        batch_size=batch_size_eval,
        output_dir=output_dir,
        seed=seed,
        fsync=fsync,
        device=device,
    )
