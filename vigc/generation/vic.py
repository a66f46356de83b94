"""VIG (write a question and answer) followed by VIC (rewrite the answer a sentence at a time).

Three behaviours, chosen by `VICSettings.mode`:

* `compat` is the original `InstructBlipLLavaVIGTask.valid_step`: `answer_length` fixed VIC steps, each decoding a
  full `max_len` output and keeping the text before the first "." (or the first `\\n\\n` block in paragraph mode),
  `last_infer_all`, `gen_style` vig/vic, `answer_given_question`, empty answers kept.
* `default` encodes each image once and reuses the embeddings, stops VIG at the end of its question (the VIC
  steps write the answer; with `vig_answer`, VIG's own answer to that question is decoded after it, as a
  continuation; `vig_question_only: false` ranks VIG's beams on the whole output instead), stops every step's
  decoding at the end of its sentence (a stopping rule, not generate-then-cut), ends a sample on EOS, an empty
  sentence or `max_sentences`, splits sentences properly ("3.5", "e.g.", "?" and "!"), drops finished samples
  from the batch, and rejects invalid or empty QA instead of writing them.
* `verify` (beyond the original) re-reads the image for each sentence of VIG's answer: a VIC step writes its own
  version of that sentence from the question and the sentences accepted so far, and VIG's sentence is replaced
  only when the rewrite is clearly more likely under that same re-read (`verify_margin`, in mean log-probability
  per token). The answer keeps VIG's sentence count; rows without a VIG answer (a user's own question) get the
  default mode's VIC.

Before every VIC step the Q-Former reads the image again with the text so far as its instruction: the prompt is
both the Q-Former text and the LLM prompt.

The model is used only through `vigc.models.text_generation`'s Protocols: `VisualPromptModel` (image encoding,
prompt embeddings, continuation scores, the tokenizer) and its `TextGenerator`, with `StopRule`s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import torch

from vigc.data.prompts import join_units, vic_base_prompt, vic_step_prompt, vig_output, vig_prompt
from vigc.data.sentences import SentenceStop, first_paragraph, split_sentences
from vigc.errors import ConfigError
from vigc.generation.parsing import ANSWER_MARKER, QuestionStop, parse_question_answer, question_part
from vigc.generation.vic_types import MODES, GenerationStats, QAResult, StepCallback, VICSettings
from vigc.models.decoding import DecodingSettings
from vigc.models.text_generation import GeneratedText, StopRule, VisualPromptModel
from vigc.models.tokenizers import LLMTokenizer

__all__ = [
    "MODES",
    "GenerationStats",
    "QAResult",
    "StepCallback",
    "VICSettings",
    "vic_base_prompt",
    "vic_steps",
    "vig_answer_prompt",
    "vig_step",
    "vig_vic",
]


def _encode(model: VisualPromptModel, pixels: torch.Tensor, stats: GenerationStats) -> torch.Tensor:
    stats.vision_calls += 1
    stats.images_encoded += pixels.shape[0]
    return model.encode_images(pixels)


@torch.no_grad()
def _generate(
    model: VisualPromptModel,
    embeds: torch.Tensor,
    prompts: Sequence[str],
    settings: DecodingSettings,
    stats: GenerationStats,
    stop: StopRule | None = None,
    qformer_prompts: Sequence[str] | None = None,
) -> GeneratedText:
    prompt = model.prompt_embeddings(embeds, list(prompts), qformer_prompts)
    out = model.text_generator.generate_text(prompt.inputs_embeds, prompt.attention_mask, settings, stop)
    stats.add(out, len(prompts), settings.num_beams)
    return out


def vig_vic(
    model: VisualPromptModel,
    pixels: torch.Tensor,
    instructions: Sequence[str],
    settings: VICSettings,
    stats: GenerationStats | None = None,
    on_step: StepCallback | None = None,
    question_starts: Sequence[str | None] | None = None,
) -> list[QAResult]:
    """Run VIG + VIC on a batch of images, one instruction per image.

    Args:
        model: the VIGC model.
        pixels: (B, 3, S, S) processed images.
        instructions: B VIG instructions.
        settings: behaviour and decoding.
        stats: counters to add to.
        on_step: called with a sample's result after its VIG step and after each of its VIC steps.
        question_starts: default and verify modes: per image, the first words of the question VIG writes (the
            VIG prompt ends in ``" Question: {start}"``), or None to let VIG choose.
    """
    stats = stats if stats is not None else GenerationStats()
    starts: list[str | None] = list(question_starts) if question_starts is not None else [None] * len(instructions)
    if settings.mode == "compat":
        if any(starts):
            raise ConfigError("question starts change the original's VIG prompt: use vic_mode default or verify.")
        return _compat(model, pixels, list(instructions), settings, stats, on_step)
    return _default(model, pixels, list(instructions), settings, stats, on_step, starts)


def vic_steps(
    model: VisualPromptModel,
    image_embeds: torch.Tensor,
    results: list[QAResult],
    bases: list[str],
    settings: VICSettings,
    stats: GenerationStats,
    pixels: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
) -> None:
    """The VIC steps after VIG, for questions already set on `results` (VIG's, or a user's own question).

    Args:
        model: the VIGC model.
        image_embeds: (B, N, Dv), one row per result.
        results: filled in place (steps, prompts, outputs, answer, whole_text, stop_reason).
        bases: the prompt each first VIC step continues (`vic_base_prompt`; compat keeps the instruction for
            rows without a question, as the original did).
        settings: behaviour and decoding.
        stats: counters to add to.
        pixels: compat with `reencode_images`: the images, encoded again at every step.
        on_step: called with a sample's result after each of its steps.
    """
    notify = on_step or _ignore
    if settings.mode == "compat":
        _compat_vic(model, image_embeds, results, list(bases), settings, stats, pixels, notify)
    elif settings.mode == "verify":
        _verify_vic(model, image_embeds, results, bases, settings, stats, notify)
    else:
        _default_vic(model, image_embeds, results, bases, settings, stats, notify)


def _ignore(result: QAResult) -> None:
    """The step callback when none is given."""


def _compat(
    model: VisualPromptModel,
    pixels: torch.Tensor,
    instructions: list[str],
    s: VICSettings,
    stats: GenerationStats,
    on_step: StepCallback | None,
) -> list[QAResult]:
    """The original's loop, step for step (including its quirks)."""
    results = [QAResult(instruction=text) for text in instructions]
    embeds = _encode(model, pixels, stats)
    for result in results:
        result.step_prompts.append(result.instruction)
    outputs = [texts[0] for texts in _generate(model, embeds, instructions, s.vig_decoding, stats).texts]
    bases = [_compat_vig_update(r, out, s) for r, out in zip(results, outputs, strict=True)]
    for result in results:
        (on_step or _ignore)(result)
    vic_steps(model, embeds, results, bases, s, stats, pixels if s.reencode_images else None, on_step)
    return results


def _compat_vic(
    model: VisualPromptModel,
    embeds: torch.Tensor,
    results: list[QAResult],
    current: list[str],
    s: VICSettings,
    stats: GenerationStats,
    pixels: torch.Tensor | None,
    on_step: StepCallback,
) -> None:
    """Steps 1..answer_length of the original loop: every row stays in the batch, invalid ones too."""
    for step in range(1, s.answer_length + 1):
        if pixels is not None:
            embeds = _encode(model, pixels, stats)
        for result, prompt in zip(results, current, strict=True):
            result.step_prompts.append(prompt)
        outputs = [texts[0] for texts in _generate(model, embeds, current, s.vig_decoding, stats).texts]
        last = step == s.answer_length and s.last_infer_all
        for i, (result, output) in enumerate(zip(results, outputs, strict=True)):
            if result.answer_given_question is None:
                result.answer_given_question = output
            result.step_outputs.append(output)
            current[i] = _compat_vic_update(result, current[i], output, step, last, s)
            on_step(result)
    for result, text in zip(results, current, strict=True):
        result.whole_text = text
        result.stop_reason = result.stop_reason or "steps"


def _compat_vig_update(result: QAResult, output: str, s: VICSettings) -> str:
    result.vig_output = output
    parsed = parse_question_answer(output)
    if parsed is None:
        result.valid, result.stop_reason = False, "invalid_vig"
        return result.instruction
    result.question, result.original_answer = parsed
    if not result.question:
        return result.instruction
    return vic_base_prompt(result.instruction, result.question, s.gen_style)


def _compat_vic_update(result: QAResult, current: str, output: str, step: int, last: bool, s: VICSettings) -> str:
    if not s.in_section:
        unit = output.split(".")[0].strip() + "." if "." in output else ""
        unit = output if last else unit
        result.steps.append(unit)
        result.answer = f"{result.answer} {unit}".strip()
        return f"{current} {unit}".strip()
    unit = output.strip() if last else first_paragraph(output)
    result.steps.append(unit)
    result.answer_lst.append(unit)
    result.answer = f"{result.answer} \n\n{unit}".strip()
    return f"{current} {unit}".strip() if step == 1 else f"{current} \n\n{unit}".strip()


def _default(
    model: VisualPromptModel,
    pixels: torch.Tensor,
    instructions: list[str],
    s: VICSettings,
    stats: GenerationStats,
    on_step: StepCallback | None,
    starts: list[str | None],
) -> list[QAResult]:
    """Encode once, VIG, then sentence-by-sentence VIC with early stops for the valid samples."""
    embeds = _encode(model, pixels, stats)
    results = vig_step(model, embeds, instructions, starts, s, stats)
    for result in results:
        (on_step or _ignore)(result)
    valid = [i for i, result in enumerate(results) if result.valid]
    bases = [vic_base_prompt(results[i].instruction, str(results[i].question), s.gen_style) for i in valid]
    vic_steps(model, embeds[valid], [results[i] for i in valid], bases, s, stats, on_step=on_step)
    return results


def vig_step(
    model: VisualPromptModel,
    image_embeds: torch.Tensor,
    instructions: list[str],
    starts: list[str | None],
    s: VICSettings,
    stats: GenerationStats,
) -> list[QAResult]:
    """The VIG step of the default and verify modes: one question (and, when kept, VIG's answer) per image.

    When `s.vig_stops_at_question`, decoding ends at the answer's first token (`QuestionStop`): the VIC steps write
    the answer. Greedy or sampled, that is the question (and the validity) of the whole output, unless VIG's answer
    would have held "Question:" or "Answer:" again; under beam search the question is ranked on its own instead of
    together with its answer (`vig_question_only: false` ranks the whole output), and a run-on that never writes
    "Answer:" can outrank every ended question. The question is cut at `s.max_question_tokens`, and rows left
    without one are decoded again whole. With `vig_answer`, VIG's answer to each question it stopped at is then
    decoded as a continuation (`_continue_vig_answers`): the questions, and so every VIC answer, do not depend on
    `vig_answer`. A sample is invalid when VIG writes no question or an empty answer.

    Args:
        model: the model.
        image_embeds: (B, N, Dv), one row per instruction.
        instructions: B VIG instructions.
        starts: per image, the question's given first words, or None.
        s: behaviour and decoding.
        stats: counters to add to.
    """
    prompts = [vig_prompt(text, start) for text, start in zip(instructions, starts, strict=True)]
    if not s.vig_stops_at_question:
        results = _vig_pass(model, image_embeds, instructions, prompts, starts, s.vig_decoding, stats, stop=False)
        return results if s.keeps_vig_answer else [_drop_vig_answer(r) for r in results]
    question = s.vig_decoding.with_changes(
        max_new_tokens=min(s.vig_decoding.max_new_tokens, s.max_question_tokens),
        min_new_tokens=min(s.vig_decoding.min_new_tokens, s.max_question_tokens),
    )
    results = _vig_pass(model, image_embeds, instructions, prompts, starts, question, stats, stop=True)
    again = [i for i, result in enumerate(results) if not result.valid]
    if again:
        pick = [prompts[i] for i in again], [starts[i] for i in again], [instructions[i] for i in again]
        redone = _vig_pass(model, image_embeds[again], pick[2], pick[0], pick[1], s.vig_decoding, stats, stop=False)
        for i, result in zip(again, redone, strict=True):
            results[i] = result if s.keeps_vig_answer else _drop_vig_answer(result)
    if s.continues_vig_answer:
        stopped = [i for i, result in enumerate(results) if result.valid and i not in again]
        _continue_vig_answers(model, image_embeds, results, stopped, prompts, s, stats)
    return results


def vig_answer_prompt(instruction: str, question: str) -> str:
    """The LLM prompt of VIG's answer to its own question: VIG's prompt with "Question: {q} Answer:" forced, as
    `question_starts` force the question's first words."""
    return vig_prompt(instruction, f"{question} {ANSWER_MARKER}")


def _continue_vig_answers(
    model: VisualPromptModel,
    image_embeds: torch.Tensor,
    results: list[QAResult],
    rows: list[int],
    vig_prompts: list[str],
    s: VICSettings,
    stats: GenerationStats,
) -> None:
    """VIG's own answers to the questions it stopped at (`rows` of `results`), filled in place: the LLM continues
    `vig_answer_prompt`, the Q-Former reads VIG's prompt (what it read for the question), with VIG's decoding. The
    answer is not a VIC step: it is not in `step_prompts`, and it does not change validity (the question pass
    decides that)."""
    if not rows:
        return
    prompts = [vig_answer_prompt(results[i].instruction, str(results[i].question)) for i in rows]
    qformer_prompts = [vig_prompts[i] for i in rows]
    out = _generate(model, image_embeds[rows], prompts, s.vig_decoding, stats, qformer_prompts=qformer_prompts)
    for i, texts in zip(rows, out.texts, strict=True):
        results[i].original_answer = texts[0]
        results[i].vig_output = f"{results[i].vig_output} {texts[0]}".rstrip()


def _vig_pass(
    model: VisualPromptModel,
    image_embeds: torch.Tensor,
    instructions: list[str],
    prompts: list[str],
    starts: list[str | None],
    decoding: DecodingSettings,
    stats: GenerationStats,
    *,
    stop: bool,
) -> list[QAResult]:
    """One VIG decoding of `prompts`, parsed; with `stop` it ends at the answer's first token (`QuestionStop`)."""
    rule = _question_stop(model.llm_tokenizer, int(decoding.hidden_bos_id is not None)) if stop else None
    vig = _generate(model, image_embeds, prompts, decoding, stats, stop=rule)
    results = [QAResult(instruction=text) for text in instructions]
    for i, (result, texts) in enumerate(zip(results, vig.texts, strict=True)):
        result.step_prompts.append(prompts[i])
        result.vig_output = vig_output(starts[i], texts[0])
        parsed = parse_question_answer(result.vig_output)
        if parsed is None or not parsed[0] or not parsed[1]:
            result.valid, result.stop_reason = False, "invalid_vig"
            continue
        result.question, result.original_answer = parsed
        if stop:  # what VIG wrote of its answer is a token: the record keeps the text up to "Answer:"
            _drop_vig_answer(result)
    return results


def _drop_vig_answer(result: QAResult) -> QAResult:
    """The result without VIG's answer: `original_answer` None, the VIG text cut after "Answer:"."""
    if result.valid:
        result.original_answer = None
        result.vig_output = question_part(result.vig_output) or result.vig_output
    return result


def _vic_decoding(model: VisualPromptModel, s: VICSettings) -> tuple[DecodingSettings, SentenceStop]:
    """The decoding of the VIC steps (with `vic_early_stopping`) and their stop rule (the end of a sentence, or of
    a paragraph)."""
    decoding = s.vic_decoding or s.vig_decoding
    if s.vic_early_stopping:
        decoding = decoding.with_changes(early_stopping=True)
    return decoding, _sentence_stop(model.llm_tokenizer, int(decoding.hidden_bos_id is not None), s.in_section)


# The stop rules read a table of the whole vocabulary (a decode per token: a fraction of a second for 32000 tokens),
# built on first use: one rule per tokenizer and setting, not one per batch. Keyed by the tokenizer's identity; each
# entry holds the tokenizer, so that id is not reused while it is cached.
_STOP_RULES: dict[tuple[str, int, int, bool], tuple[LLMTokenizer, Any]] = {}
_MAX_STOP_RULES = 8
_Rule = TypeVar("_Rule")


def _cached_rule(key: tuple[str, int, int, bool], tokenizer: LLMTokenizer, make: Callable[[], _Rule]) -> _Rule:
    if key not in _STOP_RULES:
        if len(_STOP_RULES) >= _MAX_STOP_RULES:
            del _STOP_RULES[next(iter(_STOP_RULES))]
        _STOP_RULES[key] = (tokenizer, make())
    return cast(_Rule, _STOP_RULES[key][1])


def _sentence_stop(tokenizer: LLMTokenizer, skip: int, paragraphs: bool) -> SentenceStop:
    key = ("sentence", id(tokenizer), skip, paragraphs)
    return _cached_rule(key, tokenizer, lambda: SentenceStop(tokenizer, skip=skip, paragraphs=paragraphs))


def _question_stop(tokenizer: LLMTokenizer, skip: int) -> QuestionStop:
    return _cached_rule(("question", id(tokenizer), skip, False), tokenizer, lambda: QuestionStop(tokenizer, skip=skip))


def _default_vic(
    model: VisualPromptModel,
    embeds: torch.Tensor,
    results: list[QAResult],
    bases: list[str],
    s: VICSettings,
    stats: GenerationStats,
    on_step: StepCallback,
) -> None:
    """Sentence (or paragraph) steps that stop at the unit's end; finished samples leave the batch."""
    decoding, stop = _vic_decoding(model, s)
    active = list(range(len(results)))
    for step in range(s.max_sentences):
        if not active:
            break
        prompts = [vic_step_prompt(bases[i], results[i].steps, s.in_section) for i in active]
        out = _generate(model, embeds[active], prompts, decoding, stats, stop=stop)
        still = []
        for row, i in enumerate(active):
            results[i].step_prompts.append(prompts[row])
            text = out.texts[row][0]
            if _accept_unit(results[i], text, out.sequences[row], stop, decoding, step == s.max_sentences - 1):
                still.append(i)
            results[i].answer = join_units(results[i].steps, s.in_section)  # the answer so far, for on_step
            on_step(results[i])
        active = still
    for result, base in zip(results, bases, strict=True):
        _finish_default(result, base, s.in_section)


def _verify_vic(
    model: VisualPromptModel,
    embeds: torch.Tensor,
    results: list[QAResult],
    bases: list[str],
    s: VICSettings,
    stats: GenerationStats,
    on_step: StepCallback,
) -> None:
    """For each VIG sentence: a VIC step writes its own; VIG's stays unless the rewrite is clearly more likely."""
    drafts = [split_sentences(r.original_answer or "") for r in results]
    unchecked = [i for i, draft in enumerate(drafts) if not draft]
    if unchecked:  # no VIG answer to verify (a user's own question): VIC writes one
        own = [results[i] for i in unchecked]
        _default_vic(model, embeds[unchecked], own, [bases[i] for i in unchecked], s, stats, on_step)
    decoding, stop = _vic_decoding(model, s)  # sentence units: verify refuses paragraph mode
    # The first `max_sentences` are checked; VIG's later sentences (if any) are kept as written, not dropped.
    for step in range(min(max((len(d) for d in drafts), default=0), s.max_sentences)):
        active = [i for i, draft in enumerate(drafts) if step < len(draft)]
        prompts = [vic_step_prompt(bases[i], results[i].steps, False) for i in active]
        out = _generate(model, embeds[active], prompts, decoding, stats, stop=stop)
        rewrites = [stop.unit(texts[0]) for texts in out.texts]
        prefer = _prefer_rewrites(model, embeds[active], prompts, [drafts[i][step] for i in active], rewrites, s)
        for row, i in enumerate(active):
            results[i].step_prompts.append(prompts[row])
            results[i].step_outputs.append(out.texts[row][0])
            results[i].steps.append(rewrites[row] if prefer[row] else drafts[i][step])
            if prefer[row]:
                results[i].rewritten.append(step)
            results[i].answer = join_units(results[i].steps, False)  # the answer so far, for on_step
            on_step(results[i])
    for i, draft in enumerate(drafts):
        if draft:
            results[i].steps.extend(draft[s.max_sentences :])
            results[i].stop_reason = "verified"
            _finish_default(results[i], bases[i], False)


def _prefer_rewrites(
    model: VisualPromptModel,
    embeds: torch.Tensor,
    prompts: list[str],
    drafts: list[str],
    rewrites: list[str],
    s: VICSettings,
) -> list[bool]:
    """Whether each rewrite beats its draft by `verify_margin`, both scored after the same prompt."""
    prefer = [False] * len(drafts)
    differ = [row for row, (draft, new) in enumerate(zip(drafts, rewrites, strict=True)) if new and new != draft]
    if differ:
        rows = differ + differ
        texts = [drafts[row] for row in differ] + [rewrites[row] for row in differ]
        scores = model.continuation_logprobs(embeds[rows], [prompts[row] for row in rows], texts).tolist()
        for k, row in enumerate(differ):
            prefer[row] = scores[len(differ) + k] - scores[k] > s.verify_margin
    return prefer


def _accept_unit(
    result: QAResult, text: str, ids: torch.Tensor, stop: SentenceStop, decoding: DecodingSettings, last: bool
) -> bool:
    """Record one VIC step; returns whether the sample continues."""
    # No `answer_given_question` here: the original's was the first step's whole output (an uncorrected answer);
    # ours stops at the first sentence and ends in the stop rule's look-ahead word, a fragment, so it stays unset.
    result.step_outputs.append(text)
    unit = stop.unit(text)
    if not unit:
        result.stop_reason = "empty"
        return False
    result.steps.append(unit)
    if not stop.finished(text):
        generated = ids.shape[0] - int(decoding.hidden_bos_id is not None)
        result.stop_reason = "max_tokens" if generated >= decoding.max_new_tokens else "eos"
        return False
    if last:
        result.stop_reason = "max_sentences"
        return False
    return True


def _finish_default(result: QAResult, base: str, paragraphs: bool) -> None:
    result.answer = join_units(result.steps, paragraphs)
    result.whole_text = vic_step_prompt(base, result.steps, paragraphs)
    result.answer_lst = list(result.steps) if paragraphs else []
    if not result.answer:
        result.valid = False
