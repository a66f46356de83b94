"""The decoding seam: VIG + VIC through a second `TextGenerator`, transformers' own `generate`, gives our texts.

`vigc.generation.vic` sees the model only through `VisualPromptModel` and its `TextGenerator`; swapping the engine
(`VIGCModel.text_generator`) must not change what VIG + VIC write under greedy decoding, in compat and default
mode, with the stop rules (the VIC sentence end, VIG's question end) adapted to transformers' `StoppingCriteria`.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from transformers import PreTrainedModel, StoppingCriteria, StoppingCriteriaList

from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.data.shapes import make_scenes
from vigc.data.shapes_scene import render_scene
from vigc.generation.vic import GenerationStats, VICSettings, vig_vic
from vigc.models.decoding import DecodingSettings
from vigc.models.default_model import DEFAULT_DIMS, vigc_default
from vigc.models.text_generation import GeneratedText, StopRule, decode_generated, group_texts
from vigc.models.tokenizers import LLMTokenizer
from vigc.models.vigc_model import LoopTextGenerator


class _StopCriterion(StoppingCriteria):
    """A `StopRule` as a transformers stopping criterion (whose ids hold only the new tokens)."""

    def __init__(self, rule: StopRule, hidden_bos_id: int | None) -> None:
        self.rule, self.hidden_bos_id = rule, hidden_bos_id

    def __call__(self, input_ids: torch.LongTensor, scores: object, **kwargs: object) -> torch.BoolTensor:
        return self.rule(_with_hidden_bos(input_ids, self.hidden_bos_id))  # type: ignore[return-value]


def _with_hidden_bos(ids: torch.Tensor, hidden_bos_id: int | None) -> torch.Tensor:
    if hidden_bos_id is None:
        return ids
    return torch.cat([torch.full((ids.shape[0], 1), hidden_bos_id, dtype=ids.dtype, device=ids.device), ids], 1)


class TransformersGenerate:
    """A minimal second engine: `generate` of the transformers LM, greedy or sampling, one text per input."""

    def __init__(self, language_model: PreTrainedModel, tokenizer: LLMTokenizer) -> None:
        self.language_model, self.tokenizer = language_model, tokenizer
        self.calls = 0

    def generate_text(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        settings: DecodingSettings,
        stop: StopRule | None = None,
        generator: torch.Generator | None = None,
    ) -> GeneratedText:
        if settings.num_beams != 1 or settings.num_return_sequences != 1 or generator is not None:
            raise NotImplementedError("this engine decodes greedy or sampled single sequences")
        self.calls += 1
        criteria = StoppingCriteriaList([_StopCriterion(stop, settings.hidden_bos_id)] if stop is not None else [])
        eos = self.tokenizer.eos_token_id
        # It warns that the repetition penalty then applies to the new tokens only: as ours (4.33's from embeddings,
        # where only the hidden BOS joins them; that id is never generated here).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Passing `repetition_penalty` with `inputs_embeds`")
            out = self.language_model.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                do_sample=settings.do_sample,
                num_beams=1,
                max_new_tokens=settings.max_new_tokens,
                min_new_tokens=settings.min_new_tokens,
                repetition_penalty=settings.repetition_penalty,
                eos_token_id=eos,
                pad_token_id=eos,
                stopping_criteria=criteria,
                return_dict_in_generate=True,
                output_logits=True,
            )
        new = out.sequences  # (B, T): from embeddings alone, generate returns the new tokens only
        logprobs = torch.stack(out.logits, 1).float().log_softmax(-1).gather(2, new[:, :, None]).squeeze(2)
        real = torch.ones_like(new, dtype=torch.bool)  # up to and including each row's EOS
        real[:, 1:] = (new[:, :-1] != eos).cumprod(1).bool()
        scores = (logprobs * real).sum(1) / real.sum(1) ** settings.length_penalty
        sequences = _with_hidden_bos(new, settings.hidden_bos_id)
        texts = group_texts(decode_generated(self.tokenizer, sequences), 1)
        return GeneratedText(texts, sequences, scores, new.shape[1])


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    processor = EvalImageProcessor(DEFAULT_DIMS["image_size"])
    return torch.stack([processor(render_scene(scene)) for scene in make_scenes(4, 999)])


@pytest.mark.parametrize("mode", ["compat", "default"])
def test_vig_vic_through_transformers_generate_gives_our_texts(pixels: torch.Tensor, mode: str) -> None:
    model = vigc_default()
    assert isinstance(model.text_generator, LoopTextGenerator)
    decoding = DecodingSettings.from_lavis(num_beams=1, max_length=120, min_length=1)
    settings = VICSettings(mode=mode, answer_length=3, max_sentences=4, vig_decoding=decoding)
    engine = TransformersGenerate(model.language_model, model.llm_tokenizer)
    for task in ("conv", "desc"):
        instructions = [GENERATION_INSTRUCTIONS[task]] * 4
        with torch.no_grad():
            ours = vig_vic(model, pixels, instructions, settings, GenerationStats())
            model.text_generator = engine
            try:
                theirs = vig_vic(model, pixels, instructions, settings, GenerationStats())
            finally:
                model.text_generator = LoopTextGenerator(model.language_model, model.llm_tokenizer)
        assert [r.vig_output for r in theirs] == [r.vig_output for r in ours]
        assert [r.step_outputs for r in theirs] == [r.step_outputs for r in ours]
        assert [(r.question, r.answer, r.valid) for r in theirs] == [(r.question, r.answer, r.valid) for r in ours]
        assert sum(r.valid and len(r.steps) > 0 for r in ours) >= 3
    assert engine.calls >= 4  # VIG and VIC steps went through the second engine
