"""What VIG + VIC (`vigc.generation.vic`) takes and gives: its settings, each sample's result, the work done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from vigc.errors import ConfigError
from vigc.models.decoding import DecodingSettings
from vigc.models.text_generation import GeneratedText

__all__ = [
    "MODES",
    "SAMPLED_VIG_TEMPERATURE",
    "SAMPLED_VIG_TOP_P",
    "GenerationStats",
    "QAResult",
    "StepCallback",
    "VICSettings",
]

MODES = ("default", "compat", "verify")
# How the later samples of `run.samples_per_image` (diversity "sampling") draw VIG: `run.sample_temperature` and
# `run.sample_top_p`'s defaults.
SAMPLED_VIG_TEMPERATURE = 0.9
SAMPLED_VIG_TOP_P = 0.9

# Called with a sample's `QAResult` each time it changes: after VIG, then after every VIC step (live displays).
StepCallback = Callable[["QAResult"], None]


@dataclass(frozen=True)
class VICSettings:
    """How VIG + VIC runs. Every default lives here.

    Args:
        mode: "default", "compat" (the original's algorithm, exactly) or "verify" (keep VIG's sentences unless a
            re-read clearly prefers a rewrite).
        answer_length: compat: number of VIC steps after VIG.
        max_sentences: default: most sentences per answer.
        gen_style: "vig" (VIC prompt = instruction + question) or "vic" (the question alone).
        in_section: paragraph mode: units are `\\n\\n`-separated blocks, joined with " \\n\\n".
        last_infer_all: compat: the last step keeps its whole output.
        vig_decoding: decoding of the VIG step (and, in compat, of every step).
        vic_decoding: default: decoding of the VIC steps (None: same as `vig_decoding`).
        reencode_images: compat: run the vision encoder at every step, as the original did (for benchmarks).
        verify_margin: verify: how much higher (mean log-probability per token) a rewrite must score than VIG's
            sentence, both read after the same VIC prompt, to replace it.
        vig_answer: default: keep VIG's own answer (`original_answer`, for quality reports, DPO pairs, the demo).
            With `vig_question_only` it does not change the question: VIG answers the question it stopped at, its
            prompt continued with "Question: {q} Answer:" (the Q-Former reads VIG's prompt, as in the question
            pass), decoded with `vig_decoding`. compat and verify always keep it (the original's output; the
            sentences verify checks), from VIG's whole output.
        vig_question_only: default (true by default): VIG stops at the end of its question, also under beam
            search; the VIC steps write the answer. False ranks VIG's beams on the question together with its
            answer (the whole output, decoded in one pass; greedy or sampled VIG without `vig_answer` still stops
            at the question, which gives the same question). compat and verify decode VIG's whole output always.
        max_question_tokens: when VIG stops at its question: most tokens it decodes for it (within
            `vig_decoding.max_new_tokens`); a row still without one is decoded again whole (with its answer).
        vic_early_stopping: default and verify: the VIC steps' beam search ends an input as soon as it holds
            `num_beams` finished sentences (`DecodingSettings.early_stopping`, 4.33's `early_stopping=True`)
            instead of running on while a longer sentence could still score higher: fewer LM calls, and
            sometimes another sentence. compat (the original) and VIG's decoding never use it.
    """

    mode: str = "default"
    answer_length: int = 4
    max_sentences: int = 8
    gen_style: str = "vig"
    in_section: bool = False
    last_infer_all: bool = False
    vig_decoding: DecodingSettings = field(default_factory=DecodingSettings)
    vic_decoding: DecodingSettings | None = None
    reencode_images: bool = False
    verify_margin: float = 0.5
    vig_answer: bool = False
    vig_question_only: bool = True
    max_question_tokens: int = 64
    vic_early_stopping: bool = False

    @property
    def keeps_vig_answer(self) -> bool:
        """Whether results keep VIG's answer (compat and verify always; default only with `vig_answer`)."""
        return self.vig_answer or self.mode != "default"

    @property
    def vig_stops_at_question(self) -> bool:
        """Whether VIG stops at the end of its question: default mode with `vig_question_only`, or greedy or
        sampled VIG without `vig_answer` (the same question as the whole output)."""
        one_row = self.vig_decoding.num_beams == 1
        return self.mode == "default" and (self.vig_question_only or (one_row and not self.vig_answer))

    @property
    def continues_vig_answer(self) -> bool:
        """Whether VIG's answer is decoded after its question, as a continuation (`vig_answer` with VIG stopping
        at the question)."""
        return self.vig_answer and self.vig_stops_at_question

    def with_sampled_vig(
        self, temperature: float = SAMPLED_VIG_TEMPERATURE, top_p: float = SAMPLED_VIG_TOP_P
    ) -> VICSettings:
        """These settings with VIG sampled (one row, `temperature`, `top_p`) for varied questions, as the later
        samples of `run.samples_per_image` draw it. The default and verify VIC steps keep the configured decoding,
        so the answer is as careful as the first sample's; compat runs every step with VIG's decoding, as the
        original did."""
        sampled = self.vig_decoding.with_changes(do_sample=True, num_beams=1, temperature=temperature, top_p=top_p)
        return replace(self, vig_decoding=sampled, vic_decoding=self.vic_decoding or self.vig_decoding)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"VIC mode must be one of {MODES}, got {self.mode!r}.")
        if self.gen_style not in ("vig", "vic"):
            raise ConfigError(f"gen_style must be 'vig' or 'vic', got {self.gen_style!r}.")
        if self.mode == "verify" and self.in_section:
            raise ConfigError("vic_mode 'verify' checks sentences; it does not run with in_section (paragraphs).")
        if self.verify_margin < 0:
            raise ConfigError(f"verify_margin must be >= 0, got {self.verify_margin}.")
        if self.max_question_tokens < 1:
            raise ConfigError(f"max_question_tokens must be at least 1, got {self.max_question_tokens}.")


@dataclass
class QAResult:
    """One image's VIG + VIC outcome (the original's record fields plus what we add).

    Attributes:
        instruction: the VIG instruction.
        vig_output: the raw VIG output.
        question: parsed question (None when VIG gave no QA pair).
        original_answer: the VIG answer, kept for comparison (None when VIG did not decode it: default mode
            without `vig_answer`); in default mode with `vig_answer`, VIG's continuation after its question.
        answer: the corrected answer (accepted units joined).
        answer_given_question: full output of the first VIC step (compat); None in default mode, whose first
            step stops after one sentence.
        whole_text: the last prompt plus the last accepted unit (the original's `current_text`).
        answer_lst: accepted units in paragraph mode (empty otherwise, as in the original).
        steps: every accepted unit, in order.
        step_prompts: the prompt of every step, VIG first.
        step_outputs: every VIC step's raw output.
        valid: whether the sample is usable data.
        stop_reason: why VIC ended ("steps", "eos", "empty", "max_sentences", "max_tokens", "invalid_vig",
            "verified").
        rewritten: verify: indices of the VIG sentences that VIC replaced.
    """

    instruction: str
    vig_output: str = ""
    question: str | None = None
    original_answer: str | None = None
    answer: str = ""
    answer_given_question: str | None = None
    whole_text: str = ""
    answer_lst: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    step_prompts: list[str] = field(default_factory=list)
    step_outputs: list[str] = field(default_factory=list)
    valid: bool = True
    stop_reason: str = ""
    rewritten: list[int] = field(default_factory=list)


@dataclass
class GenerationStats:
    """Work done, for progress bars and benchmarks."""

    vision_calls: int = 0
    images_encoded: int = 0
    lm_steps: int = 0
    decoded_tokens: int = 0

    def add(self, out: GeneratedText, rows: int, beams: int) -> None:
        self.lm_steps += out.num_steps
        self.decoded_tokens += out.num_steps * rows * beams
