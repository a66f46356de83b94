"""`pkg://` locations in generation configs resolve inside the installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

import vigc
from vigc.errors import ConfigError
from vigc.generation.sources import resolve_package_path

PACKAGE = Path(vigc.__file__).resolve().parent


def test_package_path_resolves_inside_the_package() -> None:
    assert Path(resolve_package_path("pkg://vigc/configs/models")) == PACKAGE / "configs" / "models"
    assert Path(resolve_package_path("pkg://vigc")) == PACKAGE


def test_other_paths_are_unchanged() -> None:
    assert resolve_package_path("images/train") == "images/train"
    assert resolve_package_path("") == ""


def test_unknown_package_names_the_key() -> None:
    with pytest.raises(ConfigError, match="datasets.image_folder.images.*no_such_package"):
        resolve_package_path("pkg://no_such_package/x", "datasets.image_folder.images")
