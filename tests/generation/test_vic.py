"""VIG + VIC: compat reproduces the original loop; the default mode agrees with it where the rules coincide."""

from __future__ import annotations

import random

import pytest
import torch

from vigc.data.annotations import QAAnnotation
from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.data.samples import vic_step_sample
from vigc.data.sentences import split_sentences
from vigc.data.shapes import make_scenes
from vigc.data.shapes_scene import render_scene
from vigc.errors import ConfigError
from vigc.generation.records_format import compat_record_fields
from vigc.generation.vic import GenerationStats, QAResult, VICSettings, vic_base_prompt, vic_steps, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import DEFAULT_DIMS, vigc_default
from vigc.models.vigc_model import VIGCModel

CONV = GENERATION_INSTRUCTIONS["conv"]


@pytest.fixture(scope="module")
def pixels(reference_fixture):  # type: ignore[no-untyped-def]
    return torch.load(reference_fixture / "inputs" / "pixels.pt", weights_only=True)


def _settings(mode: str, beams: int, **kwargs: object) -> VICSettings:
    decoding = DecodingSettings.from_lavis(num_beams=beams, max_length=30, min_length=1)
    return VICSettings(mode=mode, vig_decoding=decoding, **kwargs)  # type: ignore[arg-type]


def test_default_and_compat_agree_on_greedy_sentences(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    """Greedy decoding is prefix-consistent, so stopping at the sentence end gives the sentence compat cuts."""
    compat = vig_vic(parity_model, pixels, [CONV] * 4, _settings("compat", 1, answer_length=3))
    # VIG's whole output, as compat decodes it (`vig_question_only: false`)
    whole = _settings("default", 1, max_sentences=3, vig_answer=True, vig_question_only=False)
    default = vig_vic(parity_model, pixels, [CONV] * 4, whole)
    compared = 0
    for old, new in zip(compat, default, strict=True):
        assert new.question == old.question and new.original_answer == old.original_answer
        for k, sentence in enumerate(new.steps):
            if sentence.count(".") == 1 and sentence.endswith("."):  # where the original's "." cut is the same
                assert sentence == old.steps[k]
                assert new.step_prompts[k + 1] == old.step_prompts[k + 1]
                compared += 1
            else:
                break
    assert compared >= 4


def test_default_encodes_once_and_drops_finished_samples(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    stats = GenerationStats()
    results = vig_vic(parity_model, pixels, [CONV] * 4, _settings("default", 5, max_sentences=6), stats)
    assert stats.vision_calls == 1 and stats.images_encoded == 4
    for result in results:
        assert result.valid and result.question and result.answer
        assert result.stop_reason in {"eos", "empty", "max_sentences", "max_tokens"}
        assert result.answer == " ".join(result.steps)
        assert all(step.strip() == step and step for step in result.steps)


def test_answer_fields_are_whole_answers_never_fragments(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    """compat keeps the original's uncorrected first-step answer; default, which stops each step after one
    sentence, writes none rather than a fragment ending in the stop rule's look-ahead word."""
    compat = vig_vic(parity_model, pixels, [CONV] * 4, _settings("compat", 5, answer_length=3))
    default = vig_vic(parity_model, pixels, [CONV] * 4, _settings("default", 5, max_sentences=4))
    for result in compat:
        assert result.answer_given_question == result.step_outputs[0]
        assert compat_record_fields(result)["answer_given_question"] == result.step_outputs[0]
    for result in default:
        assert result.answer_given_question is None and "answer_given_question" not in compat_record_fields(result)
        assert result.answer == " ".join(result.steps)
        for k, (step, output) in enumerate(zip(result.steps, result.step_outputs, strict=False)):
            assert output.startswith(step)
            if result.stop_reason == "max_sentences" or k < len(result.steps) - 1:
                assert step[-1] in ".?!", step  # a finished sentence, without the word that confirmed it


def test_compat_counts_one_encoder_call_per_step_when_asked(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    stats = GenerationStats()
    vig_vic(parity_model, pixels[:2], [CONV] * 2, _settings("compat", 1, answer_length=2, reencode_images=True), stats)
    assert stats.vision_calls == 3


def test_invalid_vig_output_is_not_data(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    # a prompt the tiny model answers without "Question:"/"Answer:"
    results = vig_vic(parity_model, pixels[:1], ["what color is the triangle?"], _settings("default", 1))
    assert not results[0].valid and results[0].stop_reason == "invalid_vig" and results[0].steps == []


def test_paragraph_mode_joins_blocks(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    results = vig_vic(parity_model, pixels[:2], [CONV] * 2, _settings("default", 5, in_section=True, max_sentences=3))
    for result in results:
        assert result.answer_lst == result.steps
        assert result.answer == " \n\n".join(result.steps)
        assert all("\n\n" not in step for step in result.steps)


def test_default_beam_search_rows_do_not_mix() -> None:
    """Batched default VIC under beam search gives each image the answer it gets alone.

    After a sentence end every whitespace-led token confirms it, so all 2k best candidates of a beam search can end
    at once; the live beams must then come from further down the ranking, not from another row (a regression:
    rows once continued batch row 0's text with score 0).
    """
    model = vigc_default()
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    pixels = torch.stack([processor(render_scene(scene)) for scene in make_scenes(4, 999)])
    decoding = DecodingSettings.from_lavis(num_beams=5, max_length=250, min_length=1)
    settings = VICSettings(mode="default", max_sentences=4, vig_decoding=decoding)
    for task in ("conv", "comp"):
        instructions = [GENERATION_INSTRUCTIONS[task]] * 4
        batched = vig_vic(model, pixels, instructions, settings)
        alone = [vig_vic(model, pixels[i : i + 1], instructions[:1], settings)[0] for i in range(4)]
        assert [r.answer for r in batched] == [r.answer for r in alone]
        assert [r.steps for r in batched] == [r.steps for r in alone]
        assert all(r.valid and r.answer for r in batched)


SWAP = {"red": "blue", "blue": "red", "green": "yellow", "yellow": "green", "purple": "orange", "orange": "purple"}


def _plant_error(sentence: str) -> str:
    """The sentence with its first colour word swapped for another colour (a false claim, by design)."""
    return next((sentence.replace(f" {c} ", f" {SWAP[c]} ", 1) for c in SWAP if f" {c} " in sentence), sentence)


def test_verify_keeps_vig_sentences_unless_a_rewrite_clearly_wins() -> None:
    """An unreachable margin gives VIG's answer back sentence for sentence (all of it, beyond `max_sentences`
    too); margin 0 takes every rewrite that differs and scores higher, and records which: on descriptions with
    planted colour errors the re-read image replaces some of them."""
    model = vigc_default()
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    pixels = torch.stack([processor(render_scene(scene)) for scene in make_scenes(8, 777)])
    embeds = model.encode_images(pixels)
    decoding = DecodingSettings.from_lavis(num_beams=5, max_length=250, min_length=1)
    desc = GENERATION_INSTRUCTIONS["desc"]
    vig_settings = VICSettings(mode="default", vig_decoding=decoding, max_sentences=1, vig_answer=True)
    vig = vig_vic(model, pixels, [desc] * 8, vig_settings)
    planted = [[_plant_error(s) for s in split_sentences(r.original_answer or "")] for r in vig]
    assert (
        sum(
            p != s
            for r, ps in zip(vig, planted, strict=True)
            for p, s in zip(ps, split_sentences(str(r.original_answer)), strict=True)
        )
        > 10
    )
    rewrites = 0
    for margin in (1e9, 0.0):
        settings = VICSettings(mode="verify", vig_decoding=decoding, verify_margin=margin)
        results = [
            QAResult(desc, question=r.question, original_answer=" ".join(d)) for r, d in zip(vig, planted, strict=True)
        ]
        bases = [vic_base_prompt(desc, str(r.question), "vig") for r in results]
        vic_steps(model, embeds, results, bases, settings, GenerationStats())
        for result, drafts in zip(results, planted, strict=True):
            assert len(result.steps) == len(drafts) and result.stop_reason == "verified"
            assert len(result.step_prompts) == min(len(drafts), settings.max_sentences)
            for k, (draft, step) in enumerate(zip(drafts, result.steps, strict=True)):
                assert (step != draft) == (k in result.rewritten)
            if margin > 1:
                assert result.steps == drafts and result.rewritten == []
            rewrites += len(result.rewritten)
    assert rewrites > 0


def test_continuation_logprobs_do_not_depend_on_the_batch(parity_model: VIGCModel, pixels: torch.Tensor) -> None:
    embeds = parity_model.encode_images(pixels[:3])
    prompts = ["what is it? Answer:", "a much longer prompt about the image and its colours. Answer:", "Q"]
    texts = ["it is red.", "the image is simple and small.", "x"]
    together = parity_model.continuation_logprobs(embeds, prompts, texts)
    alone = torch.cat(
        [parity_model.continuation_logprobs(embeds[i : i + 1], prompts[i : i + 1], texts[i : i + 1]) for i in range(3)]
    )
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert bool((together < 0).all())


def test_vic_step_samples_train_on_the_prompts_vic_steps_build() -> None:
    """A `vic_step` training sample of a generated answer has exactly the prompt of the VIC step it stands for."""
    model = vigc_default()
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    pixels = torch.stack([processor(render_scene(scene)) for scene in make_scenes(4, 999)])
    decoding = DecodingSettings.from_lavis(num_beams=1, max_length=250, min_length=1)
    desc = GENERATION_INSTRUCTIONS["desc"]
    for gen_style in ("vig", "vic"):
        settings = VICSettings(mode="default", max_sentences=8, vig_decoding=decoding, gen_style=gen_style)
        results = [r for r in vig_vic(model, pixels, [desc] * 4, settings) if r.valid and len(r.steps) >= 2]
        assert results
        for result in results:
            record = QAAnnotation(image="x.png", question=str(result.question), answers=[result.answer])
            seen = set()
            for seed in range(200):
                pair = vic_step_sample(record, (desc,), random.Random(seed), gen_style=gen_style)
                j = next(k for k in range(len(result.steps)) if pair.text_output == " ".join(result.steps[k:]))
                assert pair.text_input == result.step_prompts[1 + j]  # step_prompts[0] is VIG's instruction
                seen.add(j)
            assert seen == set(range(len(result.steps)))


def test_question_starts_begin_vig_questions_and_compat_refuses_them() -> None:
    """VIG continues a given question start (as the original's OKVQA question pass does); the record's VIG text
    and question carry it; the original's loop keeps its own prompt."""
    model = vigc_default()
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    pixels = torch.stack([processor(render_scene(scene)) for scene in make_scenes(4, 999)])
    decoding = DecodingSettings.from_lavis(num_beams=1, max_length=250, min_length=1)
    comp = GENERATION_INSTRUCTIONS["comp"]
    starts = ["Is the", "Which is", None, "Does the"]
    settings = VICSettings(mode="default", max_sentences=6, vig_decoding=decoding)
    results = vig_vic(model, pixels, [comp] * 4, settings, question_starts=starts)
    for result, start in zip(results, starts, strict=True):
        assert result.step_prompts[0] == (f"{comp} Question: {start}" if start else comp)
        if start:
            assert result.vig_output.startswith(f"Question: {start} ")
            assert result.question is not None and result.question.startswith(start)
    alone = vig_vic(model, pixels[2:3], [comp], settings)[0]
    assert (alone.question, alone.answer) == (results[2].question, results[2].answer)
    with pytest.raises(ConfigError, match="use vic_mode default or verify"):
        vig_vic(model, pixels[:1], [comp], _settings("compat", 1), question_starts=["Is the"])


@pytest.fixture(scope="module")
def scenes_pixels() -> torch.Tensor:
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    return torch.stack([processor(render_scene(scene)) for scene in make_scenes(6, 999)])


def _qa(result: QAResult) -> tuple[object, ...]:
    return result.question, result.answer, result.steps, result.step_prompts[1:], result.valid, result.stop_reason


def _direct_vig_answers(model: VIGCModel, pixels: torch.Tensor, instruction: str, questions: list[str], beams: int):  # type: ignore[no-untyped-def]
    """VIG's answers decoded straight from the model: the LLM prompt "{instruction} Question: {q} Answer:", the
    Q-Former reading the instruction alone (VIG's prompt), VIG's decoding."""
    decoding = DecodingSettings.from_lavis(num_beams=beams, max_length=250, min_length=1)
    embeds = model.encode_images(pixels)
    forced = [f"{instruction} Question: {q} Answer:" for q in questions]
    prompt = model.prompt_embeddings(embeds, forced, qformer_prompts=[instruction] * len(questions))
    out = model.text_generator.generate_text(prompt.inputs_embeds, prompt.attention_mask, decoding)
    return [texts[0] for texts in out.texts]


def test_vig_answer_continues_the_question_without_changing_the_qa(scenes_pixels: torch.Tensor) -> None:
    """By default VIG stops at the end of its question, under beam search too. `vig_answer` then decodes VIG's own
    answer to that question as a continuation: the questions, every VIC step and the final answers are those
    without `vig_answer`, and `original_answer` is what VIG writes after "Question: {q} Answer:" (the Q-Former
    reading VIG's prompt). Without `vig_answer`, `original_answer` is None and the VIG text ends at "Answer:"."""
    model = vigc_default()
    for beams, task in ((1, "conv"), (3, "desc"), (3, "comp")):
        decoding = DecodingSettings.from_lavis(num_beams=beams, max_length=250, min_length=1)
        instructions = [GENERATION_INSTRUCTIONS[task]] * scenes_pixels.shape[0]
        runs = {}
        for vig_answer in (True, False):
            stats = GenerationStats()
            settings = VICSettings(mode="default", max_sentences=6, vig_decoding=decoding, vig_answer=vig_answer)
            assert settings.vig_stops_at_question
            runs[vig_answer] = vig_vic(model, scenes_pixels, instructions, settings, stats), stats
        (kept, kept_stats), (bare, bare_stats) = runs[True], runs[False]
        assert [_qa(r) for r in kept] == [_qa(r) for r in bare] and sum(r.valid for r in bare) >= 4
        assert kept_stats.decoded_tokens > bare_stats.decoded_tokens and kept_stats.vision_calls == 1
        valid = [i for i, r in enumerate(bare) if r.valid]
        direct = _direct_vig_answers(
            model, scenes_pixels[valid], instructions[0], [str(bare[i].question) for i in valid], beams
        )
        assert [kept[i].original_answer for i in valid] == direct and all(direct)
        for with_answer, without in zip(kept, bare, strict=True):
            assert without.original_answer is None
            if without.valid:
                assert without.vig_output.endswith("Answer:")
                assert with_answer.vig_output == f"{without.vig_output} {with_answer.original_answer}"


def test_whole_output_ranking_is_an_option(scenes_pixels: torch.Tensor) -> None:
    """`vig_question_only: false` ranks VIG's beams on the question together with its answer (the whole output, as
    before question-only was the default): the same QA with or without `vig_answer`, and the same decoding; the
    question-only default decodes less. Greedy VIG without `vig_answer` still stops at the question there (the
    same question). compat and verify always decode VIG's whole output."""
    model = vigc_default()
    decoding = DecodingSettings.from_lavis(num_beams=3, max_length=250, min_length=1)
    instructions = [GENERATION_INSTRUCTIONS["comp"]] * scenes_pixels.shape[0]
    runs = {}
    for vig_answer in (True, False):
        stats = GenerationStats()
        settings = VICSettings(vig_decoding=decoding, vig_answer=vig_answer, vig_question_only=False)
        runs[vig_answer] = vig_vic(model, scenes_pixels, instructions, settings, stats), stats
    (kept, kept_stats), (bare, bare_stats) = runs[True], runs[False]
    assert [_qa(r) for r in kept] == [_qa(r) for r in bare] and kept_stats.decoded_tokens == bare_stats.decoded_tokens
    for with_answer, without in zip(kept, bare, strict=True):
        assert without.original_answer is None and (with_answer.original_answer is not None) == with_answer.valid
    question_only = GenerationStats()
    results = vig_vic(model, scenes_pixels, instructions, VICSettings(vig_decoding=decoding), question_only)
    assert question_only.decoded_tokens < bare_stats.decoded_tokens and all(r.valid and r.answer for r in results)
    assert all(r.vig_output.endswith("Answer:") and r.original_answer is None for r in results)
    greedy = DecodingSettings.from_lavis(num_beams=1, max_length=250, min_length=1)
    assert VICSettings(vig_decoding=greedy, vig_question_only=False).vig_stops_at_question
    assert not VICSettings(vig_decoding=greedy, vig_question_only=False, vig_answer=True).vig_stops_at_question
    assert not VICSettings(mode="compat").vig_stops_at_question and not VICSettings(mode="verify").vig_stops_at_question


def test_questions_that_do_not_end_are_decoded_again_with_their_answer(scenes_pixels: torch.Tensor) -> None:
    """A question not ended within `max_question_tokens` (beam search can rank a run-on above every ended
    question) is decoded again whole: here every row, so the QA equal those of the whole output's."""
    model = vigc_default()
    decoding = DecodingSettings.from_lavis(num_beams=3, max_length=250, min_length=1)
    instructions = [GENERATION_INSTRUCTIONS["comp"]] * 3
    whole = VICSettings(vig_decoding=decoding, vig_answer=True, vig_question_only=False)
    kept = vig_vic(model, scenes_pixels[:3], instructions, whole)
    stats = GenerationStats()
    cut = VICSettings(vig_decoding=decoding, max_question_tokens=2)
    redone = vig_vic(model, scenes_pixels[:3], instructions, cut, stats)
    assert [_qa(r) for r in redone] == [_qa(r) for r in kept] and all(r.valid for r in redone)
    for again, whole_result in zip(redone, kept, strict=True):
        assert again.vig_output.endswith("Answer:") and whole_result.vig_output.startswith(again.vig_output)
    assert all(r.original_answer is None for r in redone) and stats.lm_steps > 2 * 3
    # with `vig_answer` the rows decoded again whole keep that answer (nothing to continue)
    answered = vig_vic(
        model,
        scenes_pixels[:3],
        instructions,
        VICSettings(vig_decoding=decoding, vig_answer=True, max_question_tokens=2),
    )
    assert [r.original_answer for r in answered] == [r.original_answer for r in kept]
    with pytest.raises(ConfigError, match="max_question_tokens"):
        VICSettings(max_question_tokens=0)


def test_vic_early_stopping_shortens_the_vic_steps_only(scenes_pixels: torch.Tensor) -> None:
    """`vic_early_stopping` ends the default and verify VIC steps' beam search once 5 sentences are finished: the
    same questions (VIG's decoding is not touched), fewer LM calls; compat (the original) ignores it."""
    model = vigc_default()
    decoding = DecodingSettings.from_lavis(num_beams=5, max_length=250, min_length=1)
    instructions = [GENERATION_INSTRUCTIONS["conv"]] * scenes_pixels.shape[0]
    for mode in ("default", "verify", "compat"):
        runs = []
        for early in (False, True):
            stats = GenerationStats()
            settings = VICSettings(mode=mode, vig_decoding=decoding, max_sentences=4, vic_early_stopping=early)
            runs.append((vig_vic(model, scenes_pixels, instructions, settings, stats), stats))
        (late, late_stats), (early_results, early_stats) = runs
        assert [r.vig_output for r in early_results] == [r.vig_output for r in late]
        if mode == "compat":
            assert [_qa(r) for r in early_results] == [_qa(r) for r in late] and early_stats == late_stats
        else:
            assert early_stats.lm_steps < late_stats.lm_steps, mode
            assert all(r.valid and r.answer for r in early_results)
