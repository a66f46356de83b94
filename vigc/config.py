"""Load a YAML config, apply ``--options`` overrides and check every section before anything heavy runs.

A config has three sections: ``model`` (``arch`` names a builder in ``MODELS``; the other keys are its keyword
arguments), ``datasets`` (one entry per dataset builder) and ``run`` (``task`` names a builder in ``TASKS``).

The original project's configs name models the LAVIS way, ``arch: blip2_vicuna_instruct`` plus a
``model_type``; those resolve to a model default file under ``vigc/configs/models/`` whose ``arch`` names our
builder, with the project's own model keys merged over it.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import logging
import os
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, cast, get_args, get_origin, get_type_hints

import yaml
from omegaconf import Container, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vigc import dist
from vigc.config_checks import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    PACKAGE_DIR,
    POSITIVE,
    PROBABILITY,
    Problems,
    check_output_dir,
    check_ranges,
)
from vigc.errors import ConfigError
from vigc.registry import DATASETS, MODELS, TASKS, Registry, closest_match

__all__ = [
    "LEGACY_ARCH",
    "LEGACY_MODEL_TYPES",
    "DATASET_CONFIG_DIR",
    "MODEL_CONFIG_DIR",
    "SECTIONS",
    "Problems",
    "build_model",
    "check_model_inputs",
    "AT_LEAST_ONE",
    "NON_NEGATIVE",
    "POSITIVE",
    "PROBABILITY",
    "check_output_dir",
    "check_ranges",
    "dataset_default_path",
    "dataset_defaults",
    "load_config",
    "resolve_config_path",
    "validate_builder_kwargs",
    "validate_config",
]

logger = logging.getLogger(__name__)

SECTIONS = ("model", "datasets", "run")

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "models"
DATASET_CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "datasets"

# The original's `arch: blip2_vicuna_instruct` + `model_type: <t>` → the model default file for <t>.
LEGACY_ARCH = "blip2_vicuna_instruct"
LEGACY_MODEL_TYPES: dict[str, str] = {
    "vicuna7b": "blip2_instruct_vicuna7b.yaml",
    "vicuna13b": "blip2_instruct_vicuna13b.yaml",
    "minigpt4_vicuna7b": "mini_gpt4_vicuna7b.yaml",
    "minigpt4_vicuna13b": "mini_gpt4_vicuna13b.yaml",
}


def resolve_config_path(cfg_path: str | os.PathLike[str]) -> Path:
    """The config file: as given, or, for a relative ``vigc/...`` path that is not a file from the working
    directory, the same path inside the installed package (its configs ship in ``vigc/projects``).

    Raises:
        ConfigError: If neither is a file.
    """
    path = Path(cfg_path).expanduser()
    if path.is_file() or path.is_absolute():
        return path
    parts = path.parts
    if parts and parts[0] == PACKAGE_DIR.name:
        packaged = PACKAGE_DIR.joinpath(*parts[1:])
        if packaged.is_file():
            logger.info("config %s: not in the working directory; using the installed package's %s", path, packaged)
            return packaged
    return path


def load_config(cfg_path: str | os.PathLike[str], options: Sequence[str] = ()) -> DictConfig:
    """Load a project config, apply ``--options`` overrides and fill in legacy model defaults.

    Args:
        cfg_path: Path of the YAML file; a relative ``vigc/...`` path that is not a file from the working
            directory is looked up in the installed package (see `resolve_config_path`).
        options: Overrides ``section.key=value``; values are read as YAML (``true``, ``3``, ``1e-5``,
            ``[a,b]``); an empty value is the empty string.

    Returns:
        The config, with the model section in our naming (``arch`` is a ``MODELS`` builder name).

    Raises:
        ConfigError: If the file is missing or not YAML, has unknown sections, an override is malformed or
            names a section the file lacks, or a legacy ``model_type`` is unknown.
    """
    source = str(cfg_path)
    cfg = _load_yaml(resolve_config_path(cfg_path))
    for key in cfg:
        if key not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown top-level section {key!r}{_did_you_mean(str(key), SECTIONS)}. "
                f"A config has the sections {', '.join(SECTIONS)}."
            )
    _merge_dataset_defaults(cfg)
    for option in options:
        _apply_option(cfg, option, source=source)
    if isinstance(cfg.get("model"), DictConfig):
        cfg.model = _resolve_legacy_model(cfg.model, source=source)
    return cfg


@functools.cache
def _dataset_default_files() -> dict[str, Path]:
    """Dataset name → the default file under `DATASET_CONFIG_DIR` that defines it."""
    found: dict[str, Path] = {}
    for path in sorted(DATASET_CONFIG_DIR.rglob("*.yaml")):
        section = cast(DictConfig, OmegaConf.load(path)).get("datasets")
        for name in section if isinstance(section, DictConfig) else ():
            if name in found:
                raise ConfigError(f"Dataset {name!r} has two default files: {found[name]} and {path}.")
            found[str(name)] = path
    return found


def dataset_default_path(name: str) -> Path | None:
    """The default file of dataset `name` under ``vigc/configs/datasets/``, or None if it has none."""
    return _dataset_default_files().get(name)


def dataset_defaults(name: str) -> dict[str, Any]:
    """The default entry of dataset `name` (paths to set, ``data_type``...), or ``{}``."""
    path = dataset_default_path(name)
    if path is None:
        return {}
    entry = cast(DictConfig, OmegaConf.load(path)).datasets[name]
    return cast(dict[str, Any], OmegaConf.to_container(entry, resolve=True)) if entry is not None else {}


def _merge_dataset_defaults(cfg: DictConfig) -> None:
    """A project's dataset entries go over their default files, as the original's builders did, so that
    ``--options datasets.NAME.build_info.images=...`` has a key to override."""
    datasets = cfg.get("datasets")
    if not isinstance(datasets, DictConfig):
        return
    for name in list(datasets.keys()):
        defaults = dataset_defaults(str(name))
        if defaults:
            datasets[name] = OmegaConf.merge(defaults, datasets[name] or {})


def validate_config(
    cfg: DictConfig,
    *,
    source: str,
    models: Registry = MODELS,
    datasets: Registry = DATASETS,
    tasks: Registry = TASKS,
    problems: Problems | None = None,
) -> None:
    """Check the parts of a config that can be checked before building anything, collecting every problem.

    The model section is checked against its builder's signature and ``model.device`` must be usable here (its
    weight paths are the builder's to check: `check_model_inputs`). Dataset names are checked against their registry
    and each entry against its builder's signature; ``run.task`` against the task registry (registries without
    entries are not checked), and ``run.output_dir`` with `check_output_dir`. Value ranges and input files are
    checked by the task and dataset builders, which the workflows call through the same `Problems`.

    Args:
        cfg: A config from `load_config`.
        source: Where the config came from (its file path), for messages.
        models: Registry of model builders.
        datasets: Registry of dataset builders.
        tasks: Registry of tasks.
        problems: Collect problems here and leave raising to the caller; None raises at the end.

    Raises:
        ConfigError: Listing every problem found (only when `problems` is None).
    """
    found = problems if problems is not None else Problems(source)
    if not isinstance(cfg.get("model"), DictConfig):
        found.add(f"{source}: the config has no 'model' section; add one with an 'arch' key.")
    else:
        _validate_model(cfg.model, source=source, models=models, found=found)
    dataset_section = cfg.get("datasets")
    if len(datasets) and isinstance(dataset_section, DictConfig):
        for key in dataset_section:
            name = str(key)
            if name not in datasets:
                found.add(f"{source}: section 'datasets': {datasets.unknown_name_message(name)}")
                continue
            entry = dataset_section[name]
            kwargs = found.check(_to_plain, entry, source=source) if isinstance(entry, DictConfig) else {}
            if kwargs is not None:
                found.check(
                    validate_builder_kwargs, datasets.get(name), kwargs, section=f"datasets.{name}", source=source
                )
    run_section = cfg.get("run")
    if len(tasks) and isinstance(run_section, DictConfig):
        task = run_section.get("task")
        if task is None:
            found.add(f"{source}: section 'run' has no 'task'; set it to one of {', '.join(tasks.names())}.")
        elif task not in tasks:
            found.add(f"{source}: key 'run.task': {tasks.unknown_name_message(task)}")
    if isinstance(run_section, DictConfig) and "output_dir" in run_section:
        found.check(check_output_dir, run_section.output_dir, key="run.output_dir")
    if problems is None:
        found.raise_if_any()


def _validate_model(cfg_model: DictConfig, *, source: str, models: Registry, found: Problems) -> None:
    """The model section's keys and device."""
    built = found.check(_model_builder, cfg_model, source=source, models=models)
    if built is None:
        return
    builder, kwargs = built
    found.check(validate_builder_kwargs, builder, kwargs, section="model", source=source)
    device = kwargs.get("device")
    if isinstance(device, str):
        found.check(dist.check_device, device, key="model.device", fallback=False)


def check_model_inputs(cfg_model: DictConfig | Mapping[str, Any], *, source: str, models: Registry = MODELS) -> None:
    """Run the model builder's own cheap input check, when it has one (``builder.check_inputs``: weight paths set
    and present), so the workflows report it with every other problem before anything is loaded.

    Raises:
        ConfigError: If the section does not fit the builder or its inputs are missing.
    """
    builder, kwargs = _model_builder(cfg_model, source=source, models=models)
    validate_builder_kwargs(builder, kwargs, section="model", source=source)
    check = getattr(builder, "check_inputs", None)
    if callable(check):
        check(**kwargs)


def build_model(cfg_model: DictConfig | Mapping[str, Any], *, source: str, models: Registry = MODELS) -> Any:
    """Validate a model section and call the builder its ``arch`` names with the other keys.

    Args:
        cfg_model: The ``model`` section of a config from `load_config`.
        source: Where the config came from, for messages.
        models: Registry of model builders.

    Returns:
        Whatever the builder returns.

    Raises:
        ConfigError: If ``arch`` is unknown or a key does not fit the builder.
    """
    builder, kwargs = _model_builder(cfg_model, source=source, models=models)
    validate_builder_kwargs(builder, kwargs, section="model", source=source)
    return builder(**kwargs)


def validate_builder_kwargs(
    builder: Callable[..., Any], kwargs: Mapping[str, Any], *, section: str, source: str
) -> None:
    """Check config keys against a builder's signature: names, required arguments and simple types.

    Types are checked for annotations built from ``int``, ``float`` (an int is accepted), ``bool``, ``str``,
    ``None``, ``list``/``Sequence``, ``dict`` and ``Literal``; other annotations are not checked.

    Args:
        builder: The builder the keys are meant for.
        kwargs: The keys and values, without the key that named the builder.
        section: The config section, for messages (``"model"``, ``"datasets.okvqa"``).
        source: Where the config came from, for messages ("" when the caller adds it).

    Raises:
        ConfigError: One paragraph listing every unknown key (with a close match), missing required key and
            wrongly typed value, and the keys the builder accepts.
    """
    values = _to_plain(kwargs, source=source)
    parameters = inspect.signature(builder).parameters
    accepted = {
        name: p
        for name, p in parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    hints = _type_hints(builder)
    problems = []
    for key, value in values.items():
        if key not in accepted:
            if not open_ended:
                problems.append(f"unknown key {key!r}{_did_you_mean(key, accepted)}")
        elif key in hints and _matches(value, hints[key]) is False:
            problems.append(f"key {key!r} expects {_type_name(hints[key])}, got {value!r} ({type(value).__name__})")
    for name, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and name not in values:
            problems.append(f"missing required key {name!r}")
    if problems:
        builder_name = getattr(builder, "__name__", repr(builder))
        where = f"{source}: section" if source else "Section"  # no source: the caller names the file
        raise ConfigError(
            f"{where} {section!r} does not fit builder {builder_name!r}: {'; '.join(problems)}. "
            f"Accepted keys: {', '.join(accepted) or '(none)'}."
        )


def _load_yaml(path: Path) -> DictConfig:
    """Read a YAML file whose top level is a mapping."""
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist; check the path given to --cfg-path.")
    try:
        cfg = OmegaConf.load(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save the config "
            "as UTF-8."
        ) from None
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise ConfigError(f"{path}: not a valid YAML config: {_one_line(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror or exc}.") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not a list.")
    return cfg


def _apply_option(cfg: DictConfig, option: str, *, source: str) -> None:
    """Set one ``a.b.c=value`` override; every part before the last must be an existing section."""
    key, sep, raw = option.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(
            f"Bad --options entry {option!r}: expected section.key=value, for example run.seed=42 or "
            "model.finetuned=/path/to/vigc.pth."
        )
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, DictConfig):
            where = ".".join(parts[: depth + 1])
            present = [str(k) for k in node]
            raise ConfigError(
                f"--options {option!r} names section {where!r}, which {source} does not have"
                f"{_did_you_mean(part, present)}. Sections there: {', '.join(present) or '(none)'}."
            )
        node = child
    try:
        node[parts[-1]] = _parse_value(raw)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"--options {option!r} cannot be applied to {source}: {exc}") from exc


def _parse_value(raw: str) -> Any:
    """Read an override value as YAML, as OmegaConf reads files (so ``1e-5`` is a float)."""
    if raw == "":
        return ""
    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]))
        return cast(dict[str, Any], parsed)["value"]
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise ConfigError(f"--options value {raw!r} is not valid YAML: {exc}") from exc


def _resolve_legacy_model(model: DictConfig, *, source: str) -> DictConfig:
    """Resolve ``arch: blip2_vicuna_instruct`` + ``model_type`` to its default file, project keys on top."""
    if model.get("arch") != LEGACY_ARCH:
        return model
    model_type = model.get("model_type")
    if model_type not in LEGACY_MODEL_TYPES:
        raise ConfigError(
            f"{source}: model.arch is {LEGACY_ARCH!r}, so model.model_type must be one of "
            f"{', '.join(LEGACY_MODEL_TYPES)}; got {model_type!r}"
            f"{_did_you_mean(str(model_type), LEGACY_MODEL_TYPES)}."
        )
    default_path = MODEL_CONFIG_DIR / LEGACY_MODEL_TYPES[model_type]
    defaults = _load_model_defaults(default_path)
    merged = cast(DictConfig, OmegaConf.merge(defaults, model))
    del merged["model_type"]
    merged.arch = defaults.arch
    logger.info(
        "%s: model %s/%s uses the defaults of %s (arch %s)",
        source,
        LEGACY_ARCH,
        model_type,
        default_path,
        defaults.arch,
    )
    return merged


def _load_model_defaults(path: Path) -> DictConfig:
    """Read the ``model`` section of a model default file, dropping the original's ``preprocess`` section."""
    cfg = _load_yaml(path)
    if "preprocess" in cfg:
        logger.info("%s: ignoring its 'preprocess' section; processors are set per dataset.", path)
    unexpected = [str(k) for k in cfg if k not in ("model", "preprocess")]
    model = cfg.get("model")
    if unexpected or not isinstance(model, DictConfig) or not model.get("arch"):
        raise ConfigError(f"{path}: a model default file holds one 'model' section with an 'arch' key.")
    return model


def _model_builder(
    cfg_model: DictConfig | Mapping[str, Any], *, source: str, models: Registry
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Split a model section into the builder ``arch`` names and the builder's keyword arguments."""
    kwargs = _to_plain(cfg_model, source=source)
    arch = kwargs.pop("arch", None)
    if arch is None:
        known = ", ".join(models.names()) or "(none registered)"
        raise ConfigError(f"{source}: section 'model' has no 'arch'; set it to one of {known}.")
    if arch not in models:
        raise ConfigError(f"{source}: key 'model.arch': {models.unknown_name_message(arch)}")
    return models.get(arch), kwargs


def _to_plain(section: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """Return a plain dict with interpolations resolved."""
    try:
        if isinstance(section, Container):
            return cast(dict[str, Any], OmegaConf.to_container(section, resolve=True))
        return {
            str(k): OmegaConf.to_container(v, resolve=True) if isinstance(v, Container) else v
            for k, v in section.items()
        }
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{source}: cannot resolve a value: {exc}") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _did_you_mean(word: str, candidates: Mapping[str, Any] | Sequence[str]) -> str:
    suggestion = closest_match(word, candidates)
    return f" (did you mean {suggestion!r}?)" if suggestion is not None else ""


def _type_hints(builder: Callable[..., Any]) -> dict[str, Any]:
    """The builder's resolved annotations; those that cannot be resolved are left unchecked."""
    target = builder.__init__ if inspect.isclass(builder) else builder
    try:
        return get_type_hints(target)
    except Exception:  # an unresolvable forward reference: check what is not a string
        annotations = getattr(target, "__annotations__", {})
        return {k: v for k, v in annotations.items() if not isinstance(v, str)}


def _matches(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` fits ``annotation``; None when the annotation is beyond this simple check."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        results = [_matches(value, arg) for arg in get_args(annotation)]
        if True in results:
            return True
        return None if None in results else False
    if origin is Literal:
        return value in get_args(annotation)
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        args = get_args(annotation)
        if origin is not tuple and len(args) == 1:
            return False if any(_matches(item, args[0]) is False for item in value) else True
        return True
    if annotation is dict or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")
