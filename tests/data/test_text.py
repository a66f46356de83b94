"""The text processors (blip_caption, blip_caption_instruct) and processor configs."""

from __future__ import annotations

import pytest

from vigc.data.processors import EvalImageProcessor, TrainImageProcessor
from vigc.data.text import (
    BlipCaptionInstructProcessor,
    BlipCaptionProcessor,
    blip_caption,
    blip_caption_instruct,
    build_processor,
)
from vigc.errors import ConfigError
from vigc.registry import PROCESSORS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A Dog.", "a dog"),
        ('He said: "hi!" (twice)', "he said hi twice"),
        ("a*b#c~d;e", "a b c d e"),
        ("What is it?", "what is it?"),  # '?' and ',' are kept
        ("one,  two\t\tthree", "one, two three"),
        ("trailing\n", "trailing"),
        ("  spaced out  ", "spaced out"),
        ("3.5 kg", "3 5 kg"),
        ("...", ""),
    ],
)
def test_blip_caption(text: str, expected: str) -> None:
    assert blip_caption(text) == expected


def test_blip_caption_truncates_words() -> None:
    assert blip_caption("a b c d e", max_words=3) == "a b c"
    assert blip_caption(" ".join(["w"] * 60)) == " ".join(["w"] * 50)


def test_blip_caption_instruct_only_strips() -> None:
    assert blip_caption_instruct("  Keep Case. And (punctuation)!\n") == "Keep Case. And (punctuation)!"
    assert blip_caption_instruct("\ttab kept ") == "\ttab kept"
    long_text = " ".join(["w"] * 400)
    assert BlipCaptionInstructProcessor(max_words=256)(long_text) == long_text


def test_processor_objects() -> None:
    assert BlipCaptionProcessor(max_words=2)("A B C") == "a b"
    assert BlipCaptionProcessor(prompt="x: ")("Y.") == "x: y"


def test_registered_under_original_names() -> None:
    assert PROCESSORS.get("blip_caption") is BlipCaptionProcessor
    assert PROCESSORS.get("blip_caption_instruct") is BlipCaptionInstructProcessor
    assert PROCESSORS.get("blip_image_eval") is EvalImageProcessor
    assert PROCESSORS.get("blip2_image_train") is TrainImageProcessor


def test_build_processor_from_config_entry() -> None:
    spec = {"train": {"name": "blip2_image_train", "image_size": 32, "horizontal_flip": True}}
    built = build_processor(spec, "train", default=EvalImageProcessor(), where="datasets.x.vis_processor")
    assert built == TrainImageProcessor(image_size=32, horizontal_flip=True)
    assert build_processor(None, "eval", default=str, where="w") is str


def test_build_processor_errors() -> None:
    with pytest.raises(ConfigError, match="needs a 'train' entry"):
        build_processor({"eval": {"name": "blip_image_eval"}}, "train", default=str, where="datasets.x.vis_processor")
    with pytest.raises(ConfigError, match="Did you mean 'blip_caption'"):
        build_processor({"train": {"name": "blip_captio"}}, "train", default=str, where="w")
    with pytest.raises(ConfigError, match="unknown key 'max_word'"):
        build_processor({"train": {"name": "blip_caption", "max_word": 3}}, "train", default=str, where="w")
