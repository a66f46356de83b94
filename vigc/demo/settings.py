"""What the demo page asks for, as one validated settings object, and its defaults taken from a config.

The decoding lengths mean what `run.generate_cfg` means in the generation configs (`max_len: 250` allows 249 new
tokens, as in the original), so a setting tried on the page can be copied into a config unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

from vigc.errors import ConfigError, VIGCError
from vigc.generation.vic import VICSettings
from vigc.models.decoding import DecodingSettings
from vigc.models.generate_config import GenerateConfig

__all__ = ["GA_MAX_LENGTH", "TASK_LABELS", "VIC_MODES", "DemoInputError", "DemoSettings"]

# Task key → label on the page. The first three are the LLaVA-style tasks (SPEC §5.1), "okvqa" the gq/ga passes.
TASK_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "conv": "conversation",
        "desc": "detailed description",
        "comp": "complex reasoning",
        "okvqa": "knowledge question (OKVQA-style)",
    }
)
VIC_MODES = ("off", "compat", "default", "verify")
# The original's ga pass: short answers, at most 10 tokens (max_len counts the hidden BOS).
GA_MAX_LENGTH = 10
MAX_QUESTION_CHARS = 1000


class DemoInputError(VIGCError):
    """Something given on the page (an upload, a setting, a question) cannot be used; the message says why."""


@dataclass(frozen=True)
class DemoSettings:
    """One generation request from the page. Every default lives here.

    Args:
        task: "conv", "desc", "comp" or "okvqa" (see `TASK_LABELS`).
        question: the user's own question; when set only the answer is generated.
        vic_mode: "off" (VIG only), "compat" (the original's loop, exactly), "default" (ours) or "verify" (VIG's
            sentences kept unless VIC's re-read clearly prefers its own).
        paragraphs: VIC steps are `\\n\\n`-separated paragraphs instead of sentences.
        last_infer_all: compat: the last step keeps its whole output (the original demo's "No Truncation").
        steps: compat: the number of VIC steps; default: the most sentences.
        question_only_prompt: VIC prompts start from the question alone (`gen_style: vic`; the original demo did
            this for a given question) instead of instruction + question.
        sampling: nucleus sampling instead of beam search.
        num_beams: beam width (1 is greedy; ignored when sampling).
        top_p: nucleus mass when sampling.
        temperature: softmax temperature when sampling.
        min_length: shortest output in tokens (`generate_cfg.min_len`).
        max_length: longest output in tokens (`generate_cfg.max_len`).
        repetition_penalty: CTRL penalty on repeated tokens (the original hard-coded 1.5).
        length_penalty: exponent of the length that divides beam scores.
        seed: seed of sampling and of the OKVQA question-start word.
    """

    task: str = "conv"
    question: str = ""
    vic_mode: str = "default"
    paragraphs: bool = False
    last_infer_all: bool = False
    steps: int = 4
    question_only_prompt: bool = False
    sampling: bool = False
    num_beams: int = 5
    top_p: float = 0.9
    temperature: float = 1.0
    min_length: int = 1
    max_length: int = 250
    repetition_penalty: float = 1.5
    length_penalty: float = 1.0
    seed: int = 42

    def __post_init__(self) -> None:
        problems = []
        if self.task not in TASK_LABELS:
            problems.append(f"task must be one of {', '.join(TASK_LABELS)}, not {self.task!r}")
        if self.vic_mode not in VIC_MODES:
            problems.append(f"VIC must be one of {', '.join(VIC_MODES)}, not {self.vic_mode!r}")
        if self.vic_mode == "verify" and self.paragraphs:
            problems.append("'check each sentence' corrects sentences: turn paragraph steps off, or choose another VIC")
        if len(self.question) > MAX_QUESTION_CHARS:
            problems.append(f"the question is {len(self.question)} characters long; at most {MAX_QUESTION_CHARS}")
        if self.steps < 1:
            problems.append("VIC steps must be at least 1")
        if self.num_beams < 1 or self.min_length < 0 or self.max_length < 2:
            problems.append("beams must be at least 1, min length at least 0 and max length at least 2")
        if self.min_length > self.max_length:
            problems.append(f"min length ({self.min_length}) is above max length ({self.max_length})")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            problems.append("temperature and repetition penalty must be above 0, and top-p in (0, 1]")
        if problems:
            raise DemoInputError("Cannot generate with these settings: " + "; ".join(problems) + ".")

    @property
    def own_question(self) -> str:
        """The user's question, whitespace trimmed ("" when none)."""
        return " ".join(self.question.split())

    def generate_config(self) -> GenerateConfig:
        """These settings as the generation configs' `run.generate_cfg`."""
        return GenerateConfig(
            max_len=self.max_length,
            min_len=self.min_length,
            num_beams=self.num_beams,
            use_nucleus_sampling=self.sampling,
            top_p=self.top_p,
            temperature=self.temperature,
            repetition_penalty=self.repetition_penalty,
            length_penalty=self.length_penalty,
        )

    def decoding(self) -> DecodingSettings:
        """Decoding of VIG (and of every VIC step), exactly as a generation run with these settings."""
        try:
            return self.generate_config().decoding()
        except ConfigError as exc:
            raise DemoInputError(f"Cannot decode with these settings: {exc}") from exc

    def answer_decoding(self) -> DecodingSettings:
        """The OKVQA answer pass (ga): short answers, every beam returned with a weight."""
        short = replace(self.generate_config(), max_len=GA_MAX_LENGTH, min_len=min(self.min_length, GA_MAX_LENGTH))
        beams = 1 if self.sampling else self.num_beams
        try:
            return short.decoding(num_return_sequences=beams)
        except ConfigError as exc:
            raise DemoInputError(f"Cannot decode with these settings: {exc}") from exc

    def vic_settings(self) -> VICSettings:
        """VIG + VIC behaviour ("off" runs VIG alone and does not use these)."""
        return VICSettings(
            mode=self.vic_mode if self.vic_mode in ("compat", "verify") else "default",
            answer_length=self.steps,
            max_sentences=self.steps,
            gen_style="vic" if self.question_only_prompt else "vig",
            in_section=self.paragraphs,
            last_infer_all=self.last_infer_all,
            vig_decoding=self.decoding(),
            vig_answer=True,  # the page marks VIC's changes against VIG's answer
        )

    @classmethod
    def from_run_config(cls, run: Mapping[str, Any] | None) -> DemoSettings:
        """Defaults for the page from a config's `run` section (its `generate_cfg`, `llava_task` and VIC keys).

        An OKVQA-style config (`task: instruct_blip_vqg`) selects the OKVQA-style task.

        Keys the demo has no control for are ignored; a malformed `generate_cfg` is an error naming the key.
        """
        run = dict(run or {})
        knowledge = run.get("task") == "instruct_blip_vqg"
        # An answer-pass (ga) config's lengths are for short answers; the page's lengths are for the question.
        generate_cfg = None if run.get("generate_task") == "ga" else run.get("generate_cfg")
        generate = GenerateConfig.from_mapping(generate_cfg)
        vic_mode = str(run.get("vic_mode", cls.vic_mode))
        steps_key = "answer_length" if vic_mode == "compat" else "max_sentences"
        values: dict[str, Any] = {
            "task": run.get("llava_task", cls.task),
            "vic_mode": vic_mode,
            "paragraphs": run.get("in_section", cls.paragraphs),
            "last_infer_all": run.get("last_infer_all", cls.last_infer_all),
            "steps": run.get(steps_key, cls.steps),
            "question_only_prompt": run.get("gen_style", "vig") == "vic",
            "sampling": generate.use_nucleus_sampling,
            "num_beams": generate.num_beams,
            "top_p": generate.top_p,
            "temperature": generate.temperature,
            "min_length": generate.min_len,
            "max_length": generate.max_len,
            "repetition_penalty": generate.repetition_penalty,
            "length_penalty": generate.length_penalty,
        }
        if knowledge:
            values["task"] = "okvqa"
        try:
            return cls(**values)
        except DemoInputError as exc:
            raise ConfigError(f"run section: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON values (saved with each record)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
