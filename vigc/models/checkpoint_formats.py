"""Checkpoint formats VIGC understands, and their conversion to the model's parameter names.

The target names are those of transformers' ``InstructBlipForConditionalGeneration`` (``vision_model.*``,
``qformer.*``, ``query_tokens``, ``language_projection.*``, ``language_model.*``), which ``VIGCModel`` shares.
The LAVIS → transformers key table is SPEC §3; it was verified numerically on tiny random models.

Formats:

* ``eva_vit``: LAVIS ``eva_vit_g.pth`` (``cls_token``, ``pos_embed``, ``patch_embed.*``,
  ``blocks.{i}.*``).
* ``lavis``: any LAVIS/VIGC state dict (``visual_encoder.``, ``ln_vision.``, ``Qformer.``, ``query_tokens``,
  ``llm_proj.``/``llama_proj.``, ``llm_model.``): BLIP-2 stage 1, MiniGPT-4 stage 1, InstructBLIP trimmed,
  VIGC fine-tuned.
* ``hf_instructblip``: a transformers InstructBLIP checkpoint, already in target names.
* ``vigc``: our own safetensors (target names, metadata ``format: vigc``).

Conversion is pure (no model needed). What depends on the model (blocks beyond its depth, another position
grid, a grown vocabulary) is decided by the loader in ``vigc.models.checkpoints``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vigc.errors import CheckpointError

FORMATS: tuple[str, ...] = ("eva_vit", "lavis", "hf_instructblip", "vigc")

VISION_POS_EMBED = "vision_model.embeddings.position_embedding"

# Per-block renames of the EVA ViT (LAVIS `VisionTransformer`) → transformers `InstructBlipEncoderLayer`.
# `attn.q_bias`/`attn.v_bias` are handled separately: they become one `qkv.bias` (k has no bias in EVA).
_VIT_BLOCK_RENAMES: dict[str, str] = {
    "norm1.": "layer_norm1.",
    "norm2.": "layer_norm2.",
    "attn.qkv.weight": "self_attn.qkv.weight",
    "attn.qkv.bias": "self_attn.qkv.bias",
    "attn.proj.": "self_attn.projection.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_VIT_TOP_RENAMES: dict[str, str] = {
    "cls_token": "embeddings.class_embedding",
    "pos_embed": "embeddings.position_embedding",
    "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
    "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
}
# A final norm / classifier head exist in some EVA checkpoints; LAVIS's feature extractor has neither.
_VIT_DROPPED_PREFIXES: tuple[str, ...] = ("norm.", "head.", "fc_norm.")
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")

_LAVIS_PREFIXES: tuple[str, ...] = (
    "visual_encoder.",
    "ln_vision.",
    "Qformer.",
    "llm_proj.",
    "llama_proj.",
    "llm_model.",
)
_HF_PREFIXES: tuple[str, ...] = ("vision_model.", "qformer.", "language_projection.", "language_model.")
_EVA_KEYS: tuple[str, ...] = ("cls_token", "pos_embed")
_EVA_PREFIXES: tuple[str, ...] = ("patch_embed.", "blocks.")

# Buffers some files carry that the transformers modules recompute (or keep non-persistent).
_BUFFER_SUFFIXES: tuple[str, ...] = ("embeddings.position_ids", "rotary_emb.inv_freq")


@dataclass
class ConvertedCheckpoint:
    """A state dict renamed to the model's parameter names.

    Attributes:
        format: One of ``FORMATS``.
        tensors: Target name → tensor. Keys that had no mapping keep their file name (the loader reports them
            as unexpected).
        dropped: File keys deliberately left out (buffers, prediction heads, final ViT norm), with no target.
        notes: Human-readable remarks (what was merged, dropped and why).
        origin: Target name → the file key(s) it came from (``qkv.bias`` comes from two).
    """

    format: str
    tensors: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    origin: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add(self, name: str, tensor: torch.Tensor, *sources: str) -> None:
        """Store ``tensor`` under target ``name``; two file keys claiming one target is an error."""
        if name in self.tensors:
            raise CheckpointError(
                f"checkpoint keys {list(self.origin[name])} and {list(sources)} both map to {name!r}; "
                "the file mixes two naming schemes and cannot be loaded unambiguously"
            )
        self.tensors[name] = tensor
        self.origin[name] = sources


def detect_format(keys: list[str], metadata: Mapping[str, str] | None = None) -> str | None:
    """Return the format of a state dict from its keys (and safetensors metadata), or None if unknown."""
    if metadata and metadata.get("format") == "vigc":
        return "vigc"
    if any(k.startswith(_LAVIS_PREFIXES) for k in keys):
        return "lavis"
    if any(k.startswith(_HF_PREFIXES) or k == "query_tokens" for k in keys):
        return "hf_instructblip"
    if any(k in _EVA_KEYS or k.startswith(_EVA_PREFIXES) for k in keys):
        return "eva_vit"
    return None


def to_vigc_names(
    state_dict: Mapping[str, torch.Tensor], *, source: str, metadata: Mapping[str, str] | None = None
) -> ConvertedCheckpoint:
    """Detect the format of ``state_dict`` and rename its tensors to the model's parameter names.

    Args:
        state_dict: File key → tensor, as read by ``read_state_dict``.
        source: Where it came from (used in messages only).
        metadata: Safetensors metadata, if any (``{"format": "vigc"}`` marks our own files).

    Returns:
        The converted checkpoint. Tensors are not copied unless they had to be merged.

    Raises:
        CheckpointError: No key belongs to a known format, or two keys map to one target.
    """
    keys = list(state_dict)
    fmt = detect_format(keys, metadata)
    if fmt is None:
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "") if keys else "(no tensors)"
        raise CheckpointError(
            f"{source}: unknown checkpoint format ({len(keys)} keys: {shown}). Understood formats: "
            "eva_vit (LAVIS eva_vit_g.pth: cls_token, pos_embed, blocks.*), "
            "lavis (visual_encoder.*, ln_vision.*, Qformer.*, query_tokens, llm_proj.*/llama_proj.*, "
            "llm_model.*), "
            "hf_instructblip (vision_model.*, qformer.*, language_projection.*, language_model.*), "
            "vigc (safetensors saved by VIGC). "
            "Check that the path points at the intended file."
        )
    if fmt == "eva_vit":
        out = ConvertedCheckpoint(format=fmt, tensors={})
        _convert_vit(state_dict, out, src_prefix="", dst_prefix="vision_model.")
    elif fmt == "lavis":
        out = _convert_lavis(state_dict)
    else:
        out = _convert_target_names(state_dict, fmt)
    return out


def _convert_target_names(state_dict: Mapping[str, torch.Tensor], fmt: str) -> ConvertedCheckpoint:
    """Identity mapping for files already in target names, minus recomputed buffers."""
    out = ConvertedCheckpoint(format=fmt, tensors={})
    for key, tensor in state_dict.items():
        if key.endswith(_BUFFER_SUFFIXES):
            out.dropped.append(key)
        else:
            out.add(key, tensor, key)
    if out.dropped:
        out.notes.append(f"dropped {len(out.dropped)} buffers the model recomputes (position_ids, inv_freq)")
    return out


def _convert_vit(
    state_dict: Mapping[str, torch.Tensor], out: ConvertedCheckpoint, *, src_prefix: str, dst_prefix: str
) -> None:
    """Rename EVA ViT keys (``src_prefix`` + LAVIS name) into ``out`` under ``dst_prefix``; merge q/v bias."""
    biases: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        if not key.startswith(src_prefix):
            continue
        name = key[len(src_prefix) :]
        if name in _VIT_TOP_RENAMES:
            out.add(dst_prefix + _VIT_TOP_RENAMES[name], tensor, key)
        elif name.startswith(_VIT_DROPPED_PREFIXES):
            out.dropped.append(key)
        elif (match := _BLOCK_RE.match(name)) is None:
            out.add(key, tensor, key)
        elif match.group(2) in ("attn.q_bias", "attn.v_bias"):
            biases.setdefault(match.group(1), {})[match.group(2)[5]] = tensor
        else:
            out.add(_vit_block_name(dst_prefix, match.group(1), match.group(2)) or key, tensor, key)
    for block, qv in biases.items():
        q_key, v_key = f"{src_prefix}blocks.{block}.attn.q_bias", f"{src_prefix}blocks.{block}.attn.v_bias"
        if set(qv) != {"q", "v"}:
            # Keep the lone bias under its file name: the loader reports it as unexpected.
            lone = q_key if "q" in qv else v_key
            out.add(lone, next(iter(qv.values())), lone)
            out.notes.append(f"block {block} has only one of q_bias/v_bias; it cannot form qkv.bias")
            continue
        # EVA has no key bias: transformers' fused qkv.bias = cat(q_bias, 0, v_bias), shape (3D,).
        merged = torch.cat((qv["q"], torch.zeros_like(qv["q"]), qv["v"]))
        out.add(f"{dst_prefix}encoder.layers.{block}.self_attn.qkv.bias", merged, q_key, v_key)
    if biases:
        out.notes.append(f"merged q_bias/v_bias of {len(biases)} ViT blocks into qkv.bias = cat(q, 0, v)")
    if any(k.startswith(src_prefix) and k[len(src_prefix) :].startswith(_VIT_DROPPED_PREFIXES) for k in out.dropped):
        out.notes.append("dropped the ViT's final norm/head: LAVIS's feature extractor does not use them")


def _vit_block_name(dst_prefix: str, block: str, rest: str) -> str | None:
    """Target name of one EVA block parameter, or None when it has no counterpart."""
    for old, new in _VIT_BLOCK_RENAMES.items():
        if rest.startswith(old):
            return f"{dst_prefix}encoder.layers.{block}.{new}{rest[len(old) :]}"
    return None


def _convert_lavis(state_dict: Mapping[str, torch.Tensor]) -> ConvertedCheckpoint:
    """Rename a LAVIS state dict per SPEC §3."""
    out = ConvertedCheckpoint(format="lavis", tensors={})
    _convert_vit(state_dict, out, src_prefix="visual_encoder.", dst_prefix="vision_model.")
    for key, tensor in state_dict.items():
        if key.startswith("visual_encoder."):
            continue
        if key == "Qformer.bert.embeddings.position_ids" or key.startswith("Qformer.cls."):
            out.dropped.append(key)
        elif key.startswith("llm_model.") and key.endswith("rotary_emb.inv_freq"):
            out.dropped.append(key)
        else:
            out.add(_lavis_name(key) or key, tensor, key)
    if out.dropped:
        out.notes.append(
            f"dropped {len(out.dropped)} keys with no counterpart (buffers the model recomputes, the unused "
            f"Qformer.cls head, a final ViT norm), e.g. {out.dropped[:3]}"
        )
    if any(k.startswith("llama_proj.") for k in state_dict):
        out.notes.append("MiniGPT-4 llama_proj.* mapped to language_projection.*")
    return out


def _lavis_name(key: str) -> str | None:
    """Target name of one non-ViT LAVIS key, or None when it has no counterpart."""
    if key == "query_tokens":
        return key
    if key.startswith("ln_vision."):
        return "vision_model.post_layernorm." + key[len("ln_vision.") :]
    if key.startswith(("llm_proj.", "llama_proj.")):
        return "language_projection." + key.split(".", 1)[1]
    if key.startswith("llm_model."):
        return "language_model." + key[len("llm_model.") :]
    if key.startswith("Qformer.bert."):
        name = "qformer." + key[len("Qformer.bert.") :]
        name = name.replace(".crossattention.self.", ".crossattention.attention.")
        name = name.replace(".attention.self.", ".attention.attention.")
        return name.replace("qformer.embeddings.LayerNorm.", "qformer.embeddings.layernorm.")
    return None


def interpolate_pos_embed(pos_embed: torch.Tensor, num_positions: int) -> torch.Tensor:
    """Resize a ViT position embedding to another square patch grid, as LAVIS's ``interpolate_pos_embed``.

    The CLS position is kept; the patch positions are reshaped to ``(1, D, g, g)``, resized bicubically
    (``align_corners=False``) to the new grid and flattened back. Computed in float32, returned in the input
    dtype.

    Args:
        pos_embed: ``(1, 1 + g*g, D)``.
        num_positions: ``1 + G*G`` of the target.

    Returns:
        ``(1, 1 + G*G, D)``.

    Raises:
        CheckpointError: A grid is not square.
    """
    old_grid, new_grid = math.isqrt(pos_embed.shape[1] - 1), math.isqrt(num_positions - 1)
    if old_grid**2 != pos_embed.shape[1] - 1 or new_grid**2 != num_positions - 1:
        raise CheckpointError(
            f"cannot interpolate a position embedding of {pos_embed.shape[1]} positions to {num_positions}: "
            "both must be 1 + a square number of patches"
        )
    dim = pos_embed.shape[-1]
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    grid = patch_pos.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    patch_pos = grid.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)  # (1, G*G, D)
    return torch.cat((cls_pos, patch_pos), dim=1)
