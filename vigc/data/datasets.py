"""Training and VIG-evaluation datasets, their collate functions and the named dataset builders.

A builder is registered in `DATASETS` under the original project's name (``instruct_blip_okvqa_vig``, ...); its
keyword arguments are the keys of that dataset's config entry, in the original's nesting::

    datasets:
      instruct_blip_okvqa_vig:
        data_type: images                  # from the default file under vigc/configs/datasets/
        build_info: {annotation: /data/okvqa_train.json, images: /data/coco}
        vis_processor: {train: {name: blip2_image_train, image_size: 224}}   # from the project config
        text_processor: {train: {name: blip_caption, max_words: 100}}
        sample_ratio: 300

`build_dataset` merges the default file of a name (`dataset_defaults`) under a project's entry, checks the keys
and builds. Item randomness (answer, instruction, crop) comes from ``random.Random`` seeded by (seed, dataset
name, epoch, index), so a resumed run sees the same samples.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import Dataset

from vigc.config import DATASET_CONFIG_DIR, dataset_default_path, dataset_defaults, validate_builder_kwargs
from vigc.data import annotations as readers
from vigc.data.annotations import AnnotationError, QAAnnotation
from vigc.data.images import BadImageError, load_rgb
from vigc.data.processors import DEFAULT_MAX_PIXELS, EvalImageProcessor, TrainImageProcessor
from vigc.data.prompts import (
    GENERATION_INSTRUCTIONS,
    GQ_INSTRUCTION,
    LLAVA_VQA_TEMPLATES,
    VIG_INSTRUCTIONS,
    VIG_QUESTION_PROMPT,
    VQA_TEMPLATES,
    VQG_TEMPLATES,
)
from vigc.data.samples import SAMPLE_BUILDERS, TextProcessor, answer_weights, stable_seed, unchanged, vic_step_sample
from vigc.data.text import build_processor
from vigc.errors import ConfigError, VIGCError
from vigc.registry import DATASETS

__all__ = [
    "DATASET_CONFIG_DIR",
    "EvalReference",
    "ImageLoadError",
    "QATrainDataset",
    "TrainBatch",
    "TrainItem",
    "VIGEvalBatch",
    "VIGEvalDataset",
    "VIGEvalItem",
    "build_dataset",
    "collate_train",
    "collate_vig_eval",
    "dataset_default_path",
    "dataset_defaults",
    "load_image",
]

logger = logging.getLogger(__name__)

ImageProcessor = Callable[..., torch.Tensor]


class ImageLoadError(VIGCError):
    """An image file of a dataset is missing or cannot be decoded."""


def load_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a training image as generation does (`vigc.data.images.load_rgb`: EXIF orientation applied, CMYK,
    16-bit and transparency handled), so that a photo looks the same to the model in both workflows.

    Args:
        path: The image file.
        max_pixels: Largest width x height decoded, checked from the header first (a decompression bomb of a few
            KB would otherwise cost gigabytes).

    Returns:
        The decoded RGB image.

    Raises:
        ImageLoadError: Naming the file, if it is missing, not a readable image or larger than `max_pixels`.
    """
    try:
        return load_rgb(Path(path), max_pixels)
    except BadImageError as exc:
        raise ImageLoadError(
            f"Cannot read image: {exc}. Training data must be clean: fix the file, remove its record from the "
            "annotation file, or raise the dataset's max_pixels if it is a wanted large image."
        ) from exc


def _process_image(processor: ImageProcessor, image: Image.Image, rng: random.Random) -> torch.Tensor:
    """Apply an image processor, giving the random ones the item's generator."""
    if isinstance(processor, TrainImageProcessor):
        return processor(image, rng)
    return processor(image)


@dataclass
class TrainItem:
    """One training sample.

    Attributes:
        image: The processed image, (3, S, S) float32.
        text_input: The prompt (Q-Former text and LLM instruction).
        text_output: The target text.
        image_path: The image file it was read from.
    """

    image: torch.Tensor
    text_input: str
    text_output: str
    image_path: str


@dataclass
class TrainBatch:
    """A batch of training samples.

    Attributes:
        images: (B, 3, S, S) float32.
        text_input: B prompts.
        text_output: B targets.
    """

    images: torch.Tensor
    text_input: list[str]
    text_output: list[str]


def collate_train(items: Sequence[TrainItem]) -> TrainBatch:
    """Stack training items into a batch (the ``collate_fn`` of a training DataLoader)."""
    return TrainBatch(
        images=torch.stack([item.image for item in items]),
        text_input=[item.text_input for item in items],
        text_output=[item.text_output for item in items],
    )


class QATrainDataset(Dataset[TrainItem]):
    """VIG, VIC, VQG or VIC-step training samples from QA annotations (SPEC §4; `vic_step_sample`).

    Args:
        annotations: The records (at least one).
        images_root: Folder the records' image paths are relative to.
        task: ``"vig"`` (instruction → ``" Question: q Answer: a"``), ``"vic"`` (VQA template → answer) or
            ``"vqg"`` (VQG template → question) or ``"vic_step"`` (instruction, question and the answer's first
            sentences → the rest, as a VIC step sees them).
        prompts: The instruction list (vig, vic_step) or templates (vic, vqg) drawn from.
        image_processor: A training processor (draws its crop from the item's generator) or an eval one.
        text_processor: Applied to questions and answers.
        seed: Base seed of the per-item generators.
        sample_ratio: Weight of this dataset when batches are mixed by ratio.
        name: The dataset's name; part of the per-item seed so two datasets over one file draw independently.
        gen_style: vic_step: the VIC prompt style the samples follow ("vig" or "vic", as `run.gen_style`).
    """

    def __init__(
        self,
        annotations: Sequence[QAAnnotation],
        images_root: str | os.PathLike[str],
        *,
        task: Literal["vig", "vic", "vqg", "vic_step"],
        prompts: Sequence[str],
        image_processor: ImageProcessor,
        text_processor: TextProcessor = unchanged,
        seed: int = 0,
        sample_ratio: float = 1.0,
        name: str = "",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        gen_style: Literal["vig", "vic"] = "vig",
    ) -> None:
        if gen_style not in ("vig", "vic"):
            raise ConfigError(f"Dataset {name!r}: gen_style must be 'vig' or 'vic', got {gen_style!r}.")
        if not annotations:
            raise VIGCError(f"Dataset {name!r} has no records; check its annotation file and filters.")
        if not prompts:
            raise ValueError(f"Dataset {name!r}: no prompts to draw from.")
        self.annotations = list(annotations)
        self.images_root = os.fspath(images_root)
        self.task = task
        self.prompts = tuple(prompts)
        self.image_processor = image_processor
        self.text_processor = text_processor
        self.seed = seed
        self.sample_ratio = sample_ratio
        self.name = name
        self.max_pixels = max_pixels
        self.epoch = 0
        builder = SAMPLE_BUILDERS[task]
        self._build = functools.partial(vic_step_sample, gen_style=gen_style) if task == "vic_step" else builder

    def __len__(self) -> int:
        return len(self.annotations)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that `__getitem__` uses for the per-item seed."""
        self.epoch = epoch

    def image_path(self, index: int) -> str:
        """The image file of record ``index``."""
        return os.path.join(self.images_root, self.annotations[index].image)

    def item(self, index: int, epoch: int) -> TrainItem:
        """Build sample ``index`` as seen in ``epoch``; the same arguments always give the same sample.

        Args:
            index: Record index.
            epoch: Epoch (of this dataset's index stream when mixing).

        Returns:
            The sample.

        Raises:
            ImageLoadError: If the record's image is missing or unreadable.
        """
        rng = random.Random(stable_seed(self.seed, self.name, epoch, index))
        pair = self._build(self.annotations[index], self.prompts, rng, self.text_processor)
        path = self.image_path(index)
        image = _process_image(self.image_processor, load_image(path, self.max_pixels), rng)
        return TrainItem(image=image, text_input=pair.text_input, text_output=pair.text_output, image_path=path)

    def __getitem__(self, index: int) -> TrainItem:
        return self.item(index, self.epoch)


@dataclass(frozen=True)
class EvalReference:
    """What a VIG-evaluation prediction is scored against, plus the record's identity.

    Attributes:
        image_path: The image file.
        question: The question, unprocessed.
        instruction: The full prompt (instruction + ``" Question: {q}"``).
        answers: The reference answers as in the file (all of them, for VQA accuracy).
        gt_answers: The distinct answers, unprocessed (the original's ``gt_answer``).
        gt_answer_weights: Their frequency weights (the original's ``gt_answer_weight``).
        image_id: From the record (never parsed from the file name), if any.
        question_id: From the record, if any.
    """

    image_path: str
    question: str
    instruction: str
    answers: list[str]
    gt_answers: list[str]
    gt_answer_weights: list[float]
    image_id: int | str | None
    question_id: int | str | None


@dataclass
class VIGEvalItem:
    """One VIG-evaluation input: image, prompt and reference."""

    image: torch.Tensor
    prompt: str
    reference: EvalReference


@dataclass
class VIGEvalBatch:
    """A batch of VIG-evaluation inputs: images (B, 3, S, S), B prompts, B references."""

    images: torch.Tensor
    prompts: list[str]
    references: list[EvalReference]


def collate_vig_eval(items: Sequence[VIGEvalItem]) -> VIGEvalBatch:
    """Stack VIG-evaluation items into a batch."""
    return VIGEvalBatch(
        images=torch.stack([item.image for item in items]),
        prompts=[item.prompt for item in items],
        references=[item.reference for item in items],
    )


class VIGEvalDataset(Dataset[VIGEvalItem]):
    """VIG evaluation: prompt = instruction + ``" Question: {q}"``; the model should write the answer.

    As in the original, the question in the prompt goes through the text processor; the references do not.

    Args:
        annotations: The records.
        images_root: Folder the records' image paths are relative to.
        instructions: One instruction per record.
        image_processor: Usually `EvalImageProcessor`.
        text_processor: Applied to the question in the prompt.
        max_pixels: Largest width x height decoded (see `load_image`).
    """

    def __init__(
        self,
        annotations: Sequence[QAAnnotation],
        images_root: str | os.PathLike[str],
        *,
        instructions: Sequence[str],
        image_processor: ImageProcessor,
        text_processor: TextProcessor = unchanged,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if len(instructions) != len(annotations):
            raise ValueError("VIGEvalDataset needs one instruction per annotation.")
        self.annotations = list(annotations)
        self.images_root = os.fspath(images_root)
        self.instructions = list(instructions)
        self.image_processor = image_processor
        self.text_processor = text_processor
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> VIGEvalItem:
        annotation = self.annotations[index]
        path = os.path.join(self.images_root, annotation.image)
        prompt = self.instructions[index] + VIG_QUESTION_PROMPT.format(q=self.text_processor(annotation.question))
        gt_answers, gt_weights = answer_weights(annotation)
        reference = EvalReference(
            image_path=path,
            question=annotation.question,
            instruction=prompt,
            answers=list(annotation.answers),
            gt_answers=gt_answers,
            gt_answer_weights=gt_weights,
            image_id=annotation.image_id,
            question_id=annotation.question_id,
        )
        image = _process_image(self.image_processor, load_image(path, self.max_pixels), random.Random(index))
        return VIGEvalItem(image=image, prompt=prompt, reference=reference)


# ---------------------------------------------------------------------------------------------------------------
# Dataset defaults (vigc/configs/datasets/**) and building from a config entry.


def build_dataset(
    name: str, entry: Mapping[str, Any] | None = None, *, seed: int | None = None, source: str = "<config>"
) -> Any:
    """Build dataset ``name`` from its defaults with a project's config entry merged over them.

    Args:
        name: A `DATASETS` name.
        entry: The project's ``datasets.<name>`` section (a DictConfig or dict), or None.
        seed: The run's seed, passed to builders that take one.
        source: Where the entry came from, for messages.

    Returns:
        What the builder returns: a `QATrainDataset` or a `VIGEvalDataset` for the builders of this module.

    Raises:
        ConfigError: If the name is unknown or a key does not fit the builder.
    """
    builder = DATASETS.get(name)
    merged = OmegaConf.merge(dataset_defaults(name), entry if entry is not None else {})
    kwargs = cast(dict[str, Any], OmegaConf.to_container(merged, resolve=True))
    if seed is not None and "seed" in inspect.signature(builder).parameters:
        kwargs.setdefault("seed", seed)
    validate_builder_kwargs(builder, kwargs, section=f"datasets.{name}", source=source)
    return builder(**kwargs)


def _where(name: str, key: str) -> str:
    default = dataset_default_path(name)
    hint = f" (default file {default})" if default is not None else ""
    return f"datasets.{name}.{key}{hint}"


def _paths(name: str, build_info: Mapping[str, Any], key: str = "annotation") -> tuple[list[str], str]:
    """Check ``build_info`` and return (annotation files, image folder)."""
    allowed = {"annotation", "images", "image_ids"}
    unknown = sorted(set(build_info) - allowed)
    if unknown:
        raise ConfigError(f"{_where(name, 'build_info')}: unknown keys {unknown}; accepted: {sorted(allowed)}.")
    annotation = build_info.get(key)
    files = [annotation] if isinstance(annotation, str) else annotation
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{_where(name, 'build_info.' + key)}: expected a file path or a list of them.")
    for file in files:
        if not os.path.isfile(file):
            raise ConfigError(
                f"{_where(name, 'build_info.' + key)}: annotation file {file!r} does not exist; set it to the path "
                "of your JSON file in the default file or under this key in the project config."
            )
    images = build_info.get("images")
    if not isinstance(images, str) or not os.path.isdir(images):
        raise ConfigError(
            f"{_where(name, 'build_info.images')}: image folder {images!r} does not exist; set it to the folder "
            "the annotation's image paths are relative to."
        )
    return files, images


def _processors(
    name: str, vis: Mapping[str, Any] | None, text: Mapping[str, Any] | None, split: Literal["train", "eval"]
) -> tuple[ImageProcessor, TextProcessor]:
    default_image = TrainImageProcessor() if split == "train" else EvalImageProcessor()
    image = build_processor(vis, split, default=default_image, where=f"datasets.{name}.vis_processor")
    return image, build_processor(text, split, default=unchanged, where=f"datasets.{name}.text_processor")


@dataclass(frozen=True)
class _Family:
    """One annotation format with its prompts: how the datasets of one source are read and prompted."""

    reader: Callable[[str], list[QAAnnotation]]
    instructions: tuple[str, ...]
    vqa_templates: tuple[str, ...]

    def prompts(self, task: str) -> tuple[str, ...]:
        return {
            "vig": self.instructions,
            "vic": self.vqa_templates,
            "vqg": VQG_TEMPLATES,
            "vic_step": self.instructions,
        }[task]


_FAMILIES: dict[str, _Family] = {
    "llava_comp": _Family(readers.read_llava, VIG_INSTRUCTIONS["llava_comp"], LLAVA_VQA_TEMPLATES),
    "llava_desc": _Family(readers.read_llava, VIG_INSTRUCTIONS["llava_desc"], LLAVA_VQA_TEMPLATES),
    "llava_conv": _Family(readers.read_llava, VIG_INSTRUCTIONS["llava_conv"], LLAVA_VQA_TEMPLATES),
    "a_okvqa": _Family(readers.read_aokvqa, VIG_INSTRUCTIONS["a_okvqa"], VQA_TEMPLATES),
    "okvqa": _Family(readers.read_okvqa, VIG_INSTRUCTIONS["okvqa"], VQA_TEMPLATES),
    "vqav2": _Family(readers.read_vqav2, VIG_INSTRUCTIONS["vqav2"], VQA_TEMPLATES),
    "coco_pseudo": _Family(readers.read_coco_pseudo, VIG_INSTRUCTIONS["coco_pseudo"], VQA_TEMPLATES),
}

# The original's builder-name prefix → family. Each gets a _vig, _vic and _vqg training builder, and (ours, not
# in the original) a _vic_step builder, except COCO pseudo whose answers are one short phrase.
_PREFIXES = {
    "instruct_blip_llava_comp": "llava_comp",
    "instruct_blip_llava_desc": "llava_desc",
    "instruct_blip_llava_conv": "llava_conv",
    "instruct_blip_aokvqa": "a_okvqa",
    "instruct_blip_okvqa": "okvqa",
    "instruct_blip_vqav2": "vqav2",
    "instruct_blip_coco_pseudo": "coco_pseudo",
}
Task = Literal["vig", "vic", "vqg", "vic_step"]


@dataclass(frozen=True)
class _ImageKeys:
    """The image keys of every training dataset entry (see `_handle_missing_images` and `load_image`)."""

    check_images: bool
    skip_missing_images: bool
    max_pixels: int


_SHOWN_MISSING = 5


def _keep_existing_images(
    name: str, annotations: list[QAAnnotation], images_root: str, *, skip: bool
) -> list[QAAnnotation]:
    """Check every record's image file before training starts (one ``stat`` each, no decoding): refuse missing
    ones, or leave their records out when `skip`.

    Raises:
        ImageLoadError: With the count and the first few missing files (unless `skip`), or when none is left.
    """
    missing = [a for a in annotations if not os.path.isfile(os.path.join(images_root, a.image))]
    if not missing:
        return annotations
    shown = ", ".join(repr(os.path.join(images_root, a.image)) for a in missing[:_SHOWN_MISSING])
    more = f" and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
    summary = f"{len(missing)} of {len(annotations)} image files do not exist: {shown}{more}"
    if not skip:
        raise ImageLoadError(
            f"datasets.{name}: {summary}. Fix build_info.images, or set datasets.{name}.skip_missing_images=true "
            "to train without those records."
        )
    if len(missing) == len(annotations):
        raise ImageLoadError(f"datasets.{name}: {summary}; no record would be left.")
    logger.warning("datasets.%s: skipping %s", name, summary)
    absent = {id(a) for a in missing}
    return [a for a in annotations if id(a) not in absent]


@dataclass(frozen=True)
class _TrainSpec:
    """What every training builder shares: the dataset's name, family and task."""

    name: str
    family: str
    task: Task

    def build(
        self,
        annotations: list[QAAnnotation],
        images: str,
        files: Sequence[str],
        *,
        processors: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None],
        seed: int,
        sample_ratio: float,
        images_keys: _ImageKeys,
        gen_style: Literal["vig", "vic"] = "vig",
    ) -> QATrainDataset:
        """Build the dataset from read annotations and the config keys every training builder has."""
        image_processor, text_processor = _processors(self.name, *processors, "train")
        if images_keys.check_images:
            annotations = _keep_existing_images(self.name, annotations, images, skip=images_keys.skip_missing_images)
        dataset = QATrainDataset(
            annotations,
            images,
            task=self.task,
            prompts=_FAMILIES[self.family].prompts(self.task),
            image_processor=image_processor,
            text_processor=text_processor,
            seed=seed,
            sample_ratio=sample_ratio,
            name=self.name,
            max_pixels=images_keys.max_pixels,
            gen_style=gen_style,
        )
        logger.info("Dataset %s: %d %s samples from %s", self.name, len(dataset), self.task, ", ".join(files))
        return dataset


def _build_from_files(
    spec: _TrainSpec,
    build_info: Mapping[str, Any],
    processors: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None],
    seed: int,
    sample_ratio: float,
    images_keys: _ImageKeys,
    gen_style: Literal["vig", "vic"] = "vig",
) -> QATrainDataset:
    """Read the annotation files of `build_info` with the family's reader and build the dataset from them."""
    files, images = _paths(spec.name, build_info)
    annotations = [a for file in files for a in _FAMILIES[spec.family].reader(file)]
    return spec.build(
        annotations,
        images,
        files,
        processors=processors,
        seed=seed,
        sample_ratio=sample_ratio,
        images_keys=images_keys,
        gen_style=gen_style,
    )


def _train_builder(spec: _TrainSpec) -> Callable[..., QATrainDataset]:
    """Make the builder of one training dataset: its signature is the dataset's config keys."""

    def builder(
        build_info: Mapping[str, Any],
        vis_processor: Mapping[str, Any] | None = None,
        text_processor: Mapping[str, Any] | None = None,
        sample_ratio: float = 1.0,
        data_type: Literal["images"] = "images",
        seed: int = 0,
        check_images: bool = True,
        skip_missing_images: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> QATrainDataset:
        keys = _ImageKeys(check_images, skip_missing_images, max_pixels)
        return _build_from_files(spec, build_info, (vis_processor, text_processor), seed, sample_ratio, keys)

    return _named(builder, spec.name, f"{spec.family} {spec.task.upper()} training samples (SPEC §4).")


def _vic_step_builder(spec: _TrainSpec) -> Callable[..., QATrainDataset]:
    """Make a VIC-step training builder: the keys of the others plus ``gen_style`` (`vic_step_sample`)."""

    def builder(
        build_info: Mapping[str, Any],
        vis_processor: Mapping[str, Any] | None = None,
        text_processor: Mapping[str, Any] | None = None,
        sample_ratio: float = 1.0,
        data_type: Literal["images"] = "images",
        seed: int = 0,
        check_images: bool = True,
        skip_missing_images: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        gen_style: Literal["vig", "vic"] = "vig",
    ) -> QATrainDataset:
        keys = _ImageKeys(check_images, skip_missing_images, max_pixels)
        processors = (vis_processor, text_processor)
        return _build_from_files(spec, build_info, processors, seed, sample_ratio, keys, gen_style=gen_style)

    summary = f"{spec.family} VIC-step training samples: the prompt of a VIC step → the rest of the answer."
    return _named(builder, spec.name, summary)


def _coco_pseudo_builder(spec: _TrainSpec) -> Callable[..., QATrainDataset]:
    """Make a COCO-pseudo training builder: top-level ``annotation``, ``build_info.image_ids`` + ``filter``."""

    def builder(
        build_info: Mapping[str, Any],
        annotation: str | list[str] | None = None,
        filter: Sequence[str] = (),
        topk: int | None = None,
        score_thr: float = 0.0,
        vis_processor: Mapping[str, Any] | None = None,
        text_processor: Mapping[str, Any] | None = None,
        sample_ratio: float = 1.0,
        data_type: Literal["images"] = "images",
        seed: int = 0,
        check_images: bool = True,
        skip_missing_images: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> QATrainDataset:
        # The original reads the annotation from the entry's top level; build_info.annotation works too.
        info = {**build_info, "annotation": annotation} if annotation is not None else dict(build_info)
        files, images = _paths(spec.name, info)
        image_ids = info.get("image_ids")
        if filter and not isinstance(image_ids, str):
            raise ConfigError(f"{_where(spec.name, 'filter')}: excluding datasets needs build_info.image_ids.")
        excluded = readers.read_image_id_groups(image_ids, filter) if isinstance(image_ids, str) and filter else ()
        annotations = [
            a
            for file in files
            for a in readers.read_coco_pseudo(file, score_thr=score_thr, topk=topk, exclude_image_ids=excluded)
        ]
        return spec.build(
            annotations,
            images,
            files,
            processors=(vis_processor, text_processor),
            seed=seed,
            sample_ratio=sample_ratio,
            images_keys=_ImageKeys(check_images, skip_missing_images, max_pixels),
        )

    return _named(builder, spec.name, f"COCO pseudo (generated QA) {spec.task.upper()} training samples.")


def _llava_instruction(annotation: QAAnnotation) -> str:
    """The generation instruction of a LLaVA record's subset (``dataset`` field), as the original's eval set."""
    subset = annotation.subset or ""
    for prefix, task in (("complex", "comp"), ("conversation", "conv"), ("detail", "desc")):
        if subset.startswith(prefix):
            return GENERATION_INSTRUCTIONS[task]
    raise AnnotationError(
        f"LLaVA evaluation record for image {annotation.image!r} has dataset {annotation.subset!r}; expected the "
        "LLaVA file it came from: complex_reasoning_77k.json, conversation_58k.json or detail_23k.json."
    )


def _eval_builder(name: str, family_name: str) -> Callable[..., VIGEvalDataset]:
    """Make the builder of a VIG evaluation set (GQ instruction; LLaVA: the instruction of each subset)."""
    reader = _FAMILIES[family_name].reader
    default_every = 20 if family_name == "vqav2" else 1  # the original evaluated VQAv2 on every 20th record

    def builder(
        build_info: Mapping[str, Any],
        vis_processor: Mapping[str, Any] | None = None,
        text_processor: Mapping[str, Any] | None = None,
        data_type: Literal["images"] = "images",
        every_nth: int = default_every,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        skip_missing_images: bool = False,
    ) -> VIGEvalDataset:
        files, images = _paths(name, build_info)
        annotations = [a for file in files for a in reader(file)][:: max(every_nth, 1)]
        if not annotations:
            raise VIGCError(f"Dataset {name!r} has no records; check {', '.join(files)}.")
        annotations = _keep_existing_images(name, annotations, images, skip=skip_missing_images)
        if family_name.startswith("llava"):
            instructions = [_llava_instruction(a) for a in annotations]
        else:
            instructions = [GQ_INSTRUCTION] * len(annotations)
        image_processor, text_proc = _processors(name, vis_processor, text_processor, "eval")
        return VIGEvalDataset(
            annotations,
            images,
            instructions=instructions,
            image_processor=image_processor,
            text_processor=text_proc,
            max_pixels=max_pixels,
        )

    return _named(builder, name, f"{family_name} VIG evaluation inputs with their reference answers.")


def _named(builder: Callable[..., Any], name: str, summary: str) -> Callable[..., Any]:
    """Give a generated builder its registry name (registry key == builder name) and a docstring."""
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{summary}\n\nKeyword arguments are the keys of ``datasets.{name}``; see the module docstring."
    return builder


def _register_all() -> None:
    tasks: tuple[Task, ...] = ("vig", "vic", "vqg")
    for prefix, family in _PREFIXES.items():
        for task in tasks:
            spec = _TrainSpec(f"{prefix}_{task}", family, task)
            make = _coco_pseudo_builder if family == "coco_pseudo" else _train_builder
            DATASETS.register(make(spec), name=spec.name)
        if family != "coco_pseudo":
            spec = _TrainSpec(f"{prefix}_vic_step", family, "vic_step")
            DATASETS.register(_vic_step_builder(spec), name=spec.name)
    for prefix, family in (("okvqa", "okvqa"), ("aokvqa", "a_okvqa"), ("vqav2", "vqav2"), ("llava", "llava_conv")):
        name = f"instruct_blip_{prefix}_vig_eval"
        DATASETS.register(_eval_builder(name, family), name=name)


_register_all()
