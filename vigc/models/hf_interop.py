"""Hugging Face interop: a VIGC model as a transformers InstructBLIP folder, and LoRA adapters as a PEFT folder.

`VIGCModel` already uses `InstructBlipForConditionalGeneration` parameter names, so the export is a config, the
weights and the processor. Differences between the exported model and ours (see README, "Export to Hugging Face"):

* transformers marks the visual prefix with `num_query_tokens` `<image>` tokens in `input_ids`; the layout
  `[<image> x Q][bos prompt]` is ours (`[prefix][bos prompt]`). `<image>` is a new token (id = our vocabulary
  size) with a zero embedding row (replaced by the prefix) and a zero `lm_head` row: raw logits gain one column
  (0) for it, and `generation_config.json` suppresses it so that `generate` never picks it.
* transformers has one `layer_norm_eps` for the ViT blocks and the final `post_layernorm`; LAVIS's `ln_vision`
  uses 1e-5 and EVA's blocks 1e-6. The export keeps the blocks' eps: logits differ by float rounding (4e-6 at
  most on the default model; 0 with the eps set to 1e-5).
* The processor's LLM tokenizer is transformers 5's `LlamaTokenizer` with bos = eos = `</s>` and `[PAD]`; its ids
  differ from ours only for a text that starts with spaces (it drops one `▁`). For batches set
  `processor.tokenizer.padding_side = "left"`: `[<image> x Q][pads][bos prompt]` then decodes as ours does.
* `generate` is transformers 5's: it gave our ids (greedy, 5 beams, repetition penalty 1.5) with
  `DecodingSettings`' defaults. The VIGC generation configs use the original's 4.33 settings
  (`DecodingSettings.from_lavis`: a hidden BOS that counts in the lengths, the repetition penalty and the beam
  scores), which transformers 5 cannot express: there its outputs can differ from ours.

The reverse direction (such a folder, or `Salesforce/instructblip-vicuna-7b`, as `model.pretrained` with no
`model.llm_model`) is `instructblip_folder_arguments` + `build_llm_from_folder`, used by `vigc_model`.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationConfig,
    InstructBlipConfig,
    PretrainedConfig,
    PreTrainedModel,
)

from vigc.errors import CheckpointError, ConfigError
from vigc.models.lora import LORA_MARKER
from vigc.models.tokenizers import LavisLlamaTokenizer
from vigc.models.vigc_model import VIGCModel

__all__ = [
    "ADAPTER_DIR",
    "IMAGE_TOKEN",
    "ExportReport",
    "build_llm_from_folder",
    "drop_image_token_row",
    "export_instructblip",
    "image_token_id",
    "instructblip_config",
    "instructblip_folder_arguments",
    "is_instructblip_folder",
    "save_peft_adapter",
]

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
QFORMER_TOKENIZER_DIR = "qformer_tokenizer"
ADAPTER_DIR = "lora_adapter"
MAX_SHARD_SIZE = "5GB"


@dataclass
class ExportReport:
    """What `export_instructblip` wrote.

    Attributes:
        out_dir: The folder.
        num_tensors: Tensors in the weight files.
        image_token_id: Id of `<image>` in the LLM tokenizer and `config.image_token_index`.
        lora: "none", "merged" (adapters folded into the LLM weights) or "adapter" (PEFT folder written).
        adapter_dir: The PEFT folder when `lora == "adapter"`.
        files: Files written, relative to `out_dir`.
    """

    out_dir: Path
    num_tensors: int
    image_token_id: int
    lora: str
    adapter_dir: Path | None = None
    files: list[str] = field(default_factory=list)


def image_token_id(model: VIGCModel) -> tuple[int, bool]:
    """The id of `<image>` in the export and whether it is a new row (not when the tokenizer has it already).

    A model loaded from an InstructBLIP folder without `tokenizer.model` uses that folder's tokenizer, which knows
    `<image>`; its LLM keeps that row.
    """
    vocabulary = model.llm_tokenizer.to_transformers().get_vocab()
    if IMAGE_TOKEN in vocabulary:
        return int(vocabulary[IMAGE_TOKEN]), False
    return len(model.llm_tokenizer), True


def instructblip_config(model: VIGCModel) -> InstructBlipConfig:
    """The `InstructBlipConfig` of `model`, with one more LLM row for `<image>` when it is new."""
    text = model.language_model.config.to_dict()
    image_id, added = image_token_id(model)
    tok = model.llm_tokenizer
    text.update(
        vocab_size=model.input_embeddings().weight.shape[0] + int(added),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    for key in ("architectures", "_name_or_path"):  # the latter is a local path of the exporting machine
        text.pop(key, None)
    text_config = AutoConfig.for_model(**text)
    return InstructBlipConfig(
        vision_config=model.vision_model.config.to_dict(),
        qformer_config=model.qformer.config.to_dict(),
        text_config=text_config.to_dict(),
        num_query_tokens=model.query_tokens.shape[1],
        image_token_index=image_id,
        architectures=["InstructBlipForConditionalGeneration"],
    )


def _lora_modules(language_model: nn.Module) -> dict[str, nn.Module]:
    """LLM module name → peft LoRA layer (modules that own `lora_A`)."""
    return {name: module for name, module in language_model.named_modules() if hasattr(module, "lora_A")}


def _llm_state_dict(model: VIGCModel, merge_lora: bool) -> dict[str, torch.Tensor]:
    """`language_model.*` tensors without adapters; with `merge_lora`, base weight + scale * B @ A."""
    lora = _lora_modules(model.language_model)
    merged = {f"{name}.base_layer.weight": name for name in lora} if merge_lora else {}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.language_model.state_dict().items():
        if LORA_MARKER in f".{name}":
            continue
        if name in merged:
            module = cast(Any, lora[merged[name]])
            delta = module.get_delta_weight("default")
            tensor = (tensor.float() + delta.float()).to(tensor.dtype)
        out["language_model." + name.replace(".base_layer.", ".")] = tensor
    return out


def _vocabulary_names(model: VIGCModel) -> list[str]:
    """State-dict names of the LLM's input and output embedding matrices (whatever the architecture calls them)."""
    matrices = [model.language_model.get_input_embeddings(), model.language_model.get_output_embeddings()]
    weights = [cast(nn.Module, m).weight for m in matrices if m is not None]
    named = model.language_model.named_parameters(remove_duplicate=False)
    return ["language_model." + n.replace(".base_layer.", ".") for n, p in named if any(p is w for w in weights)]


def _hf_state_dict(model: VIGCModel, merge_lora: bool) -> dict[str, torch.Tensor]:
    """Every tensor under InstructBLIP names, the LLM vocabulary grown by the zero `<image>` row."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("language_model.")}
    state.update(_llm_state_dict(model, merge_lora))
    for name in _vocabulary_names(model) if image_token_id(model)[1] else []:
        matrix = state[name]
        state[name] = torch.cat([matrix, matrix.new_zeros(1, matrix.shape[1])])
    # Contiguous CPU tensors without copies where possible (a 7B model is not duplicated); tied ones are
    # de-duplicated by save_torch_state_dict.
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _processor(model: VIGCModel, image_mean: Sequence[float], image_std: Sequence[float]) -> Any:
    """Image processor (LAVIS eval transform: bicubic square resize, then normalise) and both tokenizers."""
    # Imported here: importing the image processor logs a torchvision notice that only an export needs to show.
    from transformers import BlipImageProcessor, InstructBlipProcessor

    size = int(cast(Any, model.vision_model.config).image_size)
    image_processor = BlipImageProcessor(
        size={"height": size, "width": size},
        resample=3,  # PIL bicubic, as LAVIS's eval transform
        image_mean=list(image_mean),
        image_std=list(image_std),
        do_convert_rgb=True,
    )
    # Copies: adding `<image>` must not change the model's own tokenizers.
    tokenizer = copy.deepcopy(model.llm_tokenizer.to_transformers())
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tokenizer.image_token = IMAGE_TOKEN
    if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) != image_token_id(model)[0]:
        raise CheckpointError(f"{IMAGE_TOKEN} must get id {image_token_id(model)[0]} in the exported tokenizer")
    qformer_tokenizer = copy.deepcopy(model.qformer_tokenizer.to_transformers())
    qformer_tokenizer.init_kwargs["truncation_side"] = "left"  # saved with it: LAVIS keeps a long text's end
    return InstructBlipProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        qformer_tokenizer=qformer_tokenizer,
        num_query_tokens=model.query_tokens.shape[1],
    )


def export_instructblip(
    model: VIGCModel,
    out_dir: str | Path,
    *,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    merge_lora: bool = False,
) -> ExportReport:
    """Write `model` as a transformers InstructBLIP folder (config, safetensors, processor, generation config).

    `InstructBlipForConditionalGeneration.from_pretrained(out_dir)` and `InstructBlipProcessor.from_pretrained`
    load it. A model with LoRA adapters gets, unless `merge_lora`, its base LLM weights in the folder and the
    adapters as a PEFT folder in `out_dir/lora_adapter` (`PeftModel.from_pretrained(hf_model, that folder)`).

    Args:
        model: The model to export.
        out_dir: Destination folder (created; files of the same names are overwritten).
        image_mean: Per-channel mean of the image processor (the data pipeline's, e.g. CLIP's).
        image_std: Per-channel standard deviation of the image processor.
        merge_lora: Fold the LoRA adapters into the LLM weights instead of writing them apart.

    Returns:
        What was written.
    """
    from huggingface_hub import save_torch_state_dict  # the sharded safetensors layout transformers reads

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = instructblip_config(model)
    config.dtype = model.language_model.dtype
    config.save_pretrained(out)
    state = _hf_state_dict(model, merge_lora)
    save_torch_state_dict(state, out, max_shard_size=MAX_SHARD_SIZE, metadata={"format": "pt"})
    image_id = int(config.image_token_index or 0)
    tok = model.llm_tokenizer
    GenerationConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,  # ours pads generation with eos, as the original did
        suppress_tokens=[image_id],
    ).save_pretrained(out)
    _processor(model, image_mean, image_std).save_pretrained(out)
    if isinstance(tok, LavisLlamaTokenizer):  # read back by VIGC: the exact LAVIS ids (see `load_llm_tokenizer`)
        tok.save_model_file(out)
    has_lora = bool(_lora_modules(model.language_model))
    lora = "merged" if has_lora and merge_lora else "adapter" if has_lora else "none"
    adapter_dir = save_peft_adapter(model, out / ADAPTER_DIR) if lora == "adapter" else None
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    logger.info("exported %d tensors to %s (LoRA: %s)", len(state), out, lora)
    return ExportReport(out, len(state), image_id, lora, adapter_dir, files)


def save_peft_adapter(model: VIGCModel, out_dir: str | Path) -> Path:
    """Save the LLM's LoRA adapters as a PEFT folder (`adapter_config.json`, `adapter_model.safetensors`).

    Module names are those of `InstructBlipForConditionalGeneration` (`language_model.model.layers...`), so
    `PeftModel.from_pretrained(InstructBlipForConditionalGeneration.from_pretrained(export), out_dir)` applies
    them to the exported model.

    Raises:
        CheckpointError: The model has no LoRA adapters.
    """
    from peft import LoraConfig, get_peft_model_state_dict  # only LoRA models need peft
    from safetensors.torch import save_file

    lora = _lora_modules(model.language_model)
    if not lora:
        raise CheckpointError("the model has no LoRA adapters to save (its config has no model.lora_config)")
    first = cast(Any, next(iter(lora.values())))
    config = LoraConfig(
        r=int(first.r["default"]),
        lora_alpha=int(first.lora_alpha["default"]),
        lora_dropout=float(getattr(first.lora_dropout["default"], "p", 0.0)),
        target_modules=sorted(f"language_model.{name}" for name in lora),
        bias="none",
    )
    # peft's own naming of an adapter state dict: `base_model.model.<module>.lora_A.weight` (adapter name dropped).
    adapters = get_peft_model_state_dict(model.language_model, adapter_name="default")
    tensors = {f"base_model.model.language_model.{name}": t.detach().cpu().contiguous() for name, t in adapters.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    logger.info("saved %d LoRA tensors (r=%d) to %s", len(tensors), config.r, out)
    return out


# ---- the reverse direction: an InstructBLIP folder as the whole model -----------------------------------------


def _read_folder_config(path: Path) -> dict[str, Any] | None:
    file = path / "config.json"
    if not path.is_dir() or not file.is_file():
        return None
    try:
        return cast(dict[str, Any], json.loads(file.read_text()))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file} is not valid JSON: {exc}") from exc


def is_instructblip_folder(path: str | Path | None) -> bool:
    """Whether `path` is a transformers folder with `model_type: instructblip`."""
    if not path:
        return False
    config = _read_folder_config(Path(path).expanduser())
    return config is not None and config.get("model_type") == "instructblip"


def instructblip_folder_arguments(path: str | Path) -> dict[str, Any]:
    """`vigc_model` arguments that make a model of the folder's architecture, with its LLM and tokenizers.

    `llm_model` is the folder itself (its config gives the LLM's, its weights are read once, as the checkpoint);
    `qformer_tokenizer` its `qformer_tokenizer/` subfolder.
    """
    folder = Path(path).expanduser()
    config = InstructBlipConfig.from_pretrained(folder)
    vision, qformer = cast(Any, config.vision_config), cast(Any, config.qformer_config)
    if not config.use_decoder_only_language_model:
        raise ConfigError(
            f"{folder}: its language model ({cast(Any, config.text_config).model_type}) is not a causal LM"
        )
    if not (folder / QFORMER_TOKENIZER_DIR).is_dir():
        raise ConfigError(f"{folder} has no {QFORMER_TOKENIZER_DIR}/ folder (the Q-Former's BERT tokenizer)")
    return {
        "llm_model": str(folder),
        "qformer_tokenizer": str(folder / QFORMER_TOKENIZER_DIR),
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "vit_width": vision.hidden_size,
        "vit_depth": vision.num_hidden_layers,
        "vit_heads": vision.num_attention_heads,
        "vit_mlp_hidden": vision.intermediate_size,
        "vit_layer_norm_eps": vision.layer_norm_eps,
        "num_query_token": config.num_query_tokens,
        "qformer_hidden": qformer.hidden_size,
        "qformer_layers": qformer.num_hidden_layers,
        "qformer_heads": qformer.num_attention_heads,
        "qformer_intermediate": qformer.intermediate_size,
        "qformer_max_positions": qformer.max_position_embeddings,
        "cross_attention_freq": qformer.cross_attention_frequency,
    }


def build_llm_from_folder(path: Path, dtype: torch.dtype) -> PreTrainedModel:
    """The folder's causal LM from its `text_config`, weights not read (the checkpoint load fills them)."""
    config = InstructBlipConfig.from_pretrained(path)
    text_config = cast(PretrainedConfig, config.text_config)
    model = AutoModelForCausalLM.from_config(text_config, dtype=dtype)
    return cast(PreTrainedModel, model)


def drop_image_token_row(model: VIGCModel, path: Path) -> None:
    """Shrink the LLM vocabulary to the tokenizer's when the folder's last row is its `<image>` token.

    Our decoder does not know `<image>`; keeping its row would let generation pick it.
    """
    config = InstructBlipConfig.from_pretrained(path)
    vocab = len(model.llm_tokenizer)
    rows = model.input_embeddings().weight.shape[0]
    if config.image_token_index is not None and config.image_token_index >= vocab and rows > vocab:
        model.language_model.resize_token_embeddings(vocab, mean_resizing=False)
        logger.info("%s: dropped %d LLM vocabulary rows beyond the tokenizer's (%s)", path, rows - vocab, IMAGE_TOKEN)
