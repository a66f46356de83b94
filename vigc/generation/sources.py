"""What a generation run reads: the original's generation dataset builders (COCO 2017, Objects365, the gq
`question.json`) plus a plain image folder, each giving items, the image processor and the question processor.

A dataset entry keeps the original nesting: `build_info: {annotation, images, image_ids}`, `filter`, and
`vis_processor` / `text_processor` with an `eval` entry.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigc.data.processors import DEFAULT_MAX_PIXELS, EvalImageProcessor
from vigc.data.text import build_processor
from vigc.errors import ConfigError
from vigc.generation.inputs import GenerationItem, InputKind, read_inputs
from vigc.registry import DATASETS

logger = logging.getLogger(__name__)


@dataclass
class GenerationSource:
    """Items to generate for and how to prepare them.

    Attributes:
        items: de-duplicated work items, in input order.
        image_processor: PIL image → (3, S, S) tensor.
        question_processor: applied to a given question before it enters a prompt (ga pass).
        max_pixels: largest width x height decoded (read from the header first); larger images are error lines.
    """

    items: list[GenerationItem]
    image_processor: Callable[..., Any]
    question_processor: Callable[[str], str]
    max_pixels: int = DEFAULT_MAX_PIXELS


def _excluded_image_ids(image_ids: str | None, names: list[str] | None, where: str) -> set[Any]:
    """Image ids to skip: those listed under `names` in the `image_ids` JSON ({name: [ids]}), as the original."""
    if not image_ids or not names:
        return set()
    path = Path(image_ids).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}.build_info.image_ids = {image_ids!r} is not a file.")
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where}.build_info.image_ids = {image_ids!r} is not readable JSON ({exc}).") from None
    if not isinstance(groups, dict):
        raise ConfigError(f"{where}.build_info.image_ids = {image_ids!r} must hold a JSON object {{name: [ids]}}.")
    unknown = [name for name in names if name not in groups]
    if unknown:
        raise ConfigError(f"{where}.filter names {unknown}, which {path} does not list (it has {sorted(groups)}).")
    return {image_id for name in names for image_id in groups[name]}


def _build(
    name: str,
    build_info: Mapping[str, Any],
    vis_processor: Mapping[str, Any] | None,
    text_processor: Mapping[str, Any] | None,
    *,
    kind: InputKind = "images",
    annotation: str | None = None,
    filter_names: list[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> GenerationSource:
    where = f"datasets.{name}"
    check_max_pixels(max_pixels, f"{where}.max_pixels")
    annotation = annotation or build_info.get("annotation") or None
    items = read_inputs(
        annotation, build_info.get("images") or None, kind=kind, config_key_prefix=f"{where}.build_info"
    )
    excluded = _excluded_image_ids(build_info.get("image_ids"), filter_names, where)
    if excluded:
        before = len(items)
        items = [item for item in items if item.record.get("image_id") not in excluded]
        logger.info("%s: filter %s removed %d of %d images", where, filter_names, before - len(items), before)
    images = build_processor(vis_processor, "eval", default=EvalImageProcessor(224), where=f"{where}.vis_processor")
    questions = build_processor(text_processor, "eval", default=str.strip, where=f"{where}.text_processor")
    return GenerationSource(items, images, questions, max_pixels)


def check_max_pixels(max_pixels: int, key: str) -> None:
    """A `max_pixels` key must be a positive pixel count."""
    if max_pixels < 1:
        raise ConfigError(f"{key} must be a positive number of pixels (width x height), got {max_pixels}.")


@DATASETS.register
def instruct_blip_coco2017_vig_test(
    *,
    build_info: dict[str, Any],
    vis_processor: dict[str, Any] | None = None,
    text_processor: dict[str, Any] | None = None,
    filter: list[str] | None = None,  # noqa: A002  (the original's key)
    data_type: str = "images",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> GenerationSource:
    """COCO 2017 (or any) images from a `{"image", "image_id"}` annotation, a list file or a folder.

    Args:
        build_info: `annotation` (optional), `images` (root folder), `image_ids` (optional, for `filter`).
        vis_processor: `{eval: {name, image_size}}`.
        text_processor: `{eval: {name, ...}}` (unused by question generation; kept for the original configs).
        filter: names in the `image_ids` file whose images are skipped (e.g. those used in training).
        data_type: the original's key; only "images" exists.
        max_pixels: largest width x height decoded; larger images (decompression bombs) become error lines.
    """
    return _build(
        "instruct_blip_coco2017_vig_test",
        build_info,
        vis_processor,
        text_processor,
        filter_names=filter,
        max_pixels=max_pixels,
    )


@DATASETS.register
def instruct_blip_object365_vig_test(
    *,
    build_info: dict[str, Any],
    vis_processor: dict[str, Any] | None = None,
    text_processor: dict[str, Any] | None = None,
    filter: list[str] | None = None,  # noqa: A002  (the original's key)
    data_type: str = "images",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> GenerationSource:
    """Objects365 images from a `{"image", "image_id"}` annotation, a list file or a folder (as COCO 2017)."""
    return _build(
        "instruct_blip_object365_vig_test",
        build_info,
        vis_processor,
        text_processor,
        filter_names=filter,
        max_pixels=max_pixels,
    )


@DATASETS.register
def instruct_blip_given_q_coco2017_vig_test(
    *,
    build_info: dict[str, Any],
    annotation: str = "",
    vis_processor: dict[str, Any] | None = None,
    text_processor: dict[str, Any] | None = None,
    data_type: str = "images",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> GenerationSource:
    """The questions of a gq run (`question.json`: `{image, question, ori_answer}`) for the ga pass.

    Args:
        build_info: `images` (root folder).
        annotation: the `question.json` written by the question pass (the original's top-level key).
        vis_processor: `{eval: {name, image_size}}`.
        text_processor: applied to each question before the prompt (the original used `blip_caption`).
        data_type: the original's key; only "images" exists.
        max_pixels: largest width x height decoded; larger images (decompression bombs) become error lines.
    """
    return _build(
        "instruct_blip_given_q_coco2017_vig_test",
        build_info,
        vis_processor,
        text_processor,
        kind="questions",
        annotation=annotation or None,
        max_pixels=max_pixels,
    )


PACKAGE_SCHEME = "pkg://"


def resolve_package_path(path: str, key: str = "path") -> str:
    """A `pkg://<package>/<path>` location as the folder inside the installed package; other paths unchanged.

    Configs shipped with the package name their packaged inputs this way (`pkg://vigc/assets/sample_images`), so
    they work from any working directory and from an installed (not editable) package.
    """
    if not path.startswith(PACKAGE_SCHEME):
        return path
    package, _, inner = path[len(PACKAGE_SCHEME) :].partition("/")
    try:
        root = importlib.resources.files(package)
    except (ModuleNotFoundError, TypeError) as exc:
        raise ConfigError(f"{key} = {path!r}: there is no installed package {package!r} ({exc}).") from exc
    return str(root.joinpath(inner)) if inner else str(root)


@DATASETS.register
def image_folder(
    *, images: str, annotation: str = "", image_size: int = 224, max_pixels: int = DEFAULT_MAX_PIXELS
) -> GenerationSource:
    """Every image under a folder (or listed in a list file / annotation): the simplest input.

    Args:
        images: a folder (searched recursively) or a list file; `pkg://vigc/...` names one inside the package.
        annotation: optional annotation or list file with paths relative to `images`.
        image_size: side of the processed image.
        max_pixels: largest width x height decoded; larger images (decompression bombs) become error lines.
    """
    check_max_pixels(max_pixels, "datasets.image_folder.max_pixels")
    if image_size < 1:
        raise ConfigError(f"datasets.image_folder.image_size must be at least 1, got {image_size}.")
    images = resolve_package_path(images, "datasets.image_folder.images")
    annotation = resolve_package_path(annotation, "datasets.image_folder.annotation")
    items = read_inputs(annotation or None, images, config_key_prefix="datasets.image_folder")
    return GenerationSource(items, EvalImageProcessor(image_size), str.strip, max_pixels)
