"""Behaviour of the VIGC model: loss masking, freezing, decoding modes, precision, ranking."""

from __future__ import annotations

import pytest
import torch

from vigc.models.builders import vigc_model
from vigc.models.decoding import DecodingSettings
from vigc.models.text_generation import StopWhen
from vigc.models.vigc_model import IGNORE_INDEX, VIGCModel, shift_padding_to_left


@pytest.fixture(scope="module")
def tiny(tiny_model_kwargs: dict[str, object]) -> VIGCModel:
    torch.manual_seed(0)
    return vigc_model(**tiny_model_kwargs)  # type: ignore[arg-type]


def _pixels(n: int, size: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_loss_labels_cover_only_the_targets(tiny: VIGCModel) -> None:
    embeds = tiny.encode_images(_pixels(2))
    out = tiny.loss(embeds, ["what color is it?", "describe"], ["red.", " Question: a? Answer: b."])
    q = tiny.query_tokens.shape[1]
    labels, ids, mask = out.batch.labels, out.batch.input_ids, out.batch.attention_mask
    assert (labels[:, :q] == IGNORE_INDEX).all()
    eos, pad = tiny.llm_tokenizer.eos_token_id, tiny.llm_tokenizer.pad_token_id
    for row in range(2):
        n_in = len(tiny.llm_tokenizer.encode(["what color is it?", "describe"][row]))
        assert (labels[row, q : q + n_in] == IGNORE_INDEX).all()  # the instruction is never a target
        targets = labels[row, q + n_in :]
        valid = targets[targets != IGNORE_INDEX]
        assert valid[-1] == eos and (ids[row][mask[row, q:] == 0] == pad).all()
        assert torch.equal(valid, ids[row, n_in:][ids[row, n_in:] != pad])
    assert torch.isfinite(out.loss)


def test_gradients_reach_only_trainable_parts(tiny_model_kwargs: dict[str, object]) -> None:
    model = vigc_model(**tiny_model_kwargs).train()  # type: ignore[arg-type]
    out = model.loss(model.encode_images(_pixels(1)), ["hi"], ["there."])
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("qformer.") for n in trainable) and "query_tokens" in trainable
    assert {"language_projection.weight", "vision_model.post_layernorm.weight"} <= trainable
    assert not any(
        n.startswith(("language_model.", "vision_model.encoder", "vision_model.embeddings")) for n in trainable
    )
    assert model.query_tokens.grad is not None and model.language_projection.weight.grad is not None


@pytest.mark.parametrize(
    ("flags", "frozen_prefix", "trainable_prefix"),
    [
        ({"freeze_vit_ln": True}, "vision_model.post_layernorm", "qformer."),
        ({"freeze_qformer": True}, "qformer.", "language_projection."),
        ({"freeze_vit": False}, "language_model.", "vision_model.encoder"),
        ({"freeze_llm": False}, "vision_model.encoder", "language_model."),
    ],
)
def test_freezing_flags(
    tiny_model_kwargs: dict[str, object], flags: dict[str, bool], frozen_prefix: str, trainable_prefix: str
) -> None:
    model = vigc_model(**{**tiny_model_kwargs, **flags})  # type: ignore[arg-type]
    params = dict(model.named_parameters())
    assert not any(p.requires_grad for n, p in params.items() if n.startswith(frozen_prefix))
    assert all(p.requires_grad for n, p in params.items() if n.startswith(trainable_prefix))


def test_shift_padding_to_left_keeps_order() -> None:
    embeds = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]])
    shifted, new_mask = shift_padding_to_left(embeds, mask)
    assert shifted[0, :, 0].tolist() == [3, 4, 0, 1, 2, 5]
    assert new_mask.tolist() == [[0, 0, 1, 1, 1, 1], [1] * 6]


def test_greedy_matches_transformers_generate(parity_model: VIGCModel) -> None:
    """Without the 4.33 compatibility, our greedy loop is plain greedy decoding: same ids as transformers 5."""
    model = parity_model
    embeds = model.encode_images(_pixels(2))
    prompts = [
        "what color is the circle?",
        "Generate a question based on the content of the given image and then answer it.",
    ]
    settings = DecodingSettings(max_new_tokens=12)
    ours = model.generate(embeds, prompts, settings)
    theirs = model.language_model.generate(
        inputs_embeds=ours.prompt_embeds,
        attention_mask=ours.prompt_attention_mask,
        max_new_tokens=12,
        do_sample=False,
        num_beams=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    assert ours.sequences.tolist() == theirs[:, : ours.sequences.shape[1]].tolist()


def test_the_qformer_can_read_another_text_than_the_llm(tiny: VIGCModel) -> None:
    """`qformer_prompts` changes the visual prefix only: the LLM's prompt tokens stay those of `prompts`."""
    embeds = tiny.encode_images(_pixels(2))
    prompts = ["describe it. Question: what? Answer:", "where? Answer:"]
    plain = tiny.prompt_embeddings(embeds, prompts)
    same = tiny.prompt_embeddings(embeds, prompts, qformer_prompts=prompts)
    other = tiny.prompt_embeddings(embeds, prompts, qformer_prompts=["describe it.", "where?"])
    assert torch.equal(plain.inputs_embeds, same.inputs_embeds) and torch.equal(plain.input_ids, other.input_ids)
    assert torch.equal(plain.attention_mask, other.attention_mask)
    q = tiny.query_tokens.shape[1]
    for row in range(2):
        real = plain.attention_mask[row].bool()  # left-padded: [pads][prefix (q)][prompt tokens]
        before, after = plain.inputs_embeds[row][real], other.inputs_embeds[row][real]
        assert not torch.equal(before[:q], after[:q]) and torch.equal(before[q:], after[q:])


def test_batching_does_not_change_greedy_text(parity_model: VIGCModel) -> None:
    pixels = _pixels(3, seed=1)
    prompts = [
        "what color is the square?",
        "Generate a question to describe the image content in detail and then answer it.",
        "where?",
    ]
    settings = DecodingSettings.from_lavis(num_beams=1, max_length=20)
    batched = parity_model.generate(parity_model.encode_images(pixels), prompts, settings).texts
    for i in range(3):
        alone = parity_model.generate(parity_model.encode_images(pixels[i : i + 1]), [prompts[i]], settings).texts
        assert alone[0] == batched[i]


def test_beams_return_several_sequences_best_first(parity_model: VIGCModel) -> None:
    settings = DecodingSettings.from_lavis(num_beams=4, max_length=20, num_captions=3)
    out = parity_model.generate(parity_model.encode_images(_pixels(2)), "what color is the circle?", settings)
    assert [len(t) for t in out.texts] == [3, 3]
    scores = out.scores.view(2, 3)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_sampling_is_reproducible_with_a_generator(parity_model: VIGCModel) -> None:
    settings = DecodingSettings(do_sample=True, top_p=0.9, temperature=1.2, max_new_tokens=15, num_return_sequences=2)
    embeds = parity_model.encode_images(_pixels(1))
    runs = [
        parity_model.generate(embeds, "describe", settings, generator=torch.Generator().manual_seed(s)).sequences
        for s in (7, 7, 8)
    ]
    assert torch.equal(runs[0], runs[1])
    assert runs[0].shape[0] == 2


def test_min_new_tokens_forbids_early_eos(parity_model: VIGCModel) -> None:
    eos = parity_model.llm_tokenizer.eos_token_id
    settings = DecodingSettings(max_new_tokens=8, min_new_tokens=6, repetition_penalty=1.0)
    out = parity_model.generate(parity_model.encode_images(_pixels(2)), "answer:", settings)
    assert (out.sequences[:, :6] != eos).all()


def test_stop_condition_ends_rows(parity_model: VIGCModel) -> None:
    period = parity_model.llm_tokenizer.encode("a.")[-1]

    stop = StopWhen(lambda ids: ids[:, -1] == period)

    settings = DecodingSettings(max_new_tokens=29)
    prompt = "Generate a question based on the content of the given image and then answer it."
    out = parity_model.generate(parity_model.encode_images(_pixels(2)), prompt, settings, stop=stop)
    for text in out.texts:
        assert text[0].endswith(".") and text[0].count(".") == 1
    beams = parity_model.generate(
        parity_model.encode_images(_pixels(2)), prompt, settings.with_changes(num_beams=3), stop=stop
    )
    for text in beams.texts:
        assert text[0].count(".") <= 1


def test_bf16_runs_on_cpu(tiny_model_kwargs: dict[str, object]) -> None:
    model = vigc_model(**{**tiny_model_kwargs, "precision": "bf16"})  # type: ignore[arg-type]
    assert model.language_model.dtype == torch.bfloat16
    assert model.qformer.embeddings.word_embeddings.weight.dtype == torch.float32
    embeds = model.encode_images(_pixels(1))
    assert embeds.dtype == torch.float32
    assert torch.isfinite(model.loss(embeds, ["q"], ["a."]).loss)
    assert len(model.generate(embeds, "q", DecodingSettings(max_new_tokens=3)).texts) == 1


def test_rank_candidates_sum_and_mean(parity_model: VIGCModel) -> None:
    embeds = parity_model.encode_images(_pixels(1))
    candidates = ["red", "blue", "a very long green answer"]
    by_sum = parity_model.rank_candidates(embeds, "what color?", candidates, reduction="sum")
    by_mean = parity_model.rank_candidates(embeds, "what color?", candidates, reduction="mean")
    n_tokens = (by_sum.batch.labels != IGNORE_INDEX).sum(1)
    assert torch.allclose(by_mean.losses, by_sum.losses / n_tokens)
    assert by_sum.best == int(torch.argmin(by_sum.lavis_losses))
    with pytest.raises(ValueError, match="reduction"):
        parity_model.rank_candidates(embeds, "q", candidates, reduction="max")
