"""Tests of the builder registry."""

from __future__ import annotations

import pytest

from vigc.errors import ConfigError
from vigc.registry import DATASETS, MODELS, PROCESSORS, TASKS, Registry, closest_match


def test_register_uses_function_name_and_returns_function() -> None:
    reg = Registry("model")

    @reg.register
    def tiny_model(width: int = 16) -> int:
        return width

    assert tiny_model(width=8) == 8  # the decorator returns the function unchanged
    assert reg.get("tiny_model") is tiny_model
    assert "tiny_model" in reg
    assert "other" not in reg
    assert reg.names() == ["tiny_model"]
    assert len(reg) == 1


def test_register_with_explicit_name_and_call_form() -> None:
    reg = Registry("task")

    @reg.register(name="generate_qa")
    def _generate() -> str:
        return "ran"

    def train() -> str:
        return "trained"

    assert reg.register(train) is train
    assert reg.get("generate_qa")() == "ran"
    assert reg.names() == ["generate_qa", "train"]


def test_duplicate_name_raises_value_error() -> None:
    reg = Registry("dataset")

    @reg.register
    def okvqa() -> None: ...

    with pytest.raises(ValueError, match="'okvqa' is already registered"):
        reg.register(okvqa)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(lambda: None, name="okvqa")


def test_non_callable_is_refused() -> None:
    with pytest.raises(TypeError):
        Registry("model").register(3, name="three")  # type: ignore[call-overload]


def test_unknown_name_lists_registered_and_closest() -> None:
    reg = Registry("model")
    for name in ("minigpt4_vicuna7b", "minigpt4_vicuna13b", "instructblip_vicuna7b"):
        reg.register(lambda: None, name=name)
    with pytest.raises(ConfigError) as info:
        reg.get("minigpt4_vicuna_7b")
    message = str(info.value)
    assert "Unknown model 'minigpt4_vicuna_7b'" in message
    assert "Did you mean 'minigpt4_vicuna7b'?" in message
    assert "instructblip_vicuna7b, minigpt4_vicuna13b, minigpt4_vicuna7b" in message


def test_unknown_name_in_empty_registry_says_nothing_is_registered() -> None:
    with pytest.raises(ConfigError, match="No dataset builders are registered"):
        Registry("dataset").get("okvqa")


def test_closest_match() -> None:
    assert closest_match("imgae_size", ["image_size", "max_txt_len"]) == "image_size"
    assert closest_match("zzz", ["image_size"]) is None


def test_module_registries_are_distinct() -> None:
    kinds = [reg.kind for reg in (MODELS, DATASETS, TASKS, PROCESSORS)]
    assert kinds == ["model", "dataset", "task", "processor"]
