"""Named builders, model default configs and the errors a user meets when building a model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import vigc.models  # noqa: F401  (registers the builders)
from vigc.config import MODEL_CONFIG_DIR, build_model, load_config, validate_builder_kwargs
from vigc.errors import CheckpointError, ConfigError
from vigc.models.builders import vigc_model
from vigc.registry import MODELS

NAMED = ("instructblip_vicuna7b", "instructblip_vicuna13b", "minigpt4_vicuna7b", "minigpt4_vicuna13b")


def test_named_builders_are_registered_with_real_sizes() -> None:
    import inspect

    for name in NAMED:
        params = inspect.signature(MODELS.get(name)).parameters
        assert params["vit_width"].default == 1408 and params["vit_depth"].default == 39
        assert params["num_query_token"].default == 32 and params["qformer_hidden"].default == 768
        assert params["freeze_vit_ln"].default == name.startswith("minigpt4")


@pytest.mark.parametrize("path", sorted(MODEL_CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_model_default_files_validate(path: Path) -> None:
    cfg = load_config(path)
    model = dict(cfg.model)
    validate_builder_kwargs(MODELS.get(model.pop("arch")), model, section="model", source=str(path))


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(body)
    return path


def test_unknown_key_is_one_clear_paragraph(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  arch: minigpt4_vicuna7b\n  imgae_size: 224\n")
    with pytest.raises(ConfigError) as info:
        build_model(load_config(path).model, source=str(path))
    message = str(info.value)
    assert str(path) in message and "imgae_size" in message and "image_size" in message and "\n" not in message


def test_unknown_builder_lists_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  arch: minigpt4_vicuna8b\n")
    with pytest.raises(ConfigError, match="minigpt4_vicuna7b"):
        build_model(load_config(path).model, source=str(path))


def test_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  arch: minigpt4_vicuna7b\n  num_query_token: many\n")
    with pytest.raises(ConfigError, match="num_query_token"):
        build_model(load_config(path).model, source=str(path))


def test_legacy_config_without_weights_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  arch: blip2_vicuna_instruct\n  model_type: minigpt4_vicuna7b\n")
    with pytest.raises(ConfigError, match="model.llm_model"):
        build_model(load_config(path).model, source=str(path))


def test_missing_qformer_tokenizer_names_the_key(reference_fixture: Path) -> None:
    with pytest.raises(ConfigError, match="model.qformer_tokenizer"):
        vigc_model(llm_model=str(reference_fixture / "llm"), qformer_tokenizer="/nowhere/bert")


def test_trimmed_checkpoint_without_vit_names_the_missing_part(
    reference_fixture: Path, tiny_model_kwargs: dict[str, object]
) -> None:
    kwargs = {k: v for k, v in tiny_model_kwargs.items() if k != "random_init"}
    kwargs.update(vit_mlp_hidden=279, qformer_intermediate=256)
    with pytest.raises(CheckpointError) as info:
        vigc_model(**kwargs, pretrained=str(reference_fixture / "lavis_trimmed.pth"))  # type: ignore[arg-type]
    message = str(info.value)
    assert "vision_model" in message and "model.vit_model" in message


def test_a_wrong_file_is_an_error_not_a_silent_no_op(tmp_path: Path, tiny_model_kwargs: dict[str, object]) -> None:
    wrong = tmp_path / "optimizer_only.pth"
    torch.save({"model": {"some.other.weight": torch.zeros(3)}}, wrong)
    with pytest.raises(CheckpointError, match="optimizer_only.pth"):
        vigc_model(**tiny_model_kwargs, finetuned=str(wrong))  # type: ignore[arg-type]


def test_llm_directory_without_a_model(tmp_path: Path, reference_fixture: Path) -> None:
    llm = tmp_path / "llm"
    llm.mkdir()
    shutil.copy(reference_fixture / "llm" / "tokenizer.model", llm)
    with pytest.raises(ConfigError, match="model.llm_model"):
        vigc_model(llm_model=str(llm), qformer_tokenizer=str(reference_fixture / "bert_base_uncased_tiny"))


def test_both_fixture_routes_load_the_same_weights(reference_fixture: Path, parity_model: torch.nn.Module) -> None:
    from vigc.tools.check_parity import build_model as fixture_model

    full = fixture_model(reference_fixture, "a").state_dict()
    for name, tensor in parity_model.state_dict().items():
        assert torch.equal(tensor, full[name]), name
    reports = parity_model.load_reports  # type: ignore[attr-defined]
    assert [r.format for r in reports] == ["eva_vit", "lavis"]
    assert all(not r.mismatched for r in reports)


def test_lora_adapters_are_trainable_and_a_lora_checkpoint_loads_for_generation(
    tiny_model_kwargs: dict[str, object], tmp_path: Path
) -> None:
    from vigc.models.checkpoints import save_checkpoint

    lora = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    model = vigc_model(**tiny_model_kwargs, lora_config=lora)  # type: ignore[arg-type]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n in trainable if ".lora_" in n}
    assert adapters and not any(n.startswith("language_model.") and ".lora_" not in n for n in trainable)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in adapters:
                param.add_(0.01)
    path = tmp_path / "lora.safetensors"
    saved = save_checkpoint(model, path)
    assert set(saved) == trainable  # adapters and the other trainable parts, never the whole LLM
    again = vigc_model(**tiny_model_kwargs, lora_config=lora, finetuned=str(path))  # type: ignore[arg-type]
    state = again.state_dict()
    for name in adapters:
        assert torch.equal(state[name], model.state_dict()[name])
