"""Every shipped dataset default file validates against its builder, merged with project-style entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

import pytest
from omegaconf import DictConfig, OmegaConf

from vigc.builtins import register_all
from vigc.config import validate_builder_kwargs
from vigc.data.datasets import DATASET_CONFIG_DIR, build_dataset, dataset_default_path, dataset_defaults
from vigc.data.text import build_processor
from vigc.errors import ConfigError
from vigc.registry import DATASETS

register_all()  # generation inputs have default files here too
GENERATION_SOURCES = {"instruct_blip_coco2017_vig_test", "instruct_blip_object365_vig_test"}
GENERATION_SOURCES |= {"instruct_blip_given_q_coco2017_vig_test"}
YAML_FILES = sorted(DATASET_CONFIG_DIR.rglob("*.yaml"))

# SPEC §7: the dataset defaults the original README tells users to edit.
ORIGINAL_PATHS = [
    "a-okvqa/vig/train.yaml",
    "a-okvqa/vig_eval.yaml",
    "okvqa/vig/train.yaml",
    "okvqa/vig_eval.yaml",
    "llava_instruct150k/vig/trainval_llava_conv.yaml",
    "llava_instruct150k/vig/trainval_llava_desc.yaml",
    "llava_instruct150k/vig/trainval_llava_comp.yaml",
    "llava_instruct150k/vig_eval.yaml",
    "llava_instruct150k/vic/trainval_llava_conv.yaml",
    "llava_instruct150k/vic/trainval_llava_desc.yaml",
    "llava_instruct150k/vic/trainval_llava_comp.yaml",
    "a-okvqa/vic/train.yaml",
    "okvqa/vic/train.yaml",
]

# The dataset entries of the original project configs (instruct_blip_vicuna7b/vigc/okvqa/normal_vigc.yaml, ...).
TRAIN_ENTRY = """
sample_ratio: 300
vis_processor:
  train:
    name: "blip2_image_train"
    image_size: 224
text_processor:
  train:
    name: "blip_caption"
    max_words: 100
"""
EVAL_ENTRY = """
vis_processor:
  eval:
    name: "blip_image_eval"
    image_size: 224
text_processor:
  eval:
    name: "blip_caption_instruct"
    max_words: 256
"""
PROJECT_NAMES = [
    f"instruct_blip_{family}_{task}"
    for family in ("llava_comp", "llava_desc", "llava_conv", "aokvqa", "okvqa")
    for task in ("vig", "vic")
] + ["instruct_blip_okvqa_vig_eval", "instruct_blip_aokvqa_vig_eval", "instruct_blip_llava_vig_eval"]


@pytest.mark.parametrize("path", ORIGINAL_PATHS)
def test_original_paths_exist(path: str) -> None:
    assert (DATASET_CONFIG_DIR / path).is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DATASET_CONFIG_DIR)))
def test_default_file_validates_against_its_builder(path: Path) -> None:
    cfg = OmegaConf.load(path)
    assert set(cfg) == {"datasets"}
    for name, entry in cfg.datasets.items():
        builder = DATASETS.get(str(name))
        kwargs = cast(dict[str, Any], OmegaConf.to_container(entry, resolve=True))
        validate_builder_kwargs(builder, kwargs, section=f"datasets.{name}", source=str(path))
        if name in GENERATION_SOURCES:  # empty placeholders: a folder alone is a valid generation input
            assert not kwargs["build_info"]["images"]
        else:
            assert str(kwargs["build_info"]["annotation"]).startswith("path/to/")  # placeholders, never real paths
        assert dataset_default_path(str(name)) == path


@pytest.mark.parametrize("name", PROJECT_NAMES)
def test_project_entries_merged_over_defaults_validate(name: str) -> None:
    entry = OmegaConf.create(EVAL_ENTRY if name.endswith("_eval") else TRAIN_ENTRY)
    if name.endswith("_eval"):
        assert "sample_ratio" not in entry
    merged = cast(dict[str, Any], OmegaConf.to_container(OmegaConf.merge(dataset_defaults(name), entry)))
    validate_builder_kwargs(DATASETS.get(name), merged, section=f"datasets.{name}", source="project")
    split: Literal["train", "eval"] = "eval" if name.endswith("_eval") else "train"
    for key in ("vis_processor", "text_processor"):
        build_processor(merged[key], split, default=str, where=key)


def test_defaults_lookup() -> None:
    assert dataset_defaults("instruct_blip_okvqa_vig") == {
        "data_type": "images",
        "build_info": {"annotation": "path/to/okvqa_train.json", "images": "path/to/image/folder"},
    }
    assert dataset_defaults("not_a_dataset") == {} and dataset_default_path("not_a_dataset") is None


def test_placeholder_paths_fail_with_the_default_file_named() -> None:
    with pytest.raises(
        ConfigError, match=r"datasets\.instruct_blip_aokvqa_vig_eval\.build_info\.annotation .*vig_eval\.yaml"
    ):
        build_dataset("instruct_blip_aokvqa_vig_eval", cast(DictConfig, OmegaConf.create(EVAL_ENTRY)))
