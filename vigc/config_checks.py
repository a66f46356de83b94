"""The checks every config section shares: problems collected and reported together, value ranges, the output
folder. `vigc.config.validate_config` and the workflows' own checks (tasks, datasets, resume) use them, so both
workflows report every problem of a config in one message before a run folder is made or a weight is read."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vigc.errors import ConfigError, VIGCError

__all__ = [
    "AT_LEAST_ONE",
    "NON_NEGATIVE",
    "PACKAGE_DIR",
    "POSITIVE",
    "PROBABILITY",
    "Problems",
    "Rule",
    "check_output_dir",
    "check_ranges",
]

PACKAGE_DIR = Path(__file__).resolve().parent
T = TypeVar("T")


class Problems:
    """Every problem found while checking a run's config, reported together as one `ConfigError`.

    Both workflows (``evaluate.py`` generation, ``train.py``) pass one collector through `validate_config` and
    their own cheap checks (building the task, reading the dataset inputs), then call `raise_if_any` before a
    run folder is made or a weight is read.

    Args:
        source: Where the config came from (its file path), for the message.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        """Record one problem (a sentence naming the key and what to do)."""
        if message not in self.messages:
            self.messages.append(message)

    def check(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Call ``function``; a `VIGCError` it raises is recorded and None returned instead of its result."""
        try:
            return function(*args, **kwargs)
        except VIGCError as exc:
            self.add(str(exc))
            return None

    def raise_if_any(self) -> None:
        """Raise one `ConfigError` holding every recorded problem (one per line when there are several).

        Raises:
            ConfigError: When any problem was recorded.
        """
        prefix = f"{self.source}: "
        bodies = [m[len(prefix) :] if m.startswith(prefix) else m for m in self.messages]
        if len(bodies) == 1:
            raise ConfigError(prefix + bodies[0])
        if bodies:
            listed = "\n".join(f"  {i}. {body}" for i, body in enumerate(bodies, start=1))
            raise ConfigError(f"{prefix}{len(bodies)} problems, fix them all before running:\n{listed}")


Rule = tuple[Callable[[Any], bool], str]
AT_LEAST_ONE: Rule = (lambda v: v >= 1, "at least 1")
POSITIVE: Rule = (lambda v: v > 0, "positive")
NON_NEGATIVE: Rule = (lambda v: v >= 0, "0 or more")
PROBABILITY: Rule = (lambda v: 0 < v <= 1, "in (0, 1]")


def check_ranges(where: str, checks: Sequence[tuple[str, Any, Rule]]) -> None:
    """Check numeric settings against their ranges, reporting every value out of range in one message.

    Args:
        where: The section, for messages (``run``, ``run.generate_cfg``).
        checks: ``(key, value, rule)`` triples; a value of None (unset) is not checked.

    Raises:
        ConfigError: Naming each key, its range and the value given.
    """
    problems = []
    for key, value, (accepts, requirement) in checks:
        if value is None:
            continue
        try:
            fits = bool(accepts(value))
        except TypeError:
            fits = False
        if not fits:
            problems.append(f"{where}.{key} must be {requirement}, got {value!r}")
    if problems:
        raise ConfigError("; ".join(problems) + ".")


def check_output_dir(output_dir: str, *, key: str) -> None:
    """Check that runs can be written under ``output_dir`` before anything is made there.

    Args:
        output_dir: The folder of run folders (made if missing).
        key: The config key, for messages (``run.output_dir``).

    Raises:
        ConfigError: If it (or a folder above it) is a file, the nearest existing folder is not writable, or it
            lies inside the installed package.
    """
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise ConfigError(f"{key} is empty; set it to the folder where run folders are made (e.g. output).")
    root = Path(output_dir).expanduser().resolve()
    if root == PACKAGE_DIR or PACKAGE_DIR in root.parents:
        raise ConfigError(f"{key} = {output_dir!r} is inside the installed package {PACKAGE_DIR}; choose another.")
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        what = "is a file" if existing == root else f"lies below the file {str(existing)!r}"
        raise ConfigError(f"{key} = {output_dir!r} {what}, not a folder; set {key} to a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key} = {output_dir!r}: cannot write in {str(existing)!r}; choose a writable folder.")
