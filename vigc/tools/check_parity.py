"""Recompute the golden outputs of a parity fixture (made by the original VIGC code) and compare.

Usage: `vigc check-parity FIXTURE_DIR [--only NAME ...] [--threads 1]` (`vigc.cli.check_parity`), or the same
arguments to `python -m vigc.tools.check_parity`.

The model is built from the fixture's files through the normal loading path (`vigc_model` with the EVA ViT
file, the trimmed LAVIS checkpoint, the LLM directory and the BERT tokenizer directory); the full LAVIS file
must give the same weights. One line is printed per golden with its largest difference; the exit status is 1
when a tensor differs beyond the manifest's tolerances or any text or token id differs at all.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vigc.data.processors import EvalImageProcessor
from vigc.data.prompts import GENERATION_INSTRUCTIONS
from vigc.errors import VIGCError
from vigc.generation.records_format import compat_record_fields
from vigc.generation.vic import VICSettings, vig_vic
from vigc.generation.vqa import draw_question_starts, generate_answers, generate_questions
from vigc.models.builders import vigc_model
from vigc.models.decoding import DecodingSettings
from vigc.models.vigc_model import VIGCModel

logger = logging.getLogger(__name__)


@dataclass
class Check:
    """One compared quantity: `diff` is the max abs difference for tensors, or the count of mismatches."""

    name: str
    diff: float
    tolerance: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.diff <= self.tolerance


@dataclass
class Fixture:
    """Paths, tolerances and the shared inputs of one fixture directory."""

    root: Path
    manifest: dict[str, Any]
    feature_atol: float
    logits_atol: float
    pixels: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def golden(self, name: str) -> Any:
        path = self.root / "goldens" / name
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return torch.load(path, map_location="cpu", weights_only=True)


def tensor_check(name: str, got: torch.Tensor, want: torch.Tensor, atol: float) -> Check:
    """Max abs difference of two float tensors (shape mismatch → infinite)."""
    if got.shape != want.shape:
        return Check(name, math.inf, atol, f"shape {tuple(got.shape)} != {tuple(want.shape)}")
    return Check(name, float((got.detach().float().cpu() - want.float()).abs().max()) if got.numel() else 0.0, atol)


def exact_check(name: str, got: Any, want: Any) -> Check:
    """Exact equality of ids, masks or texts; `diff` counts differing items."""
    if isinstance(got, torch.Tensor):
        got = got.tolist()
    if isinstance(want, torch.Tensor):
        want = want.tolist()
    if got == want:
        return Check(name, 0, 0)
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        return Check(name, len(bad), 0, f"first differing item {bad[0]}: {got[bad[0]]!r} != {want[bad[0]]!r}")
    return Check(name, 1, 0, f"{str(got)[:200]!r} != {str(want)[:200]!r}")


def build_model(root: Path, route: str) -> VIGCModel:
    """Build the fixture's model through `vigc_model` (route "b": ViT file + trimmed + LLM dir; "a": full)."""
    dims = json.loads((root / "config.json").read_text())
    weights = json.loads((root / "manifest.json").read_text())["weights"]
    files: dict[str, Any] = {"pretrained": str(root / weights["full"])}
    if route == "b":
        files = {"vit_model": str(root / weights["vision"]), "pretrained": str(root / weights["trimmed"])}
    return vigc_model(
        llm_model=str(root / weights["llm_dir"]),
        qformer_tokenizer=str(root / weights["qformer_tokenizer_dir"]),
        image_size=dims["img_size"],
        patch_size=dims["patch"],
        vit_width=dims["vit_dim"],
        vit_depth=dims["vit_depth"],
        vit_heads=dims["vit_heads"],
        vit_mlp_hidden=dims["vit_mlp_hidden"],
        num_query_token=dims["num_query"],
        qformer_hidden=dims["qf_hidden"],
        qformer_layers=dims["qf_layers"],
        qformer_heads=dims["qf_heads"],
        qformer_intermediate=dims["qf_inter"],
        cross_attention_freq=dims["cross_freq"],
        **files,
    )


def check_routes_agree(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    """Both documented load routes give the same weights."""
    other = build_model(fx.root, "a").state_dict()
    diff = max(float((t - other[name]).abs().max()) for name, t in model.state_dict().items() if t.numel())
    yield Check("load_routes.a_equals_b", diff, 0.0)


def check_pixels(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    """Our processor reproduces the fixture's `pixels.pt` from the PNGs."""
    paths = sorted((fx.root / fx.manifest["inputs"]["images_dir"]).glob("*.png"))
    size = int(fx.pixels.shape[-1])
    processed = torch.stack([EvalImageProcessor(size)(Image.open(p)) for p in paths])
    yield tensor_check("pixels.processor", processed, fx.pixels, 0.0)


def check_vision(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    gold = fx.golden("a_vision.pt")
    yield tensor_check(
        "a_vision.visual_encoder_out",
        model.vision_features(fx.pixels),
        gold["visual_encoder_out"],
        fx.feature_atol,
    )
    yield tensor_check("a_vision.image_embeds", model.encode_images(fx.pixels), gold["image_embeds"], fx.feature_atol)


def check_prefix(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    gold, prompts = fx.golden("b_vision_feats.pt"), fx.golden("b_vision_feats_prompts.json")
    embeds = model.encode_images(fx.pixels)
    for key, want in gold.items():
        got = model.visual_prefix(embeds, prompts[key])
        yield tensor_check(f"b_vision_feats.{key}.inputs_llm", got.embeds, want["inputs_llm"], fx.feature_atol)
        yield exact_check(f"b_vision_feats.{key}.qformer_input_ids", got.qformer_input_ids, want["qformer_input_ids"])
        yield exact_check(
            f"b_vision_feats.{key}.qformer_attention_mask",
            got.qformer_attention_mask,
            want["qformer_attention_mask"],
        )
        yield tensor_check(
            f"b_vision_feats.{key}.qformer_last_hidden_state",
            got.qformer_hidden,
            want["qformer_last_hidden_state"],
            fx.feature_atol,
        )


def check_forward(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    gold, meta = fx.golden("c_forward.pt"), fx.golden("c_forward.json")
    out = model.loss(model.encode_images(fx.pixels), meta["text_input"], meta["text_output"])
    yield tensor_check("c_forward.loss", out.loss, gold["loss"], fx.logits_atol)
    yield exact_check("c_forward.llm_input_ids", out.batch.input_ids, gold["llm_input_ids"])
    yield exact_check("c_forward.attention_mask", out.batch.attention_mask, gold["attention_mask"])
    yield exact_check("c_forward.labels", out.batch.labels, gold["labels"])
    yield tensor_check("c_forward.inputs_embeds", out.batch.inputs_embeds, gold["inputs_embeds"], fx.feature_atol)
    yield tensor_check("c_forward.logits", out.logits, gold["logits"], fx.logits_atol)


def lavis_settings(llm_kwargs: dict[str, Any]) -> DecodingSettings:
    """The settings the original passed to the LLM's `generate` (transformers 4.33 semantics)."""
    return DecodingSettings.from_lavis(
        use_nucleus_sampling=llm_kwargs["do_sample"],
        num_beams=llm_kwargs["num_beams"],
        max_length=llm_kwargs["max_length"],
        min_length=llm_kwargs["min_length"],
        top_p=llm_kwargs["top_p"],
        repetition_penalty=llm_kwargs["repetition_penalty"],
        length_penalty=llm_kwargs["length_penalty"],
        num_captions=llm_kwargs["num_return_sequences"],
        temperature=llm_kwargs["temperature"],
    )


def generate_like_original(model: VIGCModel, pixels: torch.Tensor, call: dict[str, Any]) -> Any:
    """Re-run one recorded `generate`/`generate_multi` call."""
    prompts = call["prompt"] if call["prompt_key_present"] else None
    images = pixels[: len(call["llm_prompt_input_ids"])]
    return model.generate(model.encode_images(images), prompts, lavis_settings(call["llm_generate_kwargs"]))


def _generation_checks(
    prefix: str, fx: Fixture, call: dict[str, Any], tensors: dict[str, Any], out: Any
) -> Iterator[Check]:
    yield exact_check(f"{prefix}.llm_prompt_input_ids", out.prompt_input_ids, call["llm_prompt_input_ids"])
    yield exact_check(f"{prefix}.llm_attention_mask", out.prompt_attention_mask, call["llm_attention_mask"])
    yield tensor_check(f"{prefix}.inputs_embeds", out.prompt_embeds, tensors["inputs_embeds"], fx.feature_atol)
    yield exact_check(f"{prefix}.sequences_raw", out.sequences, call["sequences_raw"])


def check_generate(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    meta, gold = fx.golden("d_generate.json"), fx.golden("d_generate.pt")
    for key, call in meta.items():
        if not isinstance(call, dict):
            continue  # a recorded crash of the original (batch > 1 without prompts); we broadcast instead
        out = generate_like_original(model, fx.pixels, call)
        yield from _generation_checks(f"d_generate.{key}", fx, call, gold[key], out)
        yield exact_check(f"d_generate.{key}.output", [texts[0] for texts in out.texts], call["output"])


def check_generate_multi(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    call, gold = fx.golden("e_generate_multi.json"), fx.golden("e_generate_multi.pt")
    out = generate_like_original(model, fx.pixels, call)
    yield from _generation_checks("e_generate_multi", fx, call, gold, out)
    yield exact_check("e_generate_multi.output", out.texts, call["output"])
    yield tensor_check("e_generate_multi.sequences_scores", out.scores, gold["sequences_scores"], fx.logits_atol)
    # The original's answer weight: exp(score)**3 * 100, so compare it relative to its size.
    weights = (out.scores.exp() ** 3 * 100).view(len(call["output"]), -1)
    want = torch.tensor(call["scores"])
    yield tensor_check("e_generate_multi.scores(rel)", weights / want, torch.ones_like(want), fx.logits_atol)


def check_rank(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    meta, gold = fx.golden("h_predict_by_rank.json"), fx.golden("h_predict_by_rank.pt")
    for key, call in meta.items():
        index = int(key.removeprefix("img"))
        out = model.rank_candidates(
            model.encode_images(fx.pixels[index : index + 1]), call["prompt"], call["candidates"]
        )
        yield exact_check(f"h_predict_by_rank.{key}.prediction", [call["candidates"][out.best]], call["prediction"])
        yield tensor_check(
            f"h_predict_by_rank.{key}.per_candidate_loss",
            out.lavis_losses,
            gold[key]["per_candidate_loss"],
            fx.logits_atol,
        )
        yield exact_check(f"h_predict_by_rank.{key}.llm_input_ids", out.batch.input_ids, call["llm_input_ids"])
        yield exact_check(f"h_predict_by_rank.{key}.labels", out.batch.labels, gold[key]["labels"])
        yield exact_check(
            f"h_predict_by_rank.{key}.attention_mask", out.batch.attention_mask, gold[key]["attention_mask"]
        )
        yield tensor_check(f"h_predict_by_rank.{key}.logits", out.logits, gold[key]["logits"], fx.logits_atol)


def check_vic_loop(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    """The original VIC loop (compat mode): every step's prompts and outputs, and the final records."""
    for run, data in fx.golden("f_vic_loop.json").items():
        args = data["task_args"]
        settings = VICSettings(
            mode="compat",
            answer_length=args["answer_length"],
            gen_style=args["gen_style"],
            in_section=args["in_section"],
            last_infer_all=args["last_infer_all"],
            vig_decoding=DecodingSettings.from_lavis(
                num_beams=args["num_beams"], max_length=args["max_len"], min_length=args["min_len"]
            ),
        )
        instructions = [GENERATION_INSTRUCTIONS[args["task"]]] * len(data["raw_samples"])
        results = vig_vic(model, fx.pixels[: len(instructions)], instructions, settings)
        for k, step in enumerate(data["steps"]):
            yield exact_check(f"f_vic_loop.{run}.step{k}.prompt", [r.step_prompts[k] for r in results], step["prompt"])
            outputs = [r.vig_output if k == 0 else r.step_outputs[k - 1] for r in results]
            yield exact_check(f"f_vic_loop.{run}.step{k}.output", outputs, step["output"])
        records = [
            {**raw, **compat_record_fields(r)} for raw, r in zip(data["raw_samples"], results, strict=True) if r.valid
        ]
        yield exact_check(f"f_vic_loop.{run}.results", records, data["results"])


def check_vqg(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    """OKVQA question pass (seeded start words) and answer pass (all beams with weights)."""
    gold = fx.golden("i_vqg.json")
    gq, ga = gold["gq_okvqa_weighted"], gold["ga"]
    call = gq["generate_call"]
    starts = draw_question_starts(random.Random(gq["python_random_seed"]), "okvqa", len(gq["input_prompt"]), True)
    settings = lavis_settings(call["llm_generate_kwargs"])
    embeds = model.encode_images(fx.pixels[: len(starts)])
    questions = generate_questions(model, embeds, gq["input_prompt"], starts, settings)
    yield exact_check("i_vqg.gq.prompt", [q.prompt for q in questions], call["prompt"])
    yield exact_check(
        "i_vqg.gq.question_answer",
        [q.question_answer for q in questions],
        [r["question_answer"] for r in gq["results"]],
    )
    answers = generate_answers(
        model, embeds, ga["input_prompt"], lavis_settings(ga["generate_call"]["llm_generate_kwargs"])
    )
    yield exact_check(
        "i_vqg.ga.question_answer", [a.raw_answers for a in answers], [r["question_answer"] for r in ga["results"]]
    )
    got = torch.tensor([a.weights for a in answers])
    want = torch.tensor([r["weight"] for r in ga["results"]])
    yield tensor_check("i_vqg.ga.weight(rel)", got / want, torch.ones_like(want), fx.logits_atol)


def check_tokenization(fx: Fixture, model: VIGCModel) -> Iterator[Check]:
    gold = fx.golden("j_tokenization.json")
    tok, qtok = model.llm_tokenizer, model.qformer_tokenizer
    for i, single in enumerate(gold["llm"]["single"]):
        yield exact_check(f"j_tokenization.llm.single{i}.input_ids", tok.encode(single["text"]), single["input_ids"])
        decoded = tok.decode(single["input_ids"])
        yield exact_check(f"j_tokenization.llm.single{i}.decode", decoded, single["decode_skip_special"])
    for i, single in enumerate(gold["qformer"]["single"]):
        ids, _ = qtok([single["text"]], max_length=gold["batch_calls"]["qformer"]["max_length"])
        yield exact_check(f"j_tokenization.qformer.single{i}.input_ids", ids[0], single["input_ids"])
    calls = gold["batch_calls"]
    yield from _batch_check(
        "forward_text_input",
        calls,
        tok.batch(calls["forward_text_input"]["texts"], max_length=128, truncation_side="left"),
    )
    out_call = calls["forward_text_output"]
    texts = [t + out_call["appended"] for t in out_call["texts_before_eos"]]
    yield from _batch_check(
        "forward_text_output",
        calls,
        tok.batch(texts, max_length=out_call["max_length"], truncation_side="right"),
    )
    yield from _batch_check(
        "generate_prompt", calls, tok.batch(calls["generate_prompt"]["texts"], pad_token_id=tok.eos_token_id)
    )
    yield from _batch_check(
        "qformer", calls, qtok(calls["qformer"]["texts"], max_length=calls["qformer"]["max_length"])
    )
    for i, example in enumerate(gold["decode_examples"]):
        want = example["llm_tokenizer_for_generate.batch_decode(skip_special_tokens=True)"]
        yield exact_check(
            f"j_tokenization.decode_examples{i}",
            tok.batch_decode([example["ids"]], for_generation=True)[0],
            want,
        )


def _batch_check(name: str, calls: dict[str, Any], got: tuple[torch.Tensor, torch.Tensor]) -> Iterator[Check]:
    yield exact_check(f"j_tokenization.batch.{name}.input_ids", got[0], calls[name]["input_ids"])
    yield exact_check(f"j_tokenization.batch.{name}.attention_mask", got[1], calls[name]["attention_mask"])


CHECKS: dict[str, Callable[[Fixture, VIGCModel], Iterator[Check]]] = {
    "load_routes": check_routes_agree,
    "pixels": check_pixels,
    "a_vision": check_vision,
    "b_vision_feats": check_prefix,
    "c_forward": check_forward,
    "d_generate": check_generate,
    "e_generate_multi": check_generate_multi,
    "f_vic_loop": check_vic_loop,
    "h_predict_by_rank": check_rank,
    "i_vqg": check_vqg,
    "j_tokenization": check_tokenization,
}


def load_fixture(root: Path) -> Fixture:
    """Read a fixture's manifest, tolerances and pixels."""
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise VIGCError(f"{root} is not a parity fixture: {manifest_path} is missing.")
    manifest = json.loads(manifest_path.read_text())
    compare = manifest["compare"]
    fx = Fixture(root, manifest, compare["vision_and_qformer_features_atol"], compare["logits_losses_scores_atol"])
    fx.pixels = torch.load(root / manifest["inputs"]["pixels"], map_location="cpu", weights_only=True)
    return fx


def run_checks(root: Path, only: list[str] | None = None) -> list[Check]:
    """Run every known golden present in the fixture (or those named in `only`).

    Raises:
        VIGCError: `root` is not a fixture, or `only` names a check that does not exist.
    """
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise VIGCError(f"no check named {', '.join(unknown)}; the checks are: {', '.join(CHECKS)}.")
    fx = load_fixture(root)
    model = build_model(root, "b")
    results: list[Check] = []
    with torch.no_grad():
        for name, check in CHECKS.items():
            if only and name not in only:
                continue
            if name in fx.manifest["goldens"] or name in ("load_routes", "pixels"):
                results.extend(check(fx, model))
    return results


if __name__ == "__main__":  # the command line is the top layer: imported only when run as a program
    from vigc.cli.check_parity import main

    sys.exit(main())
