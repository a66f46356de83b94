"""Hugging Face repository names as weight paths, read from the local cache only (nothing is downloaded).

The original README points to the VIGC checkpoints by repository (``wufan/vigc7b_minigpt4_llava``,
``wufan/vigc13b_minigpt4_llava``, ``wufan/vigc7b_instrucblip_okvqa``, ``wufan/vigc7b_instrucblip_a-okvqa``). Every
weight key (``model.finetuned``, ``model.pretrained``, ``model.vit_model``, ``model.llm_model``,
``model.qformer_tokenizer``) accepts, besides a local path:

* ``owner/name``: the repository's snapshot in the cache. For a file key it is the snapshot folder when that is a
  transformers model folder (``config.json`` or its weight files), else the one checkpoint file it holds
  (``.pth``/``.pt``/``.bin``/``.ckpt``/``.safetensors``; with several, name one). For a folder key (the LLM, the
  BERT tokenizer) it is the snapshot folder.
* ``owner/name/path/in/repo.pth``: that file of the snapshot.

A value that exists as a local path is always that path. The cache is huggingface_hub's (``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read when the model is built), filled beforehand with
``hf download owner/name`` (or ``huggingface-cli download``) or by any earlier download; the revision is the one
``refs/main`` names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from vigc.errors import CheckpointError
from vigc.models.checkpoints import HF_DIR_FILES, TORCH_SUFFIXES

__all__ = ["hub_cache_dir", "parse_hub_name", "resolve_weight_path", "resolve_weight_paths"]

_HUB_NAME = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:/(?P<file>[^\s]+))?$")
CHECKPOINT_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors")


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub uses with the current environment (read now, not at import)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.environ.get("HF_HOME") or os.path.join(cache_home, "huggingface")).expanduser() / "hub"


def parse_hub_name(value: str) -> tuple[str, str | None] | None:
    """``owner/name`` or ``owner/name/<path to a checkpoint file>`` → (repository id, file or None); else None."""
    match = _HUB_NAME.match(value.strip())
    if not match:
        return None
    # A longer path is a file in a repository only when it names a checkpoint file: `path/to/your/weight` (the
    # shipped configs' placeholders) is a missing local path, reported with the other keys to set.
    if match["file"] is not None and not match["file"].endswith(CHECKPOINT_SUFFIXES):
        return None
    return match["repo"], match["file"]


def resolve_weight_path(value: str | None, config_key: str, *, folder: bool = False) -> str | None:
    """A weight path as given, or, for a Hugging Face name that is not a local path, its file in the local cache.

    Args:
        value: The config value (None and "" pass through).
        config_key: The config key, named in errors.
        folder: The key wants a folder (LLM, tokenizer): a repository name gives its snapshot folder.

    Raises:
        CheckpointError: One line naming the cache folder when the repository or file is not cached, or when a
            repository holds no checkpoint file or several.
    """
    if not value or Path(value).expanduser().exists() or (name := parse_hub_name(value)) is None:
        return value  # a local path, or nothing a repository name could mean: the path checks report it
    repo_id, filename = name
    cache = hub_cache_dir()
    try:
        if filename is not None:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
            if isinstance(found, str):
                return found
        else:
            snapshot = Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
            return str(snapshot) if folder else _weights_in(snapshot, value, config_key)
    except (LocalEntryNotFoundError, HFValidationError):
        pass
    what = f"the file {filename!r} of the Hugging Face repository {repo_id}" if filename else f"{repo_id}"
    raise CheckpointError(
        f"`{config_key}` = {value!r} is not a local path, and {what} is not in the local Hugging Face cache "
        f"{cache} (nothing is downloaded here): fetch it once with `hf download {repo_id}`, or point HF_HUB_CACHE "
        "or HF_HOME at the cache that holds it."
    )


def resolve_weight_paths(paths: dict[str, str | None], folders: tuple[str, ...] = ()) -> dict[str, str | None]:
    """`resolve_weight_path` for each config key → value; every problem in one error.

    Args:
        paths: Config key → value.
        folders: The keys that want folders.

    Raises:
        CheckpointError: Listing every key that names a repository or file not found in the cache.
    """
    resolved: dict[str, str | None] = {}
    problems: list[str] = []
    for key, value in paths.items():
        try:
            resolved[key] = resolve_weight_path(value, key, folder=key in folders)
        except CheckpointError as exc:
            problems.append(str(exc))
    if problems:
        raise CheckpointError(" ".join(problems))
    return resolved


def _weights_in(snapshot: Path, value: str, config_key: str) -> str:
    """The snapshot folder when it is a transformers model folder, else its one checkpoint file."""
    if any((snapshot / name).is_file() for name in ("config.json", *HF_DIR_FILES)):
        return str(snapshot)
    files = sorted(p for p in snapshot.rglob("*") if p.name.endswith(CHECKPOINT_SUFFIXES) and p.is_file())
    if len(files) == 1:
        return str(files[0])
    if not files:
        raise CheckpointError(
            f"`{config_key}` = {value!r}: the cached repository {snapshot} holds no checkpoint file "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) and is not a transformers model folder."
        )
    names = [p.relative_to(snapshot).as_posix() for p in files]
    raise CheckpointError(
        f"`{config_key}` = {value!r}: the cached repository holds several checkpoint files ({', '.join(names)}); "
        f"name one, e.g. {value.rstrip('/')}/{names[0]}."
    )
