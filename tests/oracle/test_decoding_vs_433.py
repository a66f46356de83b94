"""Differential tests of `vigc.models.decoding` against transformers 4.33.3's `generate` from `inputs_embeds`.

1200 random cases on 40 random tiny LLaMA models (float32, as the original ran on CPU; wide initial weights make
next-token choices far from ties): batches of 1-8 rows with left padding of different lengths, greedy,
sampling (temperature, top-p, top-k, a seeded generator against 4.33's seeded global one), 2 and 5 beams,
max_length / min_length edge values (EOS as the first token, max_length reached, min_length blocking EOS),
repetition_penalty 1.0 / 1.5, length_penalty 0.5 / 1 / 2, num_return_sequences, and half of the beam cases with
`early_stopping=True`. The reference side runs once, in one process of the oracle environment
(`tests/oracle/reference_433.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.oracle.conftest import run_reference
from vigc.models.decoding import DecodingInputs, DecodingOutput, DecodingSettings, decode
from vigc.models.vigc_model import CausalLMStep

NUM_MODELS = 40
CASES_PER_MODEL = 30
MODES = ("greedy", "sample", "beam2", "beam5")


@dataclass
class Case:
    model: int
    mode: str
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L), left padding
    kwargs: dict[str, Any]  # 4.33 generate arguments
    seed: int
    eos_is_likeliest: bool  # EOS is row 0's most likely first token

    def settings(self) -> DecodingSettings:
        k = self.kwargs
        return DecodingSettings(
            num_beams=k["num_beams"],
            do_sample=k["do_sample"],
            temperature=k["temperature"],
            top_p=k["top_p"],
            top_k=k["top_k"],
            max_new_tokens=k["max_length"] - 1,  # 4.33 counts the hidden BOS
            min_new_tokens=max(0, k["min_length"] - 1),
            repetition_penalty=k["repetition_penalty"],
            length_penalty=k["length_penalty"],
            num_return_sequences=k["num_return_sequences"],
            hidden_bos_id=k["bos_token_id"],
            early_stopping=k.get("early_stopping", False),
        )


def _model_spec(rng: random.Random, index: int) -> tuple[LlamaForCausalLM, dict[str, Any]]:
    hidden = rng.choice([16, 32])
    config = {
        "vocab_size": rng.randint(12, 64),
        "hidden_size": hidden,
        "intermediate_size": rng.choice([2, 3]) * hidden,
        "num_hidden_layers": rng.choice([1, 2]),
        "num_attention_heads": (heads := rng.choice([2, 4])),
        "num_key_value_heads": heads,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    }
    torch.manual_seed(1000 + index)
    # A wide init makes next-token distributions peaked, so beams, penalties and EOS all matter.
    model = LlamaForCausalLM(LlamaConfig(**config, initializer_range=rng.uniform(0.1, 0.5)))
    return model.eval(), {"config": config, "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}


def _first_step_ranking(model: LlamaForCausalLM, embeds: torch.Tensor, mask: torch.Tensor) -> list[int]:
    """Tokens by first-step logit of row 0: picking one of the top ones as EOS makes 'EOS first' cases."""
    with torch.no_grad():
        logits, _ = CausalLMStep(model)(embeds, mask, (mask.cumsum(-1) - 1).clamp(min=0), None)
    return logits[0].argsort(descending=True).tolist()


def _case(rng: random.Random, model: LlamaForCausalLM, index: int, vocab: int, hidden: int) -> Case:
    mode = rng.choice(MODES)
    batch, length = rng.randint(1, 8), rng.randint(1, 10)
    mask = torch.zeros(batch, length, dtype=torch.long)
    for row in range(batch):
        mask[row, length - rng.randint(1, length) :] = 1  # left padding of different lengths
    embeds = torch.randn(batch, length, hidden, generator=torch.Generator().manual_seed(index))
    ranking = _first_step_ranking(model, embeds, mask)
    eos = rng.choice([ranking[0], ranking[rng.randint(1, 3)], rng.randrange(vocab)])  # EOS first, soon or rare
    max_length = rng.choice([2, 3, rng.randint(4, 14)])
    beams = {"beam2": 2, "beam5": 5}.get(mode, 1)
    kwargs = {
        "do_sample": mode == "sample",
        "num_beams": beams,
        "max_length": max_length,
        "min_length": rng.choice([0, 1, rng.randint(2, max_length + 1)]),
        "repetition_penalty": rng.choice([1.0, 1.5]),
        "length_penalty": rng.choice([0.5, 1.0, 2.0]),
        "num_return_sequences": {"greedy": 1, "sample": rng.randint(1, 3)}.get(mode, rng.randint(1, beams)),
        "temperature": rng.choice([0.7, 1.0, 1.3]) if mode == "sample" else 1.0,
        "top_p": rng.choice([1.0, 0.9, 0.5]) if mode == "sample" else 1.0,
        "top_k": rng.choice([0, 5]) if mode == "sample" else 0,
        "eos_token_id": eos,
        "pad_token_id": rng.choice([eos, rng.randrange(vocab)]),
        "bos_token_id": rng.randrange(vocab),
    }
    if beams > 1 and rng.random() < 0.5:
        kwargs["early_stopping"] = True  # 4.33: a row is done once it holds num_beams finished hypotheses
    return Case(0, mode, embeds, mask, kwargs, seed=index, eos_is_likeliest=eos == ranking[0])


@dataclass
class Comparison:
    cases: list[Case]
    ours: list[DecodingOutput]
    reference: list[dict[str, Any]]
    without_early_stopping: dict[int, DecodingOutput]  # the early-stopping cases decoded again with it off


@pytest.fixture(scope="module")
def comparison(oracle_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    rng = random.Random(20261203)
    models, specs, cases = [], [], []
    for m in range(NUM_MODELS):
        model, spec = _model_spec(rng, m)
        models.append(model)
        specs.append(spec)
        for _ in range(CASES_PER_MODEL):
            case = _case(rng, model, len(cases), spec["config"]["vocab_size"], spec["config"]["hidden_size"])
            case.model = m
            cases.append(case)
    folder = tmp_path_factory.mktemp("oracle_decode")
    request = {
        "models": specs,
        "cases": [
            {"model": c.model, "inputs_embeds": c.inputs_embeds, "attention_mask": c.attention_mask}
            | {"kwargs": c.kwargs, "seed": c.seed}
            for c in cases
        ],
    }
    torch.save(request, folder / "request.pt")
    run_reference(oracle_python, "decode", folder / "request.pt", folder / "result.pt")
    reference = torch.load(folder / "result.pt", weights_only=True)
    ours, late = [], {}
    with torch.no_grad():
        for i, case in enumerate(cases):
            model = models[case.model]
            inputs = DecodingInputs(
                inputs_embeds=case.inputs_embeds,
                attention_mask=case.attention_mask,
                embed=model.get_input_embeddings(),
                step=CausalLMStep(model),
                eos_token_id=case.kwargs["eos_token_id"],
                pad_token_id=case.kwargs["pad_token_id"],
            )
            generator = torch.Generator().manual_seed(case.seed)
            ours.append(decode(inputs, case.settings(), generator=generator))
            if case.settings().early_stopping:
                late[i] = decode(inputs, case.settings().with_changes(early_stopping=False))
    return Comparison(cases, ours, reference, late)


def _differences(comparison: Comparison, mode: str, early_stopping: bool) -> tuple[int, list[str]]:
    count, problems = 0, []
    for i, (case, ours, ref) in enumerate(zip(comparison.cases, comparison.ours, comparison.reference, strict=True)):
        if case.mode != mode or case.kwargs.get("early_stopping", False) != early_stopping:
            continue
        count += 1
        if not torch.equal(ours.sequences, ref["sequences"]):
            ours_ids, ref_ids = ours.sequences.tolist(), ref["sequences"].tolist()
            problems.append(f"case {i} {case.kwargs}:\n  ours {ours_ids}\n  4.33 {ref_ids}")
        elif ref["scores"] is not None and not torch.allclose(ours.scores, ref["scores"].float(), rtol=1e-5, atol=1e-6):
            ours_scores, ref_scores = ours.scores.tolist(), ref["scores"].tolist()
            problems.append(f"case {i} {case.kwargs}: beam scores ours {ours_scores} 4.33 {ref_scores}")
    return count, problems


@pytest.mark.parametrize(
    ("mode", "early_stopping"),
    [("greedy", False), ("sample", False), ("beam2", False), ("beam5", False), ("beam2", True), ("beam5", True)],
)
def test_decoding_equals_transformers_433(comparison: Comparison, mode: str, early_stopping: bool) -> None:
    count, problems = _differences(comparison, mode, early_stopping)
    name = f"{mode}{' early_stopping' if early_stopping else ''}"
    assert count >= 120, f"only {count} {name} cases drawn"
    assert not problems, f"{len(problems)} of {count} {name} cases differ from 4.33:\n" + "\n".join(problems[:10])


def test_early_stopping_cases_matter(comparison: Comparison) -> None:
    """The early-stopping cases exercise the rule: decoded with it off, some end on other sequences (which 4.33
    with `early_stopping=True` did not return) and none takes fewer steps. (Most short random cases run to
    max_length either way, or another row of the batch does.)"""
    fewer_steps = other_output = 0
    for i, late in comparison.without_early_stopping.items():
        early = comparison.ours[i]
        fewer_steps += int(early.num_steps < late.num_steps)
        other_output += int(not torch.equal(early.sequences, late.sequences))
        assert early.num_steps <= late.num_steps, f"case {i}: early stopping ran longer"
    assert fewer_steps >= 1 and other_output >= 20, (fewer_steps, other_output)


def test_cases_cover_the_edges(comparison: Comparison) -> None:
    """The random draw really exercises EOS first, max_length reached, min_length blocking EOS and padding."""
    assert len(comparison.cases) >= 1000
    eos_first = max_reached = min_blocks = padded = 0
    for case, ref in zip(comparison.cases, comparison.reference, strict=True):
        seqs, k = ref["sequences"], case.kwargs
        eos_first += int((seqs[:, 1] == k["eos_token_id"]).any())
        max_reached += int(seqs.shape[1] == k["max_length"] and bool((seqs[:, -1] != k["eos_token_id"]).any()))
        # EOS is the likeliest first token, yet min_length holds it back: 4.33 must not emit it first.
        held_back = not bool(seqs[0, 1] == k["eos_token_id"])
        min_blocks += int(case.eos_is_likeliest and k["min_length"] >= 3 and held_back)
        padded += int(bool((case.attention_mask == 0).any()))
    assert eos_first >= 50 and max_reached >= 100 and min_blocks >= 30 and padded >= 300, (
        eos_first,
        max_reached,
        min_blocks,
        padded,
    )
