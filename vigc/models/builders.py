"""Named model builders. `vigc_model` exposes every knob; the named sizes fix the real dimensions.

A YAML `model:` section names one of these (`arch:`) and its other keys are exactly the builder's arguments.
"""

from __future__ import annotations

import functools
import inspect
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    InstructBlipQFormerConfig,
    InstructBlipQFormerModel,
    InstructBlipVisionConfig,
    InstructBlipVisionModel,
    PreTrainedModel,
)

from vigc.config import AT_LEAST_ONE, POSITIVE, Problems, check_ranges, validate_builder_kwargs
from vigc.errors import CheckpointError, ConfigError
from vigc.models.checkpoints import LoadReport, load_sequence
from vigc.models.hf_interop import (
    build_llm_from_folder,
    drop_image_token_row,
    instructblip_folder_arguments,
    is_instructblip_folder,
)
from vigc.models.hub_names import resolve_weight_path, resolve_weight_paths
from vigc.models.lora import LORA_MARKER, LoraSettings, apply_lora, require_peft
from vigc.models.tokenizers import load_llm_tokenizer, load_qformer_tokenizer
from vigc.models.vigc_model import VIGCModel
from vigc.registry import MODELS

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ConfigError(f"model.precision must be one of {sorted(PRECISIONS)}, got {precision!r}.")
    return PRECISIONS[precision]


def check_weight_paths(
    *,
    llm_model: str,
    qformer_tokenizer: str,
    files: dict[str, str | None],
    random_init: bool,
) -> None:
    """Every path problem at once, before anything is loaded, as one message naming each config key to set."""
    problems = []
    for key, directory in (("model.llm_model", llm_model), ("model.qformer_tokenizer", qformer_tokenizer)):
        if not directory:
            problems.append(f"`{key}` is not set (a local directory)")
        elif not Path(directory).expanduser().is_dir():
            problems.append(f"`{key}` = {directory!r} is not a directory")
    for key, file in files.items():
        if file and not Path(file).expanduser().exists():
            problems.append(f"`{key}` = {file!r} does not exist")
    if not random_init and not any(files.values()):
        problems.append(
            "no checkpoint is set: give `model.pretrained` and/or `model.finetuned` (and `model.vit_model`)"
        )
    if problems:
        example = " ".join(f"{k}=..." for k in ("model.llm_model", "model.pretrained", "model.finetuned"))
        raise ConfigError(
            "The model cannot be built: "
            + "; ".join(problems)
            + f". Set them in the config or with --options {example}."
        )


def _build_language_model(path: Path, vocab_size: int, dtype: torch.dtype) -> PreTrainedModel:
    """Load the causal LM and grow its vocabulary to the tokenizer's (new rows are zero, as in the fixture)."""
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"`model.llm_model` = {str(path)!r} has no config.json: point it at a transformers LLM directory."
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except pickle.UnpicklingError as exc:  # transformers reads .bin files with weights_only=True
        found = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        raise CheckpointError(
            f"`model.llm_model` = {str(path)!r}: its PyTorch weight file holds Python objects that could run code "
            f"when loaded{f' ({found[0]})' if found else ''}, so it is not loaded. Use the model's .safetensors "
            "weights, or a .bin file of plain tensors."
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"`model.llm_model` = {str(path)!r} does not hold a causal LM transformers can load: {exc}"
        ) from exc
    embeddings = cast(nn.Embedding, model.get_input_embeddings())
    old = embeddings.weight.shape[0]
    if vocab_size > old:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
        with torch.no_grad():
            cast(nn.Embedding, model.get_input_embeddings()).weight[old:].zero_()
            output = model.get_output_embeddings()
            if isinstance(output, nn.Linear) and output.weight.shape[0] == vocab_size:
                output.weight[old:].zero_()
    return cast(PreTrainedModel, model)


def _freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)


@MODELS.register
def vigc_model(
    *,
    llm_model: str = "",
    qformer_tokenizer: str = "",
    vit_model: str | None = None,
    pretrained: str | None = None,
    finetuned: str | None = None,
    load_pretrained: bool = True,
    load_finetuned: bool = True,
    image_size: int = 224,
    patch_size: int = 14,
    vit_width: int = 1408,
    vit_depth: int = 39,
    vit_heads: int = 16,
    vit_mlp_hidden: int = 6144,
    vit_layer_norm_eps: float = 1e-6,
    ln_vision_eps: float = 1e-5,
    num_query_token: int = 32,
    qformer_hidden: int = 768,
    qformer_layers: int = 12,
    qformer_heads: int = 12,
    qformer_intermediate: int = 3072,
    qformer_max_positions: int = 512,
    cross_attention_freq: int = 2,
    qformer_text_input: bool = True,
    max_txt_len: int = 128,
    max_output_txt_len: int = 256,
    prompt: str = "",
    freeze_vit: bool = True,
    freeze_vit_ln: bool = False,
    freeze_qformer: bool = False,
    freeze_llm: bool = True,
    precision: str = "fp32",
    device: str = "cpu",
    random_init: bool = False,
    lora_config: dict[str, Any] | None = None,
) -> VIGCModel:
    """Build a VIGC model and load its weights.

    Weights come from, in order: the LLM directory (`llm_model`), the EVA ViT file (`vit_model`, e.g.
    `eva_vit_g.pth`), `pretrained` (BLIP-2 stage-1, InstructBLIP trimmed, a LAVIS full file, an HF
    InstructBLIP directory, or ours) when `load_pretrained`, then `finetuned` (VIGC fine-tuned, or MiniGPT-4's
    `llama_proj` file) when `load_finetuned`. Every part but the LLM must be covered by some file.

    With `llm_model` unset and `pretrained` a transformers InstructBLIP folder (written by
    `python -m vigc.tools.export_hf` or in the layout of `Salesforce/instructblip-vicuna-7b`), that folder is the
    whole model: its config.json sets the architecture (the size arguments here are replaced), its LLM and
    tokenizers are used, and its weights, LLM included, are read once.

    Args:
        llm_model: local LLM directory (Vicuna v1.1 or any causal LM with `inputs_embeds`).
        qformer_tokenizer: local `bert-base-uncased` directory (tokenizer; weights there initialise the Q-Former).
        vit_model: LAVIS EVA ViT file; blocks beyond `vit_depth` are dropped.
        pretrained: first checkpoint applied.
        finetuned: checkpoint applied last.
        load_pretrained: apply `pretrained`.
        load_finetuned: apply `finetuned`.
        image_size: input side in pixels.
        patch_size: ViT patch side.
        vit_width: ViT hidden size.
        vit_depth: ViT blocks used.
        vit_heads: ViT attention heads.
        vit_mlp_hidden: ViT MLP hidden size.
        vit_layer_norm_eps: ViT block LayerNorm eps.
        ln_vision_eps: `ln_vision` eps (LAVIS uses torch's default 1e-5).
        num_query_token: learned queries.
        qformer_hidden: Q-Former width.
        qformer_layers: Q-Former layers.
        qformer_heads: Q-Former heads.
        qformer_intermediate: Q-Former FFN size.
        qformer_max_positions: Q-Former position embeddings.
        cross_attention_freq: cross-attention every this many layers.
        qformer_text_input: instruction-aware Q-Former.
        max_txt_len: instruction truncation (left) in tokens.
        max_output_txt_len: target truncation (right) in tokens.
        prompt: default generation prompt.
        freeze_vit: freeze the vision encoder.
        freeze_vit_ln: also freeze `ln_vision` (MiniGPT-4 variant).
        freeze_qformer: freeze the Q-Former and the queries (LoRA recipes).
        freeze_llm: freeze the LLM.
        precision: "fp32", "bf16" or "fp16" for the ViT and the LLM; the Q-Former stays float32.
        device: where to put the model.
        random_init: allow parts that no file covers to keep their random initialisation (tests, smoke runs).
        lora_config: LoRA adapters on the LLM (`vigc.models.lora.LoraSettings` keys: lora_r, lora_alpha,
            lora_dropout, target_modules), added before the checkpoints load so a LoRA checkpoint fills them.
    """
    arguments = dict(locals())  # the call's arguments, before anything below rebinds a name
    folder = _whole_model_folder(llm_model, pretrained if load_pretrained else None)
    if folder is not None:
        # A transformers InstructBLIP folder is the whole model: its config sets the architecture, its weights
        # (LLM included) are read once as the `pretrained` checkpoint, its tokenizers are used.
        folder_arguments = instructblip_folder_arguments(folder)
        logger.info("model.pretrained=%s is an InstructBLIP folder with architecture %s", folder, folder_arguments)
        return vigc_model(**{**arguments, "pretrained": folder, **folder_arguments})
    dtype = _dtype(precision)
    llm_model, qformer_tokenizer, files = check_vigc_model_inputs(
        precision=precision,
        lora_config=lora_config,
        llm_model=llm_model,
        qformer_tokenizer=qformer_tokenizer,
        vit_model=vit_model,
        pretrained=pretrained,
        finetuned=finetuned,
        load_pretrained=load_pretrained,
        load_finetuned=load_finetuned,
        random_init=random_init,
    )  # hub names resolved to the cache's files
    vit_model, pretrained, finetuned = files["model.vit_model"], files["model.pretrained"], files["model.finetuned"]
    llm_dir = Path(llm_model).expanduser()
    llm_tokenizer = load_llm_tokenizer(llm_dir)
    qformer_tok = load_qformer_tokenizer(Path(qformer_tokenizer).expanduser())
    llm_in_checkpoint = is_instructblip_folder(llm_dir)  # the LLM's weights come with model.pretrained
    if llm_in_checkpoint:
        language_model = build_llm_from_folder(llm_dir, dtype)
    else:
        language_model = _build_language_model(llm_dir, len(llm_tokenizer), dtype)  # fails early on a bad dir
    if lora_config is not None:
        if llm_in_checkpoint:  # the adapters would rename the LLM weights the folder is about to fill
            raise ConfigError(
                "model.lora_config cannot be combined with an InstructBLIP folder as model.pretrained and no "
                "model.llm_model; export the folder's LLM (or set model.llm_model to an LLM directory) first."
            )
        apply_lora(language_model, _lora_settings(lora_config))
    vision_model = InstructBlipVisionModel(
        InstructBlipVisionConfig(
            hidden_size=vit_width,
            intermediate_size=vit_mlp_hidden,
            num_hidden_layers=vit_depth,
            num_attention_heads=vit_heads,
            image_size=image_size,
            patch_size=patch_size,
            hidden_act="gelu",
            layer_norm_eps=vit_layer_norm_eps,
            qkv_bias=True,
            initializer_range=0.02,  # transformers' default (1e-10) would make a random_init ViT blind
        )
    )
    # LAVIS's ln_vision is nn.LayerNorm with torch's default eps, not the ViT blocks' 1e-6.
    vision_model.post_layernorm.eps = ln_vision_eps
    qformer = InstructBlipQFormerModel(
        InstructBlipQFormerConfig(
            vocab_size=len(qformer_tok),
            hidden_size=qformer_hidden,
            num_hidden_layers=qformer_layers,
            num_attention_heads=qformer_heads,
            intermediate_size=qformer_intermediate,
            max_position_embeddings=qformer_max_positions,
            cross_attention_frequency=cross_attention_freq,
            encoder_hidden_size=vit_width,
            layer_norm_eps=1e-12,
            pad_token_id=0,
        )
    )
    hidden = cast(nn.Embedding, language_model.get_input_embeddings()).weight.shape[1]
    nn.Module.to(vision_model, dtype)
    model = VIGCModel(
        vision_model=vision_model,
        qformer=qformer,
        query_tokens=torch.zeros(1, num_query_token, qformer_hidden).normal_(0.0, 0.02),
        language_projection=nn.Linear(qformer_hidden, hidden),
        language_model=language_model,
        llm_tokenizer=llm_tokenizer,
        qformer_tokenizer=qformer_tok,
        qformer_text_input=qformer_text_input,
        max_txt_len=max_txt_len,
        max_output_txt_len=max_output_txt_len,
        prompt=prompt,
    )
    sources = [("model.qformer_tokenizer", p) for p in _bert_weight_files(Path(qformer_tokenizer))]
    sources += [("model.vit_model", vit_model)] if vit_model else []
    sources += [("model.pretrained", pretrained)] if load_pretrained and pretrained else []
    sources += [("model.finetuned", finetuned)] if load_finetuned and finetuned else []
    model.load_reports = load_weights(model, sources, random_init=random_init, llm_required=llm_in_checkpoint)
    if llm_in_checkpoint:
        drop_image_token_row(model, llm_dir)
    model.vision_model.post_layernorm.float()
    _apply_freezing(model, freeze_vit, freeze_vit_ln, freeze_qformer, freeze_llm)
    return model.to(device).eval()


def check_vigc_model_inputs(
    *,
    llm_model: str = "",
    qformer_tokenizer: str = "",
    vit_model: str | None = None,
    pretrained: str | None = None,
    finetuned: str | None = None,
    load_pretrained: bool = True,
    load_finetuned: bool = True,
    random_init: bool = False,
    precision: str = "fp32",
    lora_config: dict[str, Any] | None = None,
    **_other_keys: Any,
) -> tuple[str, str, dict[str, str | None]]:
    """`vigc_model`'s inputs checked without reading a weight: precision, LoRA settings and weight paths (the
    builders' ``check_inputs``, which `vigc.config.check_model_inputs` runs with a config's other checks).

    Returns:
        The LLM folder, the Q-Former tokenizer folder and the checkpoint files by config key, Hugging Face names
        resolved to the local cache (the builder loads these).

    Raises:
        ConfigError: Naming every key that is wrong, still to set or pointing nowhere.
    """
    problems = Problems("model")
    folder = problems.check(_whole_model_folder, llm_model, pretrained if load_pretrained else None)
    if folder is not None:  # the folder brings the LLM and both tokenizers
        llm_model, qformer_tokenizer = folder, instructblip_folder_arguments(folder)["qformer_tokenizer"]
    problems.check(_dtype, precision)
    if lora_config is not None:
        problems.check(_lora_settings, lora_config)
    resolved = problems.check(
        _resolved_weight_paths,
        llm_model,
        qformer_tokenizer,
        vit_model,
        pretrained if load_pretrained else None,
        finetuned if load_finetuned else None,
    )
    if resolved is not None:
        llm_dir, tokenizer_dir, files = resolved
        problems.check(
            check_weight_paths, llm_model=llm_dir, qformer_tokenizer=tokenizer_dir, files=files, random_init=random_init
        )
    if problems.messages or resolved is None:
        raise ConfigError(" ".join(problems.messages))
    return resolved


def _whole_model_folder(llm_model: str, pretrained: str | None) -> str | None:
    """`model.pretrained` as a whole-model folder (transformers' InstructBLIP layout, local or a cached hub name)
    when no `model.llm_model` is set; else None."""
    if llm_model or not pretrained:
        return None
    folder = resolve_weight_path(pretrained, "model.pretrained", folder=True)
    return folder if folder is not None and is_instructblip_folder(folder) else None


def _resolved_weight_paths(
    llm_model: str, qformer_tokenizer: str, vit_model: str | None, pretrained: str | None, finetuned: str | None
) -> tuple[str, str, dict[str, str | None]]:
    """Hugging Face names (``wufan/vigc7b_minigpt4_llava``, ...) → their files in the local cache; local paths stay.

    Returns:
        The LLM folder, the Q-Former tokenizer folder and the checkpoint files by config key.

    Raises:
        CheckpointError: Naming every name that is not in the local cache.
    """
    resolved = resolve_weight_paths(
        {
            "model.llm_model": llm_model,
            "model.qformer_tokenizer": qformer_tokenizer,
            "model.vit_model": vit_model,
            "model.pretrained": pretrained,
            "model.finetuned": finetuned,
        },
        folders=("model.llm_model", "model.qformer_tokenizer"),
    )
    llm_dir, tokenizer_dir = resolved.pop("model.llm_model") or "", resolved.pop("model.qformer_tokenizer") or ""
    return llm_dir, tokenizer_dir, resolved


def _lora_settings(lora_config: dict[str, Any]) -> LoraSettings:
    require_peft()
    validate_builder_kwargs(LoraSettings, lora_config, section="model.lora_config", source="model")
    settings = LoraSettings(**lora_config)
    check_ranges(
        "model.lora_config",
        [
            ("lora_r", settings.lora_r, AT_LEAST_ONE),
            ("lora_alpha", settings.lora_alpha, POSITIVE),
            ("lora_dropout", settings.lora_dropout, (lambda v: 0 <= v < 1, "in [0, 1)")),
        ],
    )
    return settings


vigc_model.check_inputs = check_vigc_model_inputs  # type: ignore[attr-defined]


def _bert_weight_files(directory: Path) -> list[str]:
    """BERT weights next to the Q-Former tokenizer (LAVIS initialised the Q-Former from bert-base-uncased)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return [str(directory)]
    return []


def load_weights(
    model: VIGCModel, sources: list[tuple[str, str]], random_init: bool = False, llm_required: bool = False
) -> list[LoadReport]:
    """Apply checkpoint files in order; every part (the LLM too if `llm_required`) must be initialised.

    Unless `random_init`, which lets parts no file covers keep their random weights.
    """
    if random_init:
        logger.warning("random_init: parts not covered by a checkpoint keep random weights")
        return load_sequence(model, sources, required=lambda name: False)
    return load_sequence(model, sources, required=lambda name: llm_required or not name.startswith("language_model."))


def _apply_freezing(model: VIGCModel, vit: bool, vit_ln: bool, qformer: bool, llm: bool) -> None:
    if vit:
        _freeze(model.vision_model.embeddings)
        _freeze(model.vision_model.encoder)
    if vit and vit_ln:
        _freeze(model.vision_model.post_layernorm)
    if qformer:
        _freeze(model.qformer)
        model.query_tokens.requires_grad_(False)
    if llm:  # LoRA adapters, when there are any, stay trainable
        for name, param in model.language_model.named_parameters():
            param.requires_grad_(LORA_MARKER in f".{name}")


def _named(name: str, doc: str, **defaults: Any) -> Callable[..., VIGCModel]:
    """Register `vigc_model` under `name` with other defaults; the signature (used to validate configs) shows them."""

    def builder(**kwargs: Any) -> VIGCModel:
        return vigc_model(**{**defaults, **kwargs})

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    builder.__annotations__ = dict(vigc_model.__annotations__)  # the config checks read the argument types
    builder.__signature__ = inspect.signature(functools.partial(vigc_model, **defaults))  # type: ignore[attr-defined]
    builder.check_inputs = lambda **kwargs: check_vigc_model_inputs(**{**defaults, **kwargs})  # type: ignore[attr-defined]
    return MODELS.register(builder)


# EVA ViT-g/14 (39 of the 40 blocks of eva_vit_g.pth) and a BERT-base Q-Former are vigc_model's defaults; the
# Vicuna size comes from the LLM directory. The MiniGPT-4 variant keeps ln_vision frozen.
instructblip_vicuna7b = _named("instructblip_vicuna7b", "InstructBLIP-initialised VIGC with Vicuna-7B.")
instructblip_vicuna13b = _named("instructblip_vicuna13b", "InstructBLIP-initialised VIGC with Vicuna-13B.")
minigpt4_vicuna7b = _named("minigpt4_vicuna7b", "MiniGPT-4-initialised VIGC with Vicuna-7B.", freeze_vit_ln=True)
minigpt4_vicuna13b = _named("minigpt4_vicuna13b", "MiniGPT-4-initialised VIGC with Vicuna-13B.", freeze_vit_ln=True)
