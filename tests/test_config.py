"""Tests of config loading, ``--options`` overrides, legacy model defaults and builder-argument checks."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest
from omegaconf import OmegaConf

import vigc.config
from vigc.config import (
    LEGACY_MODEL_TYPES,
    MODEL_CONFIG_DIR,
    build_model,
    load_config,
    validate_builder_kwargs,
    validate_config,
)
from vigc.errors import ConfigError
from vigc.registry import Registry


def tiny_vigc(
    llm_model: str,
    image_size: int = 224,
    lr_scale: float = 1.0,
    freeze_vit: bool = True,
    finetuned: str | None = None,
    prompts: list[str] | None = None,
    precision: Literal["fp32", "bf16"] = "fp32",
) -> dict[str, object]:
    """A throwaway builder with one knob of each checked type."""
    return {"llm_model": llm_model, "image_size": image_size, "lr_scale": lr_scale, "finetuned": finetuned}


def okvqa_train(annotation: str, build_info: dict[str, str] | None = None) -> None: ...


def generate_qa() -> None: ...


@pytest.fixture
def registries() -> dict[str, Registry]:
    models, datasets, tasks = Registry("model"), Registry("dataset"), Registry("task")
    models.register(tiny_vigc)
    datasets.register(okvqa_train)
    tasks.register(generate_qa)
    return {"models": models, "datasets": datasets, "tasks": tasks}


def write(tmp_path: Path, text: str, name: str = "project.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


PROJECT = """
    model:
      arch: tiny_vigc
      llm_model: /weights/vicuna
    datasets:
      okvqa_train:
        annotation: /data/okvqa.json
        build_info:
          images: /data/coco
    run:
      task: generate_qa
      seed: 42
"""


# ---- loading and --options ----


def test_load_config_reads_sections(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PROJECT))
    assert cfg.model.arch == "tiny_vigc"
    assert cfg.run.seed == 42
    assert list(cfg) == ["model", "datasets", "run"]


def test_options_are_parsed_as_yaml_scalars(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, PROJECT),
        [
            "run.seed=3",
            "run.lr=1e-5",
            "run.distributed=true",
            "run.splits=[train,val]",
            "model.prompt=",
            "model.llm_model=/other/vicuna",
            "datasets.okvqa_train.build_info.images=/elsewhere",
        ],
    )
    run = OmegaConf.to_container(cfg.run)
    assert run == {
        "task": "generate_qa",
        "seed": 3,
        "lr": 1e-5,
        "distributed": True,
        "splits": ["train", "val"],
    }
    assert cfg.model.prompt == ""
    assert cfg.model.llm_model == "/other/vicuna"
    assert cfg.datasets.okvqa_train.build_info.images == "/elsewhere"


@pytest.mark.parametrize("option", ["foo", "=3", "run=3", "run..seed=1", ".seed=1"])
def test_malformed_option_is_an_error(tmp_path: Path, option: str) -> None:
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(write(tmp_path, PROJECT), [option])


def test_option_naming_missing_section_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, PROJECT)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["runn.seed=1"])
    message = str(info.value)
    assert "'runn'" in message and str(path) in message and "did you mean 'run'?" in message
    with pytest.raises(ConfigError, match="'datasets.okvqa'"):
        load_config(path, ["datasets.okvqa.annotation=x"])
    with pytest.raises(ConfigError, match="'run.seed'"):  # a value, not a section
        load_config(path, ["run.seed.value=1"])


def test_unknown_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown top-level section 'modle' \\(did you mean 'model'\\?\\)"):
        load_config(write(tmp_path, "modle:\n  arch: x\n"))


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not a valid YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


# ---- legacy `arch: blip2_vicuna_instruct` + `model_type` ----

LEGACY_PROJECT = """
    model:
      arch: blip2_vicuna_instruct
      model_type: {model_type}
      load_finetuned: true
      finetuned: /ckpt/vigc.pth
      max_txt_len: 64
    run:
      task: generate_qa
"""

EXPECTED_ARCH = {
    "vicuna7b": "instructblip_vicuna7b",
    "vicuna13b": "instructblip_vicuna13b",
    "minigpt4_vicuna7b": "minigpt4_vicuna7b",
    "minigpt4_vicuna13b": "minigpt4_vicuna13b",
}


@pytest.mark.parametrize("model_type", sorted(EXPECTED_ARCH))
def test_legacy_model_type_merges_default_file(tmp_path: Path, model_type: str) -> None:
    cfg = load_config(write(tmp_path, LEGACY_PROJECT.format(model_type=model_type)))
    assert OmegaConf.to_container(cfg.model) == {
        "arch": EXPECTED_ARCH[model_type],
        "load_pretrained": True,
        "load_finetuned": True,
        "pretrained": "",
        "finetuned": "/ckpt/vigc.pth",  # the project's keys win
        "vit_model": "",
        "llm_model": "",
        "qformer_tokenizer": "bert-base-uncased",
        "image_size": 224,
        "num_query_token": 32,
        "max_txt_len": 64,
        "max_output_txt_len": 256,
        "freeze_vit": True,
        "prompt": "",
    }


def test_legacy_model_type_can_come_from_options(tmp_path: Path) -> None:
    path = write(tmp_path, LEGACY_PROJECT.format(model_type="vicuna7b"))
    cfg = load_config(path, ["model.model_type=minigpt4_vicuna13b", "model.image_size=448"])
    assert cfg.model.arch == "minigpt4_vicuna13b"
    assert cfg.model.image_size == 448
    assert "model_type" not in cfg.model


def test_unknown_legacy_model_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, LEGACY_PROJECT.format(model_type="vicuna_7b")))
    message = str(info.value)
    assert "vicuna7b, vicuna13b, minigpt4_vicuna7b, minigpt4_vicuna13b" in message
    assert "did you mean 'vicuna7b'?" in message


def test_preprocess_section_of_default_file_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    defaults = tmp_path / "defaults"
    defaults.mkdir()
    write(
        defaults,
        """
        model:
          arch: tiny_vigc
          image_size: 224
        preprocess:
          vis_processor:
            eval:
              name: blip_image_eval
        """,
        name=LEGACY_MODEL_TYPES["vicuna7b"],
    )
    monkeypatch.setattr(vigc.config, "MODEL_CONFIG_DIR", defaults)
    with caplog.at_level(logging.INFO, logger="vigc.config"):
        cfg = load_config(write(tmp_path, LEGACY_PROJECT.format(model_type="vicuna7b")))
    assert "preprocess" not in cfg and "preprocess" not in cfg.model
    assert cfg.model.arch == "tiny_vigc"
    assert "ignoring its 'preprocess' section" in caplog.text


def test_shipped_model_defaults_are_in_the_table() -> None:
    shipped = sorted(p.name for p in MODEL_CONFIG_DIR.glob("*.yaml"))
    assert sorted(LEGACY_MODEL_TYPES.values()) == shipped


# ---- builder-argument checks ----


def test_unknown_key_names_file_section_key_accepted_and_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        validate_builder_kwargs(
            tiny_vigc, {"llm_model": "x", "imgae_size": 224}, section="model", source="proj/conv.yaml"
        )
    message = str(info.value)
    assert message.startswith("proj/conv.yaml: section 'model' does not fit builder 'tiny_vigc'")
    assert "unknown key 'imgae_size' (did you mean 'image_size'?)" in message
    assert "Accepted keys: llm_model, image_size, lr_scale, freeze_vit, finetuned, prompts, precision." in message
    assert "\n" not in message


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match="missing required key 'llm_model'"):
        validate_builder_kwargs(tiny_vigc, {}, section="model", source="p.yaml")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("image_size", "224px", "key 'image_size' expects int, got '224px' (str)"),
        ("image_size", True, "key 'image_size' expects int, got True (bool)"),
        ("image_size", 2.5, "key 'image_size' expects int, got 2.5 (float)"),
        ("lr_scale", "fast", "key 'lr_scale' expects float, got 'fast' (str)"),
        ("freeze_vit", "yes", "key 'freeze_vit' expects bool, got 'yes' (str)"),
        ("llm_model", 7, "key 'llm_model' expects str, got 7 (int)"),
        ("finetuned", 3, "key 'finetuned' expects str | None, got 3 (int)"),
        ("prompts", "a", "key 'prompts' expects list[str] | None, got 'a' (str)"),
        ("prompts", ["a", 1], "key 'prompts' expects list[str] | None, got ['a', 1] (list)"),
        ("precision", "fp8", "key 'precision' expects Literal['fp32', 'bf16'], got 'fp8' (str)"),
    ],
)
def test_wrong_type(key: str, value: object, expected: str) -> None:
    kwargs = {"llm_model": "x", key: value}
    with pytest.raises(ConfigError) as info:
        validate_builder_kwargs(tiny_vigc, kwargs, section="model", source="p.yaml")
    assert expected in str(info.value)


def test_accepted_types() -> None:
    kwargs = {
        "llm_model": "x",
        "image_size": 224,
        "lr_scale": 2,  # an int is fine for a float
        "freeze_vit": False,
        "finetuned": None,
        "prompts": ["a", "b"],
        "precision": "bf16",
    }
    validate_builder_kwargs(tiny_vigc, kwargs, section="model", source="p.yaml")


def test_unannotated_and_open_builders() -> None:
    def open_builder(a, b: Sequence[int] = (), **extra):  # type: ignore[no-untyped-def]
        return a

    validate_builder_kwargs(open_builder, {"a": "anything", "b": [1], "z": 1}, section="s", source="p")
    with pytest.raises(ConfigError, match="key 'b' expects Sequence"):
        validate_builder_kwargs(open_builder, {"a": 1, "b": "12"}, section="s", source="p")


# ---- whole configs ----


def test_validate_config_accepts_a_good_config(tmp_path: Path, registries: dict[str, Registry]) -> None:
    validate_config(load_config(write(tmp_path, PROJECT)), source="p.yaml", **registries)


def test_unknown_arch_lists_known_builders(tmp_path: Path, registries: dict[str, Registry]) -> None:
    cfg = load_config(write(tmp_path, PROJECT), ["model.arch=tiny_vigcc"])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, source="p.yaml", **registries)
    message = str(info.value)
    assert "p.yaml: key 'model.arch': Unknown model 'tiny_vigcc'. Did you mean 'tiny_vigc'?" in message
    assert "Registered model builders: tiny_vigc." in message


def test_validate_config_checks_model_keys(tmp_path: Path, registries: dict[str, Registry]) -> None:
    cfg = load_config(write(tmp_path, PROJECT), ["model.image_size=big"])
    with pytest.raises(ConfigError, match="key 'image_size' expects int, got 'big'"):
        validate_config(cfg, source="p.yaml", **registries)


def test_validate_config_checks_dataset_and_task_names(tmp_path: Path, registries: dict[str, Registry]) -> None:
    path = write(tmp_path, PROJECT)
    bad_task = load_config(path, ["run.task=generate_qaa"])
    with pytest.raises(ConfigError, match="Unknown task 'generate_qaa'. Did you mean 'generate_qa'"):
        validate_config(bad_task, source="p.yaml", **registries)
    registries["datasets"] = Registry("dataset")
    registries["datasets"].register(lambda: None, name="llava_conv")
    with pytest.raises(ConfigError, match="Unknown dataset 'okvqa_train'"):
        validate_config(load_config(path), source="p.yaml", **registries)


def test_empty_registries_skip_dataset_and_task_checks(tmp_path: Path) -> None:
    models = Registry("model")
    models.register(tiny_vigc)
    cfg = load_config(write(tmp_path, PROJECT), ["run.task=anything"])
    validate_config(cfg, source="p.yaml", models=models, datasets=Registry("dataset"), tasks=Registry("task"))


def test_missing_model_section_or_arch(tmp_path: Path, registries: dict[str, Registry]) -> None:
    with pytest.raises(ConfigError, match="no 'model' section"):
        validate_config(load_config(write(tmp_path, "run:\n  task: generate_qa\n")), source="p", **registries)
    with pytest.raises(ConfigError, match="section 'model' has no 'arch'; set it to one of tiny_vigc"):
        build_model({"llm_model": "x"}, source="p", models=registries["models"])


def test_build_model_calls_builder_with_resolved_values(tmp_path: Path, registries: dict[str, Registry]) -> None:
    cfg = load_config(
        write(tmp_path, PROJECT),
        ["model.image_size=448", "model.finetuned=${model.llm_model}/vigc.pth"],
    )
    built = build_model(cfg.model, source="p.yaml", models=registries["models"])
    assert built == {
        "llm_model": "/weights/vicuna",
        "image_size": 448,
        "lr_scale": 1.0,
        "finetuned": "/weights/vicuna/vigc.pth",
    }


def test_dataset_defaults_are_merged_so_options_can_set_their_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "datasets:\n  instruct_blip_okvqa_vig:\n    sample_ratio: 300\n",
    )
    cfg = load_config(path, ["datasets.instruct_blip_okvqa_vig.build_info.images=/data/coco"])
    entry = cfg.datasets.instruct_blip_okvqa_vig
    assert entry.sample_ratio == 300
    assert entry.build_info.images == "/data/coco"
    assert "annotation" in entry.build_info  # from vigc/configs/datasets/okvqa/vig/train.yaml


def test_packaged_config_paths_work_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config("vigc/projects/default/generate_qa.yaml")
    assert cfg.model.arch == "vigc_default"
    (tmp_path / "vigc" / "projects" / "default").mkdir(parents=True)
    (tmp_path / "vigc/projects/default/generate_qa.yaml").write_text("model:\n  arch: mine\n")
    assert load_config("vigc/projects/default/generate_qa.yaml").model.arch == "mine"  # the user's file wins
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("vigc/projects/default/nope.yaml")


def test_a_non_utf8_config_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"run:\n  task: x  # d\xe9j\xe0 vu\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 19\); save the config as UTF-8"):
        load_config(path)


def test_problems_are_reported_together(tmp_path: Path, registries: dict[str, Registry]) -> None:
    cfg = load_config(write(tmp_path, PROJECT), ["model.image_size=big", "run.task=nope", "run.output_dir=/dev/null"])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg, source="p.yaml", **registries)
    lines = str(info.value).splitlines()
    assert lines[0] == "p.yaml: 3 problems, fix them all before running:"
    assert "expects int" in lines[1] and "Unknown task 'nope'" in lines[2] and "'/dev/null' is a file" in lines[3]
