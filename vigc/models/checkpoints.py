"""Reading, loading and saving VIGC checkpoints, with a report of what each file did to the model.

The original loaded every checkpoint with ``strict=False`` and said nothing, so a wrong path or a wrong file
silently loaded nothing. Here every file goes through three explicit steps:

1. ``read_state_dict``: tensors only (pickles that would run code are refused), ``{"model": ...}`` unwrapped;
2. ``to_vigc_names`` (``checkpoint_formats``): format detection and renaming to the model's parameter names;
3. ``load_checkpoint``: copy into the model by name and return a ``LoadReport`` (loaded, missing, unexpected,
   mismatched, dropped, filled).

``load_sequence`` applies several files in order and fails if a required parameter was initialised by none.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from vigc.errors import CheckpointError
from vigc.models.checkpoint_formats import (
    VISION_POS_EMBED,
    ConvertedCheckpoint,
    interpolate_pos_embed,
    to_vigc_names,
)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

TORCH_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".bin", ".ckpt")
# Weight files of a transformers model directory, in the order transformers itself prefers them.
HF_DIR_FILES: tuple[str, ...] = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
PARTS: tuple[str, ...] = ("vision_model", "qformer", "query_tokens", "language_projection", "language_model")
# Where each part usually comes from; used in the "left uninitialised" message of `load_sequence`.
TYPICAL_SOURCES: dict[str, str] = {
    "vision_model": "model.vit_model (the EVA ViT file eva_vit_g.pth) "
    "or a BLIP-2 / HF InstructBLIP file in model.pretrained",
    "qformer": "model.pretrained (instruct_blip_vicuna*_trimmed.pth, blip2_pretrained_flant5xxl.pth) "
    "or model.finetuned",
    "query_tokens": "model.pretrained or model.finetuned",
    "language_projection": "model.pretrained (InstructBLIP trimmed; MiniGPT-4 stage-1 llama_proj) or model.finetuned",
    "language_model": "model.llm_model (the Vicuna directory, loaded with from_pretrained)",
}

_VISION_LAYER_RE = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.")
_TEXT_FFN_RE = re.compile(r"^(qformer\.encoder\.layer\.\d+\.)(intermediate|output)\.(.+)$")


@dataclass
class LoadReport:
    """What one checkpoint file did to the model.

    Attributes:
        source: The file (``config_key=path`` when the caller named the config key).
        format: The detected format (see ``checkpoint_formats.FORMATS``).
        loaded: Model keys copied from the file.
        missing: Model keys this file left untouched (neither loaded nor filled).
        unexpected: Converted file keys with no model counterpart.
        mismatched: ``(name, file shape, model shape)`` of keys not loaded because the shapes differ.
        dropped: File keys left out on purpose (buffers, heads, ViT blocks beyond the model's depth).
        filled: Model keys initialised from other tensors of the file (Q-Former text FFN ← query FFN).
        notes: Remarks: merges, interpolations, partial vocabulary copies.
    """

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: file, format and counts."""
        return (
            f"{self.source} [{self.format}]: loaded {len(self.loaded)}, filled {len(self.filled)}, "
            f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, "
            f"mismatched {len(self.mismatched)}, dropped {len(self.dropped)}"
        )


def _where(path: PathLike, config_key: str | None) -> str:
    return f"{config_key}={os.fspath(path)}" if config_key else os.fspath(path)


def read_state_dict(path: PathLike, *, config_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read the tensors of a checkpoint file or transformers model directory.

    Args:
        path: A ``.pth/.pt/.bin/.ckpt`` file (``torch.load`` with ``weights_only=True``; ``{"model": ...}`` is
            unwrapped and the other entries such as ``optimizer`` are ignored), a ``.safetensors`` file, or a
            directory holding ``model.safetensors``, ``pytorch_model.bin`` or their sharded ``.index.json``.
        config_key: The config key that named ``path``, quoted in error messages.

    Returns:
        File key → tensor (on CPU).

    Raises:
        CheckpointError: Missing path, unreadable file, a pickle that would run code, or no tensors.
    """
    return _read_with_metadata(path, config_key)[0]


def _read_with_metadata(path: PathLike, config_key: str | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``read_state_dict`` plus the safetensors metadata (empty for torch files)."""
    where = _where(path, config_key)
    path = Path(path)
    if not path.exists():
        hint = f" Fix `{config_key}` in the config or pass it with --options." if config_key else ""
        raise CheckpointError(f"checkpoint not found: {where} does not exist.{hint}")
    if path.is_dir():
        tensors, metadata = _read_hf_dir(path, where)
    elif path.name.endswith(".safetensors"):
        tensors, metadata = _read_safetensors(path, where)
    elif path.name.endswith(TORCH_SUFFIXES):
        tensors, metadata = _read_torch(path, where), {}
    else:
        raise CheckpointError(
            f"{where}: unsupported checkpoint file type; expected one of {', '.join(TORCH_SUFFIXES)}, "
            ".safetensors, or a transformers model directory"
        )
    if not tensors:
        raise CheckpointError(f"{where} holds no tensors")
    return tensors, metadata


def _read_torch(path: Path, where: str) -> dict[str, torch.Tensor]:
    """Load a torch pickle without running code from it, and unwrap ``{"model": ...}``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "nsupported" in line), lines[0] if lines else "")
        raise CheckpointError(
            f"{where} is not a plain tensor checkpoint and will not be unpickled: it holds Python objects "
            f"that could run code when loaded ({reason}). If you trust the file, convert it once to a plain "
            "state dict (torch.save of its tensors) or to .safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{where} could not be read as a PyTorch checkpoint ({exc}); the file may be truncated or of another type"
        ) from exc
    return _unwrap(obj, where)


def _unwrap(obj: object, where: str) -> dict[str, torch.Tensor]:
    """Take the state dict out of a training checkpoint and keep its tensor entries."""
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        others = sorted(str(k) for k in obj if k != "model")
        if others:
            logger.debug("%s: using the 'model' entry, ignoring %s", where, others)
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where} holds a {type(obj).__name__}, not a state dict (a mapping name → tensor)")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    skipped = [str(k) for k in obj if k not in tensors]
    if skipped and tensors:
        logger.warning("%s: ignoring %d non-tensor entries: %s", where, len(skipped), skipped[:5])
    elif skipped:
        raise CheckpointError(f"{where} holds no tensors (top-level keys: {skipped[:8]})")
    return tensors


def _read_safetensors(path: Path, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where} could not be read as safetensors ({exc})") from exc


def _read_hf_dir(directory: Path, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read the weights of a transformers model directory (single file or sharded index)."""
    for name in HF_DIR_FILES:
        weight_file = directory / name
        if not weight_file.is_file():
            continue
        if not name.endswith(".index.json"):
            if name.endswith(".safetensors"):
                return _read_safetensors(weight_file, where)
            return _read_torch(weight_file, where), {}
        return _read_sharded(weight_file, where)
    raise CheckpointError(
        f"{where} is a directory without model weights: expected one of {', '.join(HF_DIR_FILES)} inside it"
    )


def _read_sharded(index_file: Path, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{where}: {index_file.name} is not a valid shard index ({exc!r})") from exc
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for shard in dict.fromkeys(weight_map.values()):
        shard_path = index_file.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{where}: shard {shard} listed in {index_file.name} does not exist")
        if shard.endswith(".safetensors"):
            part, shard_metadata = _read_safetensors(shard_path, f"{where}/{shard}")
            metadata = metadata or shard_metadata
        else:
            part = _read_torch(shard_path, f"{where}/{shard}")
        tensors.update(part)
    absent = [key for key in weight_map if key not in tensors]
    if absent:
        raise CheckpointError(f"{where}: {len(absent)} tensors of {index_file.name} are in no shard: {absent[:5]}")
    return tensors, metadata


def _is_vocabulary(name: str) -> bool:
    """Embedding/output matrices whose row count grows when tokens are added (``[PAD]``, ``[DEC]``)."""
    return name.endswith(("embed_tokens.weight", "lm_head.weight")) or name == (
        "qformer.embeddings.word_embeddings.weight"
    )


def _fit(name: str, tensor: torch.Tensor, dest: torch.Tensor, report: LoadReport) -> torch.Tensor | None:
    """Return ``tensor`` made loadable into ``dest`` (same shape, or fewer vocabulary rows), else None."""
    if tensor.shape == dest.shape:
        return tensor
    file_shape, model_shape = tuple(tensor.shape), tuple(dest.shape)
    if name == VISION_POS_EMBED and tensor.dim() == 3 and tensor.shape[::2] == dest.shape[::2]:
        # LAVIS interpolate_pos_embed: another image size gives another patch grid.
        report.notes.append(f"interpolated {name} bicubically from {file_shape} to {model_shape}")
        return interpolate_pos_embed(tensor, dest.shape[1])
    if _is_vocabulary(name) and tensor.dim() == 2 and tensor.shape[1] == dest.shape[1]:
        if tensor.shape[0] < dest.shape[0]:
            report.notes.append(
                f"{name}: copied the file's {tensor.shape[0]} rows into the model's {dest.shape[0]}; "
                "the added rows keep the model's values"
            )
            return tensor
    report.mismatched.append((name, file_shape, model_shape))
    return None


def _match(
    converted: ConvertedCheckpoint, target: Mapping[str, torch.Tensor], report: LoadReport
) -> dict[str, torch.Tensor]:
    """Decide, for every converted tensor, whether it is loaded, dropped, unexpected or mismatched."""
    depth = len({m.group(1) for k in target if (m := _VISION_LAYER_RE.match(k))})
    copies: dict[str, torch.Tensor] = {}
    too_deep: list[str] = []
    for name, tensor in converted.tensors.items():
        if name in target:
            fitted = _fit(name, tensor, target[name], report)
            if fitted is not None:
                copies[name] = fitted
        elif depth and (m := _VISION_LAYER_RE.match(name)) and int(m.group(1)) >= depth:
            too_deep.extend(converted.origin.get(name, (name,)))
        else:
            report.unexpected.append(name)
    if too_deep:
        report.dropped.extend(too_deep)
        report.notes.append(f"{len(too_deep)} ViT keys of blocks >= {depth}: dropped (model has {depth} blocks)")
    return copies


def _fill_text_ffn(
    copies: dict[str, torch.Tensor], converted: ConvertedCheckpoint, target: Mapping[str, torch.Tensor]
) -> list[str]:
    """Copy the Q-Former query FFN into the text FFN where the file has only the former (as LAVIS does).

    BLIP-2 / MiniGPT-4 Q-Formers have no text FFN (``intermediate.*``, ``output.*``); an instruction-aware
    Q-Former initialised from them starts its text FFN as a copy of the query FFN.
    """
    filled: list[str] = []
    for name in target:
        match = _TEXT_FFN_RE.match(name)
        if match is None or name in converted.tensors:
            continue
        query_name = f"{match.group(1)}{match.group(2)}_query.{match.group(3)}"
        if query_name in copies and copies[query_name].shape == target[name].shape:
            copies[name] = copies[query_name]
            filled.append(name)
    return filled


def load_checkpoint(
    model: nn.Module, path: PathLike, *, config_key: str | None = None, allow_mismatch: bool = False
) -> LoadReport:
    """Load one checkpoint into ``model`` by name and report what happened.

    Tensors are copied under ``torch.no_grad()`` into the model's own tensors, cast to their dtype; shapes are
    never changed. ViT blocks beyond the model's depth are dropped; another position grid is interpolated; a
    vocabulary matrix with fewer rows than the model's fills the first rows.

    Args:
        model: A module with ``InstructBlipForConditionalGeneration`` parameter names (``VIGCModel``).
        path: See ``read_state_dict``.
        config_key: The config key that named ``path`` (for messages).
        allow_mismatch: Skip tensors whose shape differs instead of raising.

    Returns:
        The report; its summary is logged at INFO, the key lists at DEBUG.

    Raises:
        CheckpointError: Unreadable or unknown file, shape mismatches (unless allowed), or nothing loadable.
    """
    tensors, metadata = _read_with_metadata(path, config_key)
    where = _where(path, config_key)
    converted = to_vigc_names(tensors, source=where, metadata=metadata)
    report = LoadReport(source=where, format=converted.format, dropped=list(converted.dropped))
    report.notes.extend(converted.notes)
    target = model.state_dict()
    copies = _match(converted, target, report)
    if report.mismatched and not allow_mismatch:
        details = "; ".join(f"{n}: file {list(a)} vs model {list(b)}" for n, a, b in report.mismatched[:10])
        raise CheckpointError(
            f"{where}: {len(report.mismatched)} tensors do not fit the model ({details}). "
            "The file was made for a model of another size: check the model config against the checkpoint"
        )
    report.filled = _fill_text_ffn(copies, converted, target)
    if report.filled:
        report.notes.append(f"filled {len(report.filled)} Q-Former text-FFN tensors from the query FFN")
    if not copies:
        raise CheckpointError(
            f"{where}: none of its {len(converted.tensors)} tensors ({converted.format} format) matches a "
            f"parameter of the model (e.g. {list(converted.tensors)[:3]}); is it the intended file?"
        )
    with torch.no_grad():
        for name, tensor in copies.items():
            dest = target[name]
            (dest if tensor.shape == dest.shape else dest[: tensor.shape[0]]).copy_(tensor)
    report.loaded = [name for name in target if name in copies and name not in report.filled]
    report.missing = [name for name in target if name not in copies]
    _log_report(report)
    return report


def _log_report(report: LoadReport) -> None:
    logger.info("checkpoint %s", report.summary())
    if report.unexpected:
        logger.warning("%s: %d unexpected keys, e.g. %s", report.source, len(report.unexpected), report.unexpected[:5])
    for label in ("loaded", "filled", "missing", "unexpected", "mismatched", "dropped", "notes"):
        logger.debug("%s %s: %s", report.source, label, getattr(report, label))


def _part(name: str) -> str:
    return next((part for part in PARTS if name == part or name.startswith(part + ".")), name.split(".")[0])


def load_sequence(
    model: nn.Module,
    sources: Sequence[tuple[str, PathLike]],
    *,
    required: Callable[[str], bool],
    allow_mismatch: bool = False,
    typical_sources: Mapping[str, str] = TYPICAL_SOURCES,
) -> list[LoadReport]:
    """Apply several checkpoints in order (later ones override) and check every required key was initialised.

    Args:
        model: The model to load into.
        sources: ``(config_key, path)`` pairs, applied in this order.
        required: Predicate over the model's state-dict names: True for keys some file must provide (the
            builder decides, e.g. everything but the LLM, which it loads from its own directory).
        allow_mismatch: Passed to ``load_checkpoint``.
        typical_sources: Part name → where its weights usually come from, quoted in the error.

    Returns:
        One report per file, in order.

    Raises:
        CheckpointError: A file fails to load, or required keys were initialised by no file.
    """
    reports: list[LoadReport] = []
    initialised: set[str] = set()
    for config_key, path in sources:
        report = load_checkpoint(model, path, config_key=config_key, allow_mismatch=allow_mismatch)
        initialised.update(report.loaded, report.filled)
        reports.append(report)
    uninitialised = [name for name in model.state_dict() if required(name) and name not in initialised]
    if uninitialised:
        raise CheckpointError(_uninitialised_message(uninitialised, sources, typical_sources))
    return reports


def _uninitialised_message(
    names: list[str], sources: Sequence[tuple[str, PathLike]], typical_sources: Mapping[str, str]
) -> str:
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_part(name), []).append(name)
    tried = ", ".join(_where(path, key) for key, path in sources) or "no files"
    lines = [f"{len(names)} required weights were initialised by no checkpoint (tried: {tried}):"]
    shown = 0
    for part, keys in groups.items():
        examples = keys[: max(1, 10 - shown)]
        shown += len(examples)
        where = typical_sources.get(part, "a checkpoint holding these keys")
        lines.append(f"  {part}: {len(keys)} keys, e.g. {', '.join(examples)}; usually provided by {where}")
    return "\n".join(lines)


def save_checkpoint(
    model: nn.Module,
    path: PathLike,
    *,
    trainable_only: bool = True,
    metadata: dict[str, str] | None = None,
) -> list[str]:
    """Save model tensors to a safetensors file readable by ``load_checkpoint`` (format ``vigc``).

    Args:
        model: The model.
        path: Destination ``.safetensors`` file; parent folders are created; written atomically.
        trainable_only: Save only parameters with ``requires_grad``; else all parameters and persistent
            buffers.
        metadata: Extra string metadata (e.g. config name, step); ``format`` is always ``vigc``.

    Returns:
        The saved names, in state-dict order.

    Raises:
        CheckpointError: Metadata that is not ``str → str`` or that sets another format.
    """
    extra = dict(metadata or {})
    if any(not isinstance(k, str) or not isinstance(v, str) for k, v in extra.items()):
        raise CheckpointError("save_checkpoint metadata must map str to str (safetensors stores strings only)")
    if extra.get("format", "vigc") != "vigc":
        raise CheckpointError(f"save_checkpoint metadata cannot set format={extra['format']!r}; it is always 'vigc'")
    if trainable_only:
        items = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    else:
        items = list(model.state_dict().items())
    if not items:
        kind = "trainable parameters" if trainable_only else "tensors"
        logger.warning("save_checkpoint: the model has no %s; writing an empty file to %s", kind, path)
    # Own, contiguous CPU storage per tensor: safetensors refuses shared (tied) or strided storage.
    tensors = {name: t.detach().to("cpu").clone(memory_format=torch.contiguous_format) for name, t in items}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={**extra, "format": "vigc"})
    os.replace(tmp, path)
    logger.info("saved %d tensors to %s", len(tensors), path)
    return list(tensors)
