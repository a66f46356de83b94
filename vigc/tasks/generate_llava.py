"""Workflow: LLaVA-style QA generation (conversation / detail / complex reasoning) with VIG + VIC.

Reads top to bottom: settings → run folder → this process's images → batches (VIG + VIC, one record per
image, task and sample index, appended as made) → merge and exports on rank 0. `run.task:
instruct_blip_llava_vig` in the original configs; `vigc.tasks.generate.run_generation` runs it.
"""

from __future__ import annotations

import functools
import logging
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vigc import dist
from vigc.config import AT_LEAST_ONE, POSITIVE, PROBABILITY, check_ranges
from vigc.data.prompts import GENERATION_INSTRUCTIONS, VIG_INSTRUCTIONS
from vigc.errors import ConfigError
from vigc.generation.inputs import GenerationItem
from vigc.generation.records_format import vic_record_fields
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
from vigc.generation.vic import GenerationStats, QAResult, VICSettings, vig_vic
from vigc.generation.vic_types import SAMPLED_VIG_TEMPERATURE, SAMPLED_VIG_TOP_P
from vigc.models.generate_config import GenerateConfig
from vigc.models.vigc_model import VIGCModel
from vigc.registry import TASKS

logger = logging.getLogger(__name__)

TASK_KIND = "llava_vig"
REDRAWS = 4  # sampled samples: new draws for an image whose question an earlier sample already asked


@dataclass(frozen=True)
class LlavaGeneration:
    """A configured LLaVA-style generation; `run` does the work.

    Attributes:
        llava_task: "conv", "desc" or "comp".
        vic: VIG + VIC behaviour and decoding.
        samples_per_image: QA per image; sample 0 is the configured decoding of the fixed instruction, later ones
            use `diversity`.
        diversity: "sampling" (temperature / top-p on the fixed instruction) or "instructions" (the task's other
            training instructions, same decoding).
        batch_size: images per batch.
        output_dir: folder of runs.
        seed: seed of the sampled samples and of the drawn question starts.
        question_starts: (words, weight) pairs: each (image, sample) draws the first words of its question from
            them, weighted, seeded by the image key (empty: VIG chooses the whole question).
        export_llava: also write LLaVA's training format.
        fsync: fsync every record.
        device: where the model runs ("auto": CUDA when available).
    """

    llava_task: str
    vic: VICSettings
    samples_per_image: int
    diversity: str
    sample_temperature: float
    sample_top_p: float
    batch_size: int
    output_dir: str
    seed: int
    export_llava: bool
    fsync: bool
    device: str
    question_starts: tuple[tuple[str, float], ...] = ()

    def question_starts_for(self, keys: list[str], k: int) -> list[str | None] | None:
        """The drawn question start of each image key for sample `k` (the same on every resume), or None."""
        if not self.question_starts:
            return None
        words = [word for word, _ in self.question_starts]
        weights = [weight for _, weight in self.question_starts]
        return [random.Random(f"{self.seed}:{key}:{k}").choices(words, weights=weights)[0] for key in keys]

    def instructions(self, sample_index: int) -> str:
        if sample_index == 0 or self.diversity == "sampling":
            return GENERATION_INSTRUCTIONS[self.llava_task]
        pool = VIG_INSTRUCTIONS[f"llava_{self.llava_task}"]
        return pool[sample_index % len(pool)]

    def settings(self, sample_index: int) -> VICSettings:
        """Sample 0: the configured settings. Later samples with `sampling`: VIG (the question) is sampled; the
        default VIC steps keep the configured decoding (`VICSettings.with_sampled_vig`)."""
        if sample_index == 0 or self.diversity == "instructions":
            return self.vic
        return self.vic.with_sampled_vig(self.sample_temperature, self.sample_top_p)

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
        """Generate for every item of `source` not already in the run; returns the run's paths."""
        info = info or dist.init_distributed("cpu")
        provenance = {"model": model_provenance(config.get("model", {})), "vic": _settings_dict(self.vic)}
        ctx = start_run(
            output_dir=self.output_dir,
            run_id=run_id,
            shard_spec=shard,
            task=TASK_KIND,
            config=config,
            provenance=provenance,
            info=info,
        )
        counters = Counters()
        asked: dict[str, set[str]] = {}  # image key → questions of its earlier samples in this process
        for k in range(self.samples_per_image):
            run_pass(
                ctx,
                source.items,
                key=functools.partial(self._sample_key, k=k),
                produce=functools.partial(self._produce, model, k=k, provenance=provenance, asked=asked),
                batch_size=self.batch_size,
                processor=source.image_processor,
                counters=counters,
                fsync=self.fsync,
                max_pixels=source.max_pixels,
            )
        logger.info("rank %d: %s", info.rank, counters.summary())
        finish_run(ctx, self.export_llava)
        return ctx

    def _sample_key(self, item: GenerationItem, k: int) -> str:
        return _key(item.key, self.llava_task, k)

    def _produce(
        self,
        model: VIGCModel,
        batch: ImageBatch,
        *,
        k: int,
        provenance: dict[str, Any],
        asked: dict[str, set[str]],
    ) -> tuple[list[dict[str, Any]], int]:
        settings, stats = self.settings(k), GenerationStats()
        if settings.vig_decoding.do_sample:
            torch.manual_seed(self.seed + k)  # a batch's samples are reproducible
        pixels = batch.pixels.to(model.device)
        keys = [item.key for item in batch.items]
        starts = self.question_starts_for(keys, k)
        with torch.no_grad():
            instructions = [self.instructions(k)] * pixels.shape[0]
            results = vig_vic(model, pixels, instructions, settings, stats, question_starts=starts)
            if settings.vig_decoding.do_sample:
                asked_before = [asked.get(key, set()) for key in keys]
                self._redraw_repeats(model, pixels, results, asked_before, k, stats, starts)
        for key, result in zip(keys, results, strict=True):
            if result.question:
                asked.setdefault(key, set()).add(result.question)
        records = [
            self._record(item.record, item.image, item.key, k, result, provenance)
            for item, result in zip(batch.items, results, strict=True)
        ]
        return records, stats.decoded_tokens

    def _redraw_repeats(
        self,
        model: VIGCModel,
        pixels: torch.Tensor,
        results: list[QAResult],
        asked: list[set[str]],
        k: int,
        stats: GenerationStats,
        starts: list[str | None] | None,
    ) -> None:
        """Sampled samples: draw again (up to `REDRAWS` times) for images whose question an earlier sample asked.

        A model that learnt which question a scene calls for asks it again under sampling about half the time;
        `samples_per_image` is there for different questions. After the last draw a repeat is kept as it is.
        """
        for _ in range(REDRAWS):
            rows = [i for i, r in enumerate(results) if r.question is not None and r.question in asked[i]]
            if not rows:
                return
            row_starts = [starts[i] for i in rows] if starts is not None else None
            instructions = [self.instructions(k)] * len(rows)
            again = vig_vic(model, pixels[rows], instructions, self.settings(k), stats, question_starts=row_starts)
            for row, result in zip(rows, again, strict=True):
                results[row] = result

    def _record(
        self, record: dict[str, Any], image: str, key: str, k: int, result: QAResult, provenance: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            **record,
            "image": image,
            "key": _key(key, self.llava_task, k),
            "task": self.llava_task,
            "sample_index": k,
            "valid": result.valid,
            **vic_record_fields(result),
            "provenance": provenance,
        }


def _key(image_key: str, task: str, k: int) -> str:
    return f"{image_key}#{task}#{k}"


def _settings_dict(settings: VICSettings) -> dict[str, Any]:
    return json_safe(asdict(settings))


def json_safe(value: Any) -> Any:
    """Dataclass dicts as JSON values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@TASKS.register
def instruct_blip_llava_vig(
    *,
    llava_task: str = "conv",
    answer_length: int = 4,
    gen_style: str = "vig",
    last_infer_all: bool = False,
    in_section: bool = False,
    vic_mode: str = "default",
    max_sentences: int = 8,
    verify_margin: float = 0.5,
    vig_answer: bool = False,
    vig_question_only: bool = True,
    vic_early_stopping: bool = False,
    question_starts: dict[str, float] | None = None,
    samples_per_image: int = 1,
    diversity: str = "sampling",
    sample_temperature: float = SAMPLED_VIG_TEMPERATURE,
    sample_top_p: float = SAMPLED_VIG_TOP_P,
    generate_cfg: dict[str, Any] | None = None,
    batch_size_eval: int = 8,
    output_dir: str = "output",
    seed: int = 42,
    export_llava: bool = True,
    fsync: bool = True,
    device: str = "auto",
) -> LlavaGeneration:
    """LLaVA-style VIG + VIC generation (the original task name).

    Args:
        llava_task: "conv", "desc" or "comp" (picks the fixed instruction).
        answer_length: compat: VIC steps.
        gen_style: "vig" or "vic" (VIC prompt with or without the instruction).
        last_infer_all: compat: the last step keeps its whole output.
        in_section: paragraph steps instead of sentences.
        vic_mode: "default" (faster, stops per sentence, drops bad QA), "compat" (the original, exactly) or
            "verify" (VIC re-reads each VIG sentence and replaces only those it clearly writes otherwise).
        max_sentences: default and verify modes: most sentences per answer.
        verify_margin: verify mode: how much more likely (mean log-probability per token) a rewrite must be.
        vig_answer: default mode: keep VIG's own answer (`original_answer`, e.g. for quality reports, DPO pairs):
            VIG's answer to the question it stopped at, decoded as a continuation (the question, and every VIC
            answer, are the same without it); otherwise `original_answer` is null. compat and verify always keep
            it (VIG's whole output).
        vig_question_only: default mode: VIG stops at the end of its question, under beam search too (true, the
            default: the VIC steps write the answer); false ranks VIG's beams on the question with its answer (the
            whole output; slower, and the question can differ). compat and verify ignore it.
        vic_early_stopping: default and verify modes: the VIC steps' beam search ends an input once it holds
            num_beams finished sentences (transformers' early_stopping=True; fewer LM calls, sometimes another
            sentence). compat (the original) ignores it.
        question_starts: default and verify modes: the first words of VIG's question, drawn per (image, sample)
            from these {words: weight} (seeded by `seed` and the image, so a resume draws the same), as the
            original's OKVQA question pass did; more kinds of question under beam search. None: VIG chooses.
        samples_per_image: QA per image (keys end in #<task>#<index>).
        diversity: how samples after the first differ: "sampling" or "instructions".
        sample_temperature: sampling temperature of later samples.
        sample_top_p: nucleus mass of later samples.
        generate_cfg: the original's decoding block (max_len, min_len, num_beams, ...; see GenerateConfig).
        batch_size_eval: images per batch.
        output_dir: folder of runs (never inside the package).
        seed: seed for sampled samples and question starts.
        export_llava: write LLaVA's training JSON at the end.
        fsync: fsync every record (safer; slower on network file systems).
        device: "auto", "cpu", "cuda" or "cuda:N".
    """
    if llava_task not in GENERATION_INSTRUCTIONS:
        raise ConfigError(f"run.llava_task must be one of {sorted(GENERATION_INSTRUCTIONS)}, got {llava_task!r}.")
    if diversity not in ("sampling", "instructions"):
        raise ConfigError(f"run.diversity must be 'sampling' or 'instructions', got {diversity!r}.")
    check_ranges(
        "run",
        [
            ("answer_length", answer_length, AT_LEAST_ONE),
            ("max_sentences", max_sentences, AT_LEAST_ONE),
            ("samples_per_image", samples_per_image, AT_LEAST_ONE),
            ("sample_temperature", sample_temperature, POSITIVE),
            ("sample_top_p", sample_top_p, PROBABILITY),
            ("batch_size_eval", batch_size_eval, AT_LEAST_ONE),
        ],
    )
    starts = _question_starts(question_starts, vic_mode)
    decoding = GenerateConfig.from_mapping(generate_cfg).decoding()
    vic = VICSettings(
        mode=vic_mode,
        answer_length=answer_length,
        max_sentences=max_sentences,
        verify_margin=verify_margin,
        vig_answer=vig_answer,
        vig_question_only=vig_question_only,
        vic_early_stopping=vic_early_stopping,
        gen_style=gen_style,
        in_section=in_section,
        last_infer_all=last_infer_all,
        vig_decoding=decoding,
    )
    return LlavaGeneration(
        llava_task=llava_task,
        vic=vic,
        samples_per_image=samples_per_image,
        diversity=diversity,
        sample_temperature=sample_temperature,
        sample_top_p=sample_top_p,
        batch_size=batch_size_eval,
        output_dir=output_dir,
        seed=seed,
        export_llava=export_llava,
        fsync=fsync,
        device=device,
        question_starts=starts,
    )


def _question_starts(question_starts: dict[str, float] | None, vic_mode: str) -> tuple[tuple[str, float], ...]:
    """`run.question_starts` checked: non-empty words, positive weights, not with compat (the original's prompt)."""
    if not question_starts:
        return ()
    if vic_mode == "compat":
        raise ConfigError("run.question_starts changes the original's VIG prompt: use vic_mode default or verify.")
    bad = [f"{word!r}: {weight!r}" for word, weight in question_starts.items() if not str(word).strip() or weight <= 0]
    if bad:
        raise ConfigError(f"run.question_starts needs words with weights above 0; got {', '.join(bad)}.")
    return tuple((str(word).strip(), float(weight)) for word, weight in question_starts.items())
