"""What a generation run generates for: one `GenerationItem` per image (or per question in the ga pass).

Sources, picked by `read_inputs` from what the config names (item key in brackets):

* ``annotations`` is a ``.json`` / ``.jsonl`` file: the generation-input annotation, a JSON array or JSON Lines of
  ``{"image": "train2017/000000082363.jpg", "image_id": 82363, ...}`` (COCO 2017, Objects365) [``image``].
* ``kind="questions"``: the gq pass's ``question.json``, ``{"image", "question", "ori_answer"}``, for the ga pass
  [``image + "\u241f" + question``: one image may carry several questions].
* only ``images`` is set and is a folder: every image under it (recursive, sorted; jpg/jpeg/png/webp/bmp/gif/
  tif/tiff in any case; hidden files skipped) [the path relative to the folder].
* ``annotations`` (or, alone, ``images``) is any other file: a list file, one image path per line, blank lines
  and ``#`` comments skipped [the line].

The key identifies an image for resume and de-duplication. It is the image path as written, never ``image_id``:
the original de-duplicated by ``image_id`` and so dropped distinct images that shared one. Relative paths resolve
against the ``images`` root (list files without one: against the list file's folder); images are not opened or
even stat-ed here, so a missing image costs one error record at generation time, not the run.

Sharding: `shard(items, i, n)` keeps ``items[i::n]``, for torchrun ranks and for ``--shard i/N`` array jobs alike.
Shard indices are 0-based: ``--shard 0/8`` … ``--shard 7/8``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from vigc.data.annotations import AnnotationError, load_records
from vigc.errors import ConfigError, VIGCError

__all__ = [
    "IMAGE_EXTENSIONS",
    "KEY_SEPARATOR",
    "GenerationInputError",
    "GenerationItem",
    "dedupe",
    "parse_shard",
    "read_annotation",
    "read_folder",
    "read_inputs",
    "read_list_file",
    "read_questions",
    "shard",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
InputKind = Literal["images", "questions"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
KEY_SEPARATOR = "\u241f"  # SYMBOL FOR UNIT SEPARATOR: cannot occur in a path and is unlikely in a question
_JSON_SUFFIXES = frozenset({".json", ".jsonl"})
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_TRAILING_DIGITS = re.compile(r"(\d+)$")


class GenerationInputError(VIGCError):
    """A generation input (annotation, question file, list file or image folder) is missing or malformed."""


@dataclass(frozen=True)
class GenerationItem:
    """One unit of generation work.

    Attributes:
        image: The image path as given (usually relative to the images root); written to the output as is.
        image_path: Where the image file is expected (not checked).
        record: The input record, passed through to the output record.
        key: Stable unique id for resume and de-duplication (see the module docstring).
        question: The question to answer (ga pass), else None.
    """

    image: str
    image_path: Path
    record: dict[str, Any] = field(compare=False)
    key: str
    question: str | None = None


def read_inputs(
    annotation: str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | None,
    *,
    kind: InputKind = "images",
    config_key_prefix: str = "datasets.<name>.build_info",
    annotation_key: str | None = None,
) -> list[GenerationItem]:
    """Read the items of a generation run from whichever source the config names, de-duplicated by key.

    Args:
        annotation: An annotation JSON / JSON Lines file, a gq ``question.json`` (``kind="questions"``), or a list
            file; None when generating for a folder.
        images: The images root (a folder); with no annotation, the folder (or list file) to generate for.
        kind: "images" (gq, LLaVA-style VIG) or "questions" (the ga pass over ``question.json``).
        config_key_prefix: Prefix of the config keys named in errors (``<prefix>.annotation``/``.images``).
        annotation_key: The config key of `annotation` when it is not ``<prefix>.annotation``.

    Returns:
        Items in file order (folders: sorted by path), first occurrence of each key kept.

    Raises:
        ConfigError: When a path is missing or the wrong kind (names the config key).
        GenerationInputError: When a record is malformed (names file, index and field).
    """
    annotation_key = annotation_key or f"{config_key_prefix}.annotation"
    images_key = f"{config_key_prefix}.images"
    root = _existing(images, images_key) if images is not None else None
    source = _existing(annotation, annotation_key) if annotation is not None else None
    if kind == "questions":
        if source is None or not source.is_file():
            raise ConfigError(f"The answer pass reads the questions file of the question pass: set {annotation_key}.")
        items = read_questions(source, _folder(root, images_key), images_key=images_key)
    elif source is not None:
        if source.is_dir():
            raise ConfigError(f"{annotation_key} = {str(source)!r} is a folder; put an image folder in {images_key}.")
        if source.suffix.lower() in _JSON_SUFFIXES:
            items = read_annotation(source, _folder(root, images_key), images_key=images_key)
        else:
            items = read_list_file(source, _folder(root, images_key))
    elif root is not None:
        items = read_folder(root) if root.is_dir() else read_list_file(root, None)
    else:
        raise ConfigError(f"Nothing to generate for: set {images_key} (a folder) and/or {annotation_key}.")
    return dedupe(items)


def read_annotation(
    path: Path, images_root: Path | None, *, images_key: str = "build_info.images"
) -> list[GenerationItem]:
    """Read a generation-input annotation: JSON array or JSON Lines of objects with an ``image`` path.

    Other fields (``image_id``, a ``question`` that generation ignores, ...) are kept in `GenerationItem.record`.

    Args:
        path: The annotation file.
        images_root: Root of relative image paths (required when there are any).
        images_key: The config key of `images_root`, named in errors.

    Raises:
        GenerationInputError: Naming the file, the record index and the field that is wrong.
    """
    items = []
    for index, record in enumerate(_load_records(path)):
        image = _string_field(record, "image", path, index)
        record = with_image_id(record, image)
        items.append(GenerationItem(image, _resolve(image, images_root, images_key, path, index), record, image))
    return items


def read_questions(
    path: Path, images_root: Path | None, *, images_key: str = "build_info.images"
) -> list[GenerationItem]:
    """Read the gq pass's ``question.json`` (`{"image", "question", "ori_answer"}`) for the ga pass.

    One image may carry several questions, so the key is ``image + KEY_SEPARATOR + question``.

    Args:
        path: The questions file.
        images_root: Root of relative image paths (required when there are any).
        images_key: The config key of `images_root`, named in errors.

    Raises:
        GenerationInputError: Naming the file, the record index and the field that is wrong.
    """
    items = []
    for index, record in enumerate(_load_records(path)):
        image = _string_field(record, "image", path, index)
        question = _string_field(record, "question", path, index)
        key = f"{image}{KEY_SEPARATOR}{question}"
        image_path = _resolve(image, images_root, images_key, path, index)
        items.append(GenerationItem(image, image_path, record, key, question))
    return items


def read_folder(root: Path) -> list[GenerationItem]:
    """Every image file under `root` (recursive, symlinks followed once), sorted by relative path.

    Hidden files and folders (names starting with ".", e.g. macOS ``._x.jpg``) are skipped.
    """
    relative = sorted(path.relative_to(root).as_posix() for path in _walk_images(root))
    return [GenerationItem(rel, root / rel, with_image_id({"image": rel}, rel), rel) for rel in relative]


def read_list_file(path: Path, images_root: Path | None) -> list[GenerationItem]:
    """Read one image path per line; blank lines and lines starting with ``#`` are skipped.

    Relative paths resolve against `images_root`, or the list file's folder when it is None.
    """
    base = images_root if images_root is not None else path.parent
    try:
        # surrogateescape: a listed file name that is not UTF-8 keeps its bytes (as a folder walk gives them)
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GenerationInputError(f"Cannot read list file {str(path)!r}: {exc}") from exc
    items = []
    for line in lines:
        image = line.strip()
        if image and not image.startswith("#"):
            items.append(GenerationItem(image, base / image, with_image_id({"image": image}, image), image))
    return items


def image_id_from_name(image: str) -> int | None:
    """The original's image id: the trailing digits of the file name, as an int.

    ``train2017/000000082363.jpg`` -> 82363, ``objects365_v2_01805760.jpg`` -> 1805760; None when the name does
    not end in digits.
    """
    match = _TRAILING_DIGITS.search(PurePosixPath(image.replace("\\", "/")).stem)
    return int(match.group(1)) if match else None


def with_image_id(record: dict[str, Any], image: str) -> dict[str, Any]:
    """`record` with ``image_id`` derived from the file name when it has none (and the name gives one)."""
    if record.get("image_id") is not None:
        return record
    image_id = image_id_from_name(image)
    return record if image_id is None else {**record, "image_id": image_id}


def dedupe(items: Sequence[GenerationItem]) -> list[GenerationItem]:
    """Keep the first item of each key; logs how many were dropped."""
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            kept.append(item)
    if len(kept) < len(items):
        logger.warning("dropped %d duplicate input(s) (same key); %d remain", len(items) - len(kept), len(kept))
    return kept


def shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """The `index`-th of `count` strided shards: ``items[index::count]`` (0-based `index`).

    Every item lands in exactly one shard and shard sizes differ by at most one.

    Raises:
        ConfigError: When not ``0 <= index < count``.
    """
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"Shard {index}/{count} is out of range: the index is 0-based and must be below the count.")
    return list(items[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard i/N`` (0-based: ``0/8`` … ``7/8``) into ``(i, N)``.

    Raises:
        ConfigError: On anything else, saying what is accepted.
    """
    match = _SHARD.match(text)
    if match is None:
        raise ConfigError(f"--shard must look like i/N (e.g. 0/8), got {text!r}.")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"--shard {text!r}: the shard count must be at least 1.")
    if index >= count:
        raise ConfigError(f"--shard {text!r}: the index is 0-based, so use 0/{count} … {count - 1}/{count}.")
    return index, count


def _existing(value: str | os.PathLike[str], config_key: str) -> Path:
    path = Path(value).expanduser()
    if not str(value).strip():
        raise ConfigError(f"{config_key} is empty; set it to a path.")
    if not path.exists():
        raise ConfigError(f"{config_key} = {str(value)!r} does not exist; fix the path in the config or --options.")
    return path


def _folder(root: Path | None, config_key: str) -> Path | None:
    if root is not None and not root.is_dir():
        raise ConfigError(f"{config_key} = {str(root)!r} is not a folder; it must be the root of the image paths.")
    return root


def _resolve(image: str, images_root: Path | None, images_key: str, source: Path, index: int) -> Path:
    path = Path(image)
    if path.is_absolute():
        return path
    if images_root is None:
        raise GenerationInputError(
            f"{source}: record {index} has the relative image path {image!r} but no images root is set; "
            f"set {images_key} to the folder the paths are relative to."
        )
    return images_root / path


def _string_field(record: Any, name: str, source: Path, index: int) -> str:
    if not isinstance(record, dict):
        raise GenerationInputError(f"{source}: record {index} must be a JSON object, got {type(record).__name__}.")
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if name not in record else f"{type(value).__name__} {value!r}"
        raise GenerationInputError(f"{source}: record {index}, field {name!r} must be a non-empty string ({found}).")
    return value


def _load_records(path: Path) -> list[Any]:
    """The records of a JSON array or JSON Lines file, read as training reads annotations (one reader)."""
    try:
        return load_records(path)
    except AnnotationError as exc:
        raise GenerationInputError(str(exc)) from None


def _walk_images(root: Path) -> Iterator[Path]:
    visited: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in visited:  # a symlink loop: this folder was walked already
            subfolders.clear()
            continue
        visited.add((stat.st_dev, stat.st_ino))
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield Path(folder) / name
