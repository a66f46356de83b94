"""Explicit registration of every built-in builder (models, datasets, processors, tasks).

Entry points call `register_all()` once; importing a module is what registers its builders.
"""

from __future__ import annotations

import importlib

MODULES = (
    "vigc.models.builders",
    "vigc.models.default_model",
    "vigc.data.text",
    "vigc.data.datasets",
    "vigc.generation.sources",
    "vigc.tasks.generate_llava",
    "vigc.tasks.generate_vqa",
    "vigc.tasks.train",
)


def register_all() -> None:
    """Import every module that registers builders (idempotent)."""
    for name in MODULES:
        importlib.import_module(name)
