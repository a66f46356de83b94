"""Checkpoint reading, format conversion, loading reports and saving (vigc.models.checkpoints).

The target is a tiny transformers ``InstructBlipForConditionalGeneration`` (the parameter names ``VIGCModel``
shares). Files in each format are written inside the tests with the key names of SPEC §3; the real-file tests
use the shared parity fixture (skipped when it is absent).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipQFormerConfig,
    InstructBlipVisionConfig,
    LlamaConfig,
)

from vigc.errors import CheckpointError
from vigc.models.checkpoint_formats import to_vigc_names
from vigc.models.checkpoints import (
    LoadReport,
    load_checkpoint,
    load_sequence,
    read_state_dict,
    save_checkpoint,
)

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared/fixtures/vigc_reference"
D = 64  # every hidden size of the tiny model
Tensors = dict[str, torch.Tensor]


def tiny_model(seed: int = 0, *, image_size: int = 56) -> InstructBlipForConditionalGeneration:
    """The fixture's dimensions as a transformers InstructBLIP, random weights, eval mode."""
    torch.manual_seed(seed)
    vision = InstructBlipVisionConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=279,
        image_size=image_size,
        patch_size=14,
        qkv_bias=True,
    )
    qformer = InstructBlipQFormerConfig(
        hidden_size=D,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        cross_attention_frequency=2,
        vocab_size=269,
        encoder_hidden_size=D,
    )
    text = LlamaConfig(hidden_size=D, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, vocab_size=501)
    config = InstructBlipConfig(vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=8)
    return InstructBlipForConditionalGeneration(config).eval()


def lavis_exportable(seed: int = 0) -> InstructBlipForConditionalGeneration:
    """A tiny model whose weights a LAVIS file can hold exactly (EVA has no key bias: zero it)."""
    model = tiny_model(seed)
    with torch.no_grad():
        for layer in model.vision_model.encoder.layers:
            layer.self_attn.qkv.bias[D : 2 * D] = 0
    return model


_VIT_LAYER_RENAMES = {
    "layer_norm1": "norm1",
    "layer_norm2": "norm2",
    "self_attn.qkv": "attn.qkv",
    "self_attn.projection": "attn.proj",
}
_TOP_RENAMES = {
    "vision_model.embeddings.class_embedding": "visual_encoder.cls_token",
    "vision_model.embeddings.position_embedding": "visual_encoder.pos_embed",
    "vision_model.embeddings.patch_embedding.weight": "visual_encoder.patch_embed.proj.weight",
    "vision_model.embeddings.patch_embedding.bias": "visual_encoder.patch_embed.proj.bias",
    "vision_model.post_layernorm.weight": "ln_vision.weight",
    "vision_model.post_layernorm.bias": "ln_vision.bias",
    "query_tokens": "query_tokens",
    "language_projection.weight": "llm_proj.weight",
    "language_projection.bias": "llm_proj.bias",
}


def to_lavis(state: Tensors) -> Tensors:
    """SPEC §3 table read right to left: transformers → LAVIS names (independent of the code under test)."""
    out: Tensors = {}
    for name, tensor in state.items():
        tensor = tensor.clone()
        if name in _TOP_RENAMES:
            out[_TOP_RENAMES[name]] = tensor
        elif name.startswith("vision_model.encoder.layers."):
            block, rest = name[len("vision_model.encoder.layers.") :].split(".", 1)
            if rest == "self_attn.qkv.bias":
                out[f"visual_encoder.blocks.{block}.attn.q_bias"] = tensor[:D]
                out[f"visual_encoder.blocks.{block}.attn.v_bias"] = tensor[2 * D :]
                continue
            for new, old in _VIT_LAYER_RENAMES.items():
                rest = rest.replace(new, old)
            out[f"visual_encoder.blocks.{block}.{rest}"] = tensor
        elif name.startswith("qformer."):
            lavis = "Qformer.bert." + name[len("qformer.") :]
            lavis = lavis.replace(".crossattention.attention.", ".crossattention.self.")
            lavis = lavis.replace(".attention.attention.", ".attention.self.")
            out[lavis.replace("embeddings.layernorm.", "embeddings.LayerNorm.")] = tensor
        elif name.startswith("language_model."):
            out["llm_model." + name[len("language_model.") :]] = tensor
        else:
            raise AssertionError(f"no LAVIS name for {name}")
    return out


def lavis_extras() -> Tensors:
    """Keys of a LAVIS state dict that have no transformers counterpart."""
    return {
        "Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0),
        "Qformer.cls.predictions.bias": torch.zeros(269),
        "llm_model.model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8),
        "llm_model.model.layers.1.self_attn.rotary_emb.inv_freq": torch.ones(8),
    }


def eva_file(model: InstructBlipForConditionalGeneration) -> Tensors:
    """LAVIS eva_vit_g.pth layout (no prefix) for the model's ViT."""
    lavis = to_lavis(model.state_dict())
    return {k[len("visual_encoder.") :]: v for k, v in lavis.items() if k.startswith("visual_encoder.")}


def state(model: torch.nn.Module, keep: Callable[[str], bool] = lambda _: True) -> Tensors:
    return {k: v.clone() for k, v in model.state_dict().items() if keep(k)}


def assert_loaded_equal(model: torch.nn.Module, expected: Tensors) -> None:
    actual = model.state_dict()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=0, msg=name)


def vision_features(model: InstructBlipForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """ViT output before the post layernorm (LAVIS ``visual_encoder`` output), (B, 17, D)."""
    with torch.no_grad():
        return model.vision_model(pixels, output_hidden_states=True).hidden_states[-1]


def is_text_ffn(name: str) -> bool:
    return name.startswith("qformer.encoder.layer.") and name.split(".")[4] in ("intermediate", "output")


# --------------------------------------------------------------------------------------------------- eva_vit


def test_eva_vit_file_extra_block_and_final_norm_dropped(tmp_path: Path) -> None:
    source = lavis_exportable(seed=1)
    eva = eva_file(source)
    extra = {k.replace("blocks.1.", "blocks.2."): torch.randn_like(v) for k, v in eva.items() if "blocks.1." in k}
    eva |= extra | {"norm.weight": torch.ones(D), "norm.bias": torch.zeros(D)}
    torch.save(eva, tmp_path / "eva_vit_g.pth")

    target = tiny_model(seed=2)
    report = load_checkpoint(target, tmp_path / "eva_vit_g.pth", config_key="model.vit_checkpoint")

    assert report.format == "eva_vit"
    assert sorted(report.dropped) == sorted([*extra, "norm.weight", "norm.bias"])
    assert any("dropped (model has 2 blocks)" in note for note in report.notes)
    assert report.unexpected == [] and report.mismatched == []
    vision_keys = [k for k in target.state_dict() if k.startswith("vision_model.") and "post_layernorm" not in k]
    assert sorted(report.loaded) == sorted(vision_keys)
    assert "vision_model.post_layernorm.weight" in report.missing
    for block in (0, 1):
        expected = torch.cat([eva[f"blocks.{block}.attn.q_bias"], torch.zeros(D), eva[f"blocks.{block}.attn.v_bias"]])
        assert torch.equal(target.vision_model.encoder.layers[block].self_attn.qkv.bias, expected)
    pixels = torch.randn(2, 3, 56, 56)
    assert torch.equal(vision_features(target, pixels), vision_features(source, pixels))


def test_eva_vit_position_embedding_of_another_grid_is_interpolated(tmp_path: Path) -> None:
    eva = eva_file(lavis_exportable(seed=1))
    small = torch.randn(1, 1 + 3 * 3, D)  # a 42 px model: 3x3 patches
    eva["pos_embed"] = small
    save_file(eva, str(tmp_path / "eva.safetensors"))

    target = tiny_model(seed=2)  # 56 px: 4x4 patches
    report = load_checkpoint(target, tmp_path / "eva.safetensors")

    grid = small[:, 1:].reshape(1, 3, 3, D).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False)
    expected = torch.cat([small[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 16, D)], dim=1)
    torch.testing.assert_close(target.vision_model.embeddings.position_embedding, expected)
    assert "vision_model.embeddings.position_embedding" in report.loaded
    assert any("interpolated" in note for note in report.notes)


# ----------------------------------------------------------------------------------------------------- lavis


def test_lavis_full_file_loads_every_tensor(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigc.models.checkpoints")
    source = lavis_exportable(seed=1)
    torch.save({"model": to_lavis(source.state_dict()) | lavis_extras()}, tmp_path / "full.pth")

    target = tiny_model(seed=2)
    report = load_checkpoint(target, tmp_path / "full.pth")

    assert report.format == "lavis"
    assert report.missing == [] and report.unexpected == [] and report.mismatched == [] and report.filled == []
    assert sorted(report.dropped) == sorted(lavis_extras())
    assert sorted(report.loaded) == sorted(target.state_dict())
    assert_loaded_equal(target, state(source))
    assert report.summary().startswith(f"{tmp_path / 'full.pth'} [lavis]: loaded 112, filled 0, missing 0")
    assert report.summary() in caplog.text


def test_lavis_trimmed_file_loads_its_parts_only(tmp_path: Path) -> None:
    source = lavis_exportable(seed=1)
    trimmed = {
        k: v
        for k, v in to_lavis(source.state_dict()).items()
        if k.startswith(("Qformer.", "query_tokens", "llm_proj.", "ln_vision."))
    }
    torch.save({"model": trimmed}, tmp_path / "instruct_blip_vicuna7b_trimmed.pth")

    target = tiny_model(seed=2)
    report = load_checkpoint(target, tmp_path / "instruct_blip_vicuna7b_trimmed.pth")

    def covered(name: str) -> bool:
        return name.startswith(("qformer.", "query_tokens", "language_projection.", "vision_model.post_"))

    assert sorted(report.loaded) == sorted(k for k in target.state_dict() if covered(k))
    assert sorted(report.missing) == sorted(k for k in target.state_dict() if not covered(k))
    assert_loaded_equal(target, state(source, covered))


def test_blip2_stage1_q_former_gets_text_ffn_from_query_ffn(tmp_path: Path) -> None:
    source = lavis_exportable(seed=1)
    blip2 = {
        k: v
        for k, v in to_lavis(source.state_dict()).items()
        if not k.startswith(("llm_model.", "llm_proj."))
        and ".intermediate." not in k
        and ".output." not in k.replace("attention.output.", "")
        and "word_embeddings" not in k
        and "position_embeddings" not in k
    }
    torch.save({"model": blip2}, tmp_path / "blip2_pretrained_flant5xxl.pth")

    target = tiny_model(seed=2)
    word_embeddings = target.qformer.embeddings.word_embeddings.weight.clone()
    report = load_checkpoint(target, tmp_path / "blip2_pretrained_flant5xxl.pth")

    text_ffn = [k for k in target.state_dict() if is_text_ffn(k)]
    assert len(text_ffn) == 12 and sorted(report.filled) == sorted(text_ffn)
    for name in text_ffn:
        query_name = name.replace(".intermediate.", ".intermediate_query.").replace(".output.", ".output_query.")
        assert torch.equal(target.state_dict()[name], source.state_dict()[query_name]), name
    assert not set(report.filled) & set(report.missing) and not set(report.filled) & set(report.loaded)
    assert {"qformer.embeddings.word_embeddings.weight", "language_projection.weight"} <= set(report.missing)
    assert torch.equal(target.qformer.embeddings.word_embeddings.weight, word_embeddings)


def test_minigpt4_stage1_llama_proj_inside_a_training_checkpoint(tmp_path: Path) -> None:
    weight, bias = torch.randn(D, D).half(), torch.randn(D).half()  # fp16 file, fp32 model
    torch.save(
        {
            "model": {"llama_proj.weight": weight, "llama_proj.bias": bias},
            "optimizer": {
                "state": {0: {"exp_avg": torch.zeros(D)}},
                "param_groups": [{"lr": 1e-4, "params": [0]}],
            },
            "epoch": 9,
        },
        tmp_path / "prerained_minigpt4_7b.pth",
    )
    target = tiny_model()
    report = load_checkpoint(target, tmp_path / "prerained_minigpt4_7b.pth")

    assert report.format == "lavis"
    assert sorted(report.loaded) == ["language_projection.bias", "language_projection.weight"]
    assert target.language_projection.weight.dtype == torch.float32
    assert torch.equal(target.language_projection.weight, weight.float())
    assert torch.equal(target.language_projection.bias, bias.float())


def test_vigc_finetuned_training_checkpoint(tmp_path: Path) -> None:
    source = lavis_exportable(seed=1)
    trainable = {
        k: v
        for k, v in to_lavis(source.state_dict()).items()
        if k.startswith(("Qformer.", "query_tokens", "llm_proj.", "ln_vision."))
    }
    weights = trainable | {"Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0)}
    checkpoint = {
        "model": weights,
        "optimizer": {"state": {}, "param_groups": [{"lr": 3e-5, "weight_decay": 0.05, "params": [0, 1]}]},
        "config": {"model": {"arch": "blip2_vicuna_instruct", "num_query_token": 8}, "run": {"seed": 42}},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0},
        "epoch": 4,
    }
    torch.save(checkpoint, tmp_path / "vigc7b_instrucblip_okvqa.pth")

    assert set(read_state_dict(tmp_path / "vigc7b_instrucblip_okvqa.pth")) == set(weights)
    target = tiny_model(seed=2)
    report = load_checkpoint(target, tmp_path / "vigc7b_instrucblip_okvqa.pth", config_key="model.finetuned")
    assert len(report.loaded) == len(trainable) and report.dropped == ["Qformer.bert.embeddings.position_ids"]
    assert report.source == f"model.finetuned={tmp_path / 'vigc7b_instrucblip_okvqa.pth'}"
    assert_loaded_equal(target, state(source, lambda k: k.startswith(("qformer.", "query_tokens", "language_proj"))))


# ----------------------------------------------------------------------------------- transformers / our own


def test_transformers_directory_single_file_and_sharded(tmp_path: Path) -> None:
    source = tiny_model(seed=1)
    source.save_pretrained(tmp_path / "single")
    source.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert (tmp_path / "sharded/model.safetensors.index.json").is_file()

    for directory in ("single", "sharded"):
        target = tiny_model(seed=2)
        report = load_checkpoint(target, tmp_path / directory)
        assert report.format == "hf_instructblip"
        assert report.missing == [] and report.unexpected == [] and report.dropped == []
        assert_loaded_equal(target, state(source))


def test_transformers_directory_with_pytorch_bin_and_index(tmp_path: Path) -> None:
    source_state = state(tiny_model(seed=1))
    (tmp_path / "bin").mkdir()
    torch.save(source_state, tmp_path / "bin/pytorch_model.bin")
    (tmp_path / "bin_sharded").mkdir()
    names = list(source_state)
    shards = {"pytorch_model-00001-of-00002.bin": names[:50], "pytorch_model-00002-of-00002.bin": names[50:]}
    for shard, keys in shards.items():
        torch.save({k: source_state[k] for k in keys}, tmp_path / "bin_sharded" / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (tmp_path / "bin_sharded/pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))

    for directory in ("bin", "bin_sharded"):
        target = tiny_model(seed=2)
        report = load_checkpoint(target, tmp_path / directory)
        assert report.missing == [] and len(report.loaded) == len(names)
        assert_loaded_equal(target, source_state)


def test_save_checkpoint_round_trip_trainable_only(tmp_path: Path) -> None:
    source = tiny_model(seed=1)
    for name, param in source.named_parameters():
        param.requires_grad = not name.startswith(("vision_model.encoder.", "language_model."))
    saved = save_checkpoint(source, tmp_path / "out/vigc.safetensors", metadata={"config": "normal_vigc.yaml"})

    trainable = [n for n, p in source.named_parameters() if p.requires_grad]
    assert saved == trainable
    with safe_open(str(tmp_path / "out/vigc.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "vigc", "config": "normal_vigc.yaml"}
    target = tiny_model(seed=2)
    report = load_checkpoint(target, tmp_path / "out/vigc.safetensors")
    assert report.format == "vigc" and report.loaded == trainable and report.unexpected == []
    assert_loaded_equal(target, state(source, lambda k: k in trainable))

    everything = save_checkpoint(source, tmp_path / "all.safetensors", trainable_only=False)
    assert everything == list(source.state_dict())


def test_save_checkpoint_handles_tied_weights_and_bf16(tmp_path: Path) -> None:
    embedding, head = torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False)
    head.weight = embedding.weight
    model = torch.nn.Sequential(embedding, head).to(torch.bfloat16)
    saved = save_checkpoint(model, tmp_path / "tied.safetensors", trainable_only=False)
    assert saved == ["0.weight", "1.weight"]
    tensors = read_state_dict(tmp_path / "tied.safetensors")
    assert tensors["0.weight"].dtype == torch.bfloat16 and torch.equal(tensors["1.weight"], embedding.weight)


# -------------------------------------------------------------------------------------------------- errors


def test_unrelated_file_is_an_unknown_format(tmp_path: Path) -> None:
    torch.save({"encoder.weight": torch.zeros(2), "decoder.bias": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format") as error:
        load_checkpoint(tiny_model(), tmp_path / "other.pth")
    assert "encoder.weight" in str(error.value) and "eva_vit" in str(error.value) and "lavis" in str(error.value)


class _RunsShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_pickle_that_runs_code_is_refused(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "code_was_run"
    payload = {"model": {"query_tokens": torch.zeros(1, 8, D), "hook": _RunsShellCommand(marker)}}
    path = tmp_path / "evil.pth"
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))

    with pytest.raises(CheckpointError, match="not a plain tensor checkpoint and will not be unpickled"):
        load_checkpoint(tiny_model(), path)
    assert not marker.exists()


def test_missing_file_names_path_and_config_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere/instruct_blip_vicuna7b_trimmed.pth"
    with pytest.raises(CheckpointError, match="not found") as error:
        read_state_dict(missing, config_key="model.pretrained")
    assert str(missing) in str(error.value) and "model.pretrained" in str(error.value)
    with pytest.raises(CheckpointError, match="directory without model weights"):
        read_state_dict(tmp_path)


def test_shape_mismatch_is_an_error_unless_allowed(tmp_path: Path) -> None:
    torch.save({"model": {"query_tokens": torch.zeros(1, 32, D), "llm_proj.bias": torch.ones(D)}}, tmp_path / "q.pth")
    with pytest.raises(CheckpointError, match=r"query_tokens: file \[1, 32, 64\] vs model \[1, 8, 64\]"):
        load_checkpoint(tiny_model(), tmp_path / "q.pth")
    target = tiny_model()
    report = load_checkpoint(target, tmp_path / "q.pth", allow_mismatch=True)
    assert report.mismatched == [("query_tokens", (1, 32, 64), (1, 8, 64))]
    assert report.loaded == ["language_projection.bias"] and torch.equal(target.language_projection.bias, torch.ones(D))


def test_vocabulary_rows_fewer_are_copied_more_are_mismatched(tmp_path: Path) -> None:
    embed, head = torch.randn(500, D), torch.randn(500, D)
    torch.save(
        {"model": {"llm_model.model.embed_tokens.weight": embed, "llm_model.lm_head.weight": head}},
        tmp_path / "v500.pth",
    )
    target = tiny_model()
    pad_row = target.language_model.lm_head.weight[500].clone()
    report = load_checkpoint(target, tmp_path / "v500.pth")
    assert torch.equal(target.language_model.model.embed_tokens.weight[:500], embed)
    assert torch.equal(target.language_model.lm_head.weight[:500], head)
    assert torch.equal(target.language_model.lm_head.weight[500], pad_row)
    assert len(report.loaded) == 2 and sum("500 rows" in note for note in report.notes) == 2

    torch.save({"model": {"llm_model.lm_head.weight": torch.randn(502, D)}}, tmp_path / "v502.pth")
    with pytest.raises(CheckpointError, match="lm_head.weight: file"):
        load_checkpoint(target, tmp_path / "v502.pth")


def test_load_sequence_later_files_override_and_required_keys_are_checked(tmp_path: Path) -> None:
    first, second = lavis_exportable(seed=1), lavis_exportable(seed=3)
    torch.save({"model": to_lavis(first.state_dict())}, tmp_path / "full.pth")
    torch.save(eva_file(first), tmp_path / "eva.pth")
    finetuned = {
        "query_tokens": second.query_tokens.detach().clone(),
        "llm_proj.bias": second.language_projection.bias,
    }
    torch.save({"model": finetuned}, tmp_path / "finetuned.pth")
    no_llm: Callable[[str], bool] = lambda name: not name.startswith("language_model.")  # noqa: E731

    target = tiny_model(seed=2)
    reports = load_sequence(
        target,
        [("model.pretrained", tmp_path / "full.pth"), ("model.finetuned", tmp_path / "finetuned.pth")],
        required=no_llm,
    )
    assert [r.format for r in reports] == ["lavis", "lavis"] and all(isinstance(r, LoadReport) for r in reports)
    assert torch.equal(target.query_tokens, second.query_tokens)
    assert torch.equal(target.language_projection.weight, first.language_projection.weight)

    with pytest.raises(CheckpointError) as error:
        load_sequence(
            tiny_model(),
            [("model.vit_checkpoint", tmp_path / "eva.pth"), ("model.finetuned", tmp_path / "finetuned.pth")],
            required=no_llm,
        )
    message = str(error.value)
    assert f"model.vit_checkpoint={tmp_path / 'eva.pth'}" in message and "finetuned.pth" in message
    assert "vision_model: 2 keys, e.g. vision_model.post_layernorm.weight" in message
    assert "qformer:" in message and "language_projection:" in message and "model.pretrained" in message
    assert "language_model" not in message.replace("language_model.", "")  # not required here
    assert sum(part.count(", ") for part in message.split("e.g. ")[1:]) < 20  # only a few keys are listed


def test_conversion_is_pure_and_merges_vit_biases() -> None:
    q, v = torch.randn(D), torch.randn(D)
    converted = to_vigc_names(
        {
            "visual_encoder.blocks.0.attn.q_bias": q,
            "visual_encoder.blocks.0.attn.v_bias": v,
            "t5_proj.weight": torch.zeros(1),
        },
        source="mem",
    )
    assert converted.format == "lavis"
    assert torch.equal(converted.tensors["vision_model.encoder.layers.0.self_attn.qkv.bias"], torch.cat([q, 0 * q, v]))
    assert "t5_proj.weight" in converted.tensors  # unmapped keys keep their name: the loader calls them unexpected


# ----------------------------------------------------------------------------------------- shared fixture

needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"parity fixture not found at {FIXTURE}")


@needs_fixture
def test_fixture_lavis_full_maps_every_key() -> None:
    manifest = json.loads((FIXTURE / "weights_manifest.json").read_text())
    target = tiny_model()
    report = load_checkpoint(target, FIXTURE / "lavis_full.pth")

    documented_drops = {"Qformer.bert.embeddings.position_ids"} | {
        f"llm_model.model.layers.{i}.self_attn.rotary_emb.inv_freq" for i in (0, 1)
    }
    assert set(report.dropped) == documented_drops
    assert report.missing == [] and report.unexpected == [] and report.mismatched == [] and report.filled == []
    assert len(report.loaded) == len(target.state_dict()) == len(manifest["lavis_full.pth"]) - 3 - 2


@needs_fixture
def test_fixture_route_b_files_equal_lavis_full_where_they_overlap() -> None:
    full = tiny_model(seed=1)
    load_checkpoint(full, FIXTURE / "lavis_full.pth")
    route_b = tiny_model(seed=2)
    reports = load_sequence(
        route_b,
        [
            ("model.vit_checkpoint", FIXTURE / "eva_vit_tiny.pth"),
            ("model.pretrained", FIXTURE / "lavis_trimmed.pth"),
        ],
        required=lambda name: not name.startswith("language_model."),
    )

    eva, trimmed = reports
    assert eva.format == "eva_vit" and trimmed.format == "lavis"
    assert len(eva.dropped) == 13 and all(k.startswith("blocks.2.") for k in eva.dropped)
    assert trimmed.dropped == ["Qformer.bert.embeddings.position_ids"]
    covered = set(eva.loaded) | set(trimmed.loaded)
    assert covered == {k for k in full.state_dict() if not k.startswith("language_model.")}
    assert_loaded_equal(route_b, state(full, lambda k: k in covered))


@needs_fixture
def test_fixture_vision_tower_matches_lavis_golden_output() -> None:
    model = tiny_model()
    load_checkpoint(model, FIXTURE / "eva_vit_tiny.pth")
    load_checkpoint(model, FIXTURE / "lavis_trimmed.pth")
    model.vision_model.post_layernorm.eps = 1e-5  # LAVIS ln_vision is a torch-default LayerNorm (SPEC §3)
    pixels = torch.load(FIXTURE / "inputs/pixels.pt", weights_only=True)
    golden = torch.load(FIXTURE / "goldens/a_vision.pt", weights_only=True)

    with torch.no_grad():
        out = model.vision_model(pixels, output_hidden_states=True)
    torch.testing.assert_close(out.hidden_states[-1], golden["visual_encoder_out"], rtol=0, atol=1e-5)
    torch.testing.assert_close(out.last_hidden_state, golden["image_embeds"], rtol=0, atol=1e-5)
