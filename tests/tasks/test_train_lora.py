"""LoRA recipes: what is trained, and checkpoints that hold the adapters, never the LLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from _train_helpers import (
    TINY_MODEL,
    dataset_entry,
    only_run_dir,
    tiny_config,
    train_main,
    write_annotations,
    write_scenes,
)
from safetensors.torch import load_file

from vigc.errors import ConfigError
from vigc.models import builders as _builders  # noqa: F401  (registers the model builders)
from vigc.models.checkpoints import load_checkpoint
from vigc.training.model_setup import build_training_model

LORA = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj", "to_q", "ff.1"]}


def _model_section(fixture: Path, **extra: Any) -> dict[str, Any]:
    return {
        "arch": "vigc_model",
        "llm_model": str(fixture / "llm"),
        "qformer_tokenizer": str(fixture / "bert_base_uncased_tiny"),
        **TINY_MODEL,
        **extra,
    }


def test_lora_trains_adapters_projection_and_ln_vision_only(reference_fixture: Path) -> None:
    # The original's keys: freeze_q_former and lora_config (with names of other architectures that match nothing).
    model = build_training_model(_model_section(reference_fixture, freeze_q_former=True, lora_config=LORA), source="t")
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    adapters = {n for n in trained if n.startswith("language_model.")}
    assert adapters and all(".lora_A." in n or ".lora_B." in n for n in adapters)
    assert {n.split(".self_attn.")[1].split(".")[0] for n in adapters} == {"q_proj", "v_proj"}
    assert trained - adapters == {
        "language_projection.weight",
        "language_projection.bias",
        "vision_model.post_layernorm.weight",
        "vision_model.post_layernorm.bias",
    }
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in adapters)


def test_lora_config_keys_are_checked(reference_fixture: Path) -> None:
    with pytest.raises(ConfigError, match="model.lora_config.*unknown key 'rank'"):
        build_training_model(_model_section(reference_fixture, lora_config={"rank": 8}), source="t")
    with pytest.raises(ConfigError, match="matches no module"):
        build_training_model(_model_section(reference_fixture, lora_config={"target_modules": ["to_q"]}), source="t")


def test_lora_checkpoint_holds_adapters_not_the_llm(tmp_path: Path, reference_fixture: Path) -> None:
    files = write_annotations(tmp_path, write_scenes(tmp_path, 8, seed=9), "train")
    datasets = {"instruct_blip_okvqa_vig": dataset_entry(files["okvqa"], tmp_path)}
    config = tiny_config(
        tmp_path,
        reference_fixture,
        datasets=datasets,
        run={"max_iters": 4, "batch_size_train": 2, "init_lr": 1e-2, "warmup_steps": 0},
        model={"freeze_qformer": True, "lora_config": LORA},
    )
    assert train_main(["--cfg-path", str(config)]) == 0

    checkpoint = only_run_dir(tmp_path / "output") / "checkpoint_00000004" / "model.safetensors"
    saved = load_file(str(checkpoint))
    llm_keys = [k for k in saved if k.startswith("language_model.")]
    assert llm_keys and all(".lora_" in k for k in llm_keys)
    assert not any(k.startswith("qformer.") for k in saved)
    # The whole tiny LLM is 660 kB; the adapters (r=8 on q/v of 2 layers) and the projection are about 36 kB.
    llm_bytes = (reference_fixture / "llm" / "model.safetensors").stat().st_size
    assert checkpoint.stat().st_size < 0.1 * llm_bytes
    assert any(saved[k].abs().sum() > 0 for k in llm_keys if ".lora_B." in k)  # B starts at zero: it was trained

    fresh = build_training_model(_model_section(reference_fixture, freeze_qformer=True, lora_config=LORA), source="t")
    report = load_checkpoint(fresh, checkpoint)
    assert sorted(report.loaded) == sorted(saved) and not report.unexpected
    state = fresh.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in saved.items())

    # The same adapters as a PEFT folder, under the names of transformers' InstructBLIP.
    peft_dir = checkpoint.parent / "lora_adapter"
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16
    adapters = load_file(str(peft_dir / "adapter_model.safetensors"))
    ours = {k.replace(".default.", "."): v for k, v in saved.items() if ".lora_" in k}
    assert {k.removeprefix("base_model.model.") for k in adapters} == set(ours)
    assert all(torch.equal(adapters["base_model.model." + k], v) for k, v in ours.items())
