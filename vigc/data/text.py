"""Text processors of the original (``blip_caption``, ``blip_caption_instruct``) and the processor registry.

A dataset config names its processors the original way::

    vis_processor:
      train: {name: blip2_image_train, image_size: 224}
    text_processor:
      train: {name: blip_caption, max_words: 100}

``name`` is a key of `PROCESSORS`; the other keys are that builder's keyword arguments. The image processors are
`EvalImageProcessor` and `TrainImageProcessor` of `vigc.data.processors`, registered here under the original
names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from vigc.config import validate_builder_kwargs
from vigc.data.processors import EvalImageProcessor, TrainImageProcessor
from vigc.errors import ConfigError
from vigc.registry import PROCESSORS

__all__ = [
    "BlipCaptionInstructProcessor",
    "BlipCaptionProcessor",
    "blip_caption",
    "blip_caption_instruct",
    "build_processor",
]

# The characters LAVIS's BlipCaptionProcessor.pre_caption replaces with a space.
_PUNCTUATION = re.compile(r"([.!\"()*#:;~])")
_WHITESPACE_RUN = re.compile(r"\s{2,}")


def blip_caption(text: str, max_words: int = 50) -> str:
    """Normalise a caption as LAVIS's ``blip_caption`` processor does.

    Lowercase; replace each of ``. ! " ( ) * # : ; ~`` with a space; collapse runs of two or more whitespace
    characters into one space; drop trailing newlines and surrounding spaces; keep the first ``max_words``
    space-separated words.

    Args:
        text: The raw text.
        max_words: The most words kept.

    Returns:
        The normalised text.
    """
    caption = _PUNCTUATION.sub(" ", text.lower())
    caption = _WHITESPACE_RUN.sub(" ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    if len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


def blip_caption_instruct(text: str) -> str:
    """Normalise a text as the original's ``blip_caption_instruct`` processor does: only strip it.

    Exactly the original's two steps: trailing newlines, then leading and trailing spaces (other whitespace such
    as tabs is kept). Case, punctuation and length are untouched, so long LLaVA answers survive intact.

    Args:
        text: The raw text.

    Returns:
        The stripped text.
    """
    return text.rstrip("\n").strip(" ")


@dataclass(frozen=True)
class BlipCaptionProcessor:
    """The ``blip_caption`` text processor: ``prompt`` + `blip_caption` (text, max_words).

    Args:
        max_words: The most words kept.
        prompt: Text put before every processed text (the original's option; empty in every VIGC config).
    """

    max_words: int = 50
    prompt: str = ""

    def __call__(self, text: str) -> str:
        """Process one text."""
        return self.prompt + blip_caption(text, self.max_words)


@dataclass(frozen=True)
class BlipCaptionInstructProcessor:
    """The ``blip_caption_instruct`` text processor: ``prompt`` + `blip_caption_instruct` (text).

    Args:
        max_words: Accepted because the original configs set it (256); the original never truncated, nor does
            this processor.
        prompt: Text put before every processed text.
    """

    max_words: int = 256
    prompt: str = ""

    def __call__(self, text: str) -> str:
        """Process one text."""
        return self.prompt + blip_caption_instruct(text)


def build_processor(
    spec: Mapping[str, Any] | None,
    split: Literal["train", "eval"],
    *,
    default: Callable[..., Any],
    where: str,
) -> Callable[..., Any]:
    """Build the ``split`` processor of a dataset's ``vis_processor`` / ``text_processor`` entry.

    Args:
        spec: The entry, ``{train: {name: ..., <kwargs>}, eval: {...}}``; None uses ``default``.
        split: Which processor the dataset needs.
        default: The processor used when ``spec`` is None (the original used an identity processor for text).
        where: The config key of the entry, for messages (``datasets.okvqa_vig.vis_processor``).

    Returns:
        The processor.

    Raises:
        ConfigError: If the entry lacks ``split``, names an unknown processor or has keys it does not take.
    """
    if spec is None:
        return default
    chosen = spec.get(split) if isinstance(spec, Mapping) else None
    if not isinstance(chosen, Mapping) or "name" not in chosen:
        raise ConfigError(
            f"{where}: this dataset needs a {split!r} entry with a 'name' (one of {', '.join(PROCESSORS.names())}); "
            f"got {spec!r}."
        )
    kwargs = {str(k): v for k, v in chosen.items() if k != "name"}
    name = chosen["name"]
    if name not in PROCESSORS:
        raise ConfigError(f"{where}.{split}.name: {PROCESSORS.unknown_name_message(name)}")
    builder = PROCESSORS.get(name)
    validate_builder_kwargs(builder, kwargs, section=f"{where}.{split}", source="dataset config")
    return cast(Callable[..., Any], builder(**kwargs))


PROCESSORS.register(BlipCaptionProcessor, name="blip_caption")
PROCESSORS.register(BlipCaptionInstructProcessor, name="blip_caption_instruct")
PROCESSORS.register(EvalImageProcessor, name="blip_image_eval")
PROCESSORS.register(TrainImageProcessor, name="blip2_image_train")
