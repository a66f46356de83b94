"""Named builder functions, one registry per kind of object a config can name.

A YAML section names a builder (``arch: minigpt4_vicuna7b``); its other keys are that builder's keyword
arguments. Builders register themselves when their module is imported explicitly::

    from vigc.registry import MODELS

    @MODELS.register
    def minigpt4_vicuna7b(pretrained: str = "", ...) -> VIGCModel: ...

The registry only maps names to functions: it holds no paths, no instances and no other state.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from vigc.errors import ConfigError

__all__ = ["DATASETS", "MODELS", "PROCESSORS", "TASKS", "Registry", "closest_match"]

BuilderT = TypeVar("BuilderT", bound=Callable[..., Any])


def closest_match(word: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate most similar to ``word``, or None when none is close.

    Args:
        word: The misspelt name.
        candidates: The valid names.

    Returns:
        The closest valid name (difflib ratio of at least 0.6), or None.
    """
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class Registry:
    """A mapping from names to builder functions of one kind (models, datasets, tasks, processors).

    Args:
        kind: What the builders build, singular ("model"); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., Any]] = {}

    @overload
    def register(self, builder: BuilderT, *, name: str | None = None) -> BuilderT: ...

    @overload
    def register(self, builder: None = None, *, name: str | None = None) -> Callable[[BuilderT], BuilderT]: ...

    def register(
        self, builder: BuilderT | None = None, *, name: str | None = None
    ) -> BuilderT | Callable[[BuilderT], BuilderT]:
        """Register a builder under ``name`` (default: the function's ``__name__``).

        Use as ``@REG.register``, ``@REG.register(name="other_name")`` or ``REG.register(fn)``.
        The builder is returned unchanged.

        Args:
            builder: The builder function; omitted when used as ``@REG.register(name=...)``.
            name: The name configs use; defaults to ``builder.__name__``.

        Returns:
            The builder itself, or a decorator that registers and returns it.

        Raises:
            ValueError: If the name is already registered (two builders would claim one config value).
            TypeError: If the builder is not callable.
        """
        if builder is None:
            return lambda fn: self.register(fn, name=name)
        if not callable(builder):
            raise TypeError(f"Only callables can be registered as {self.kind} builders, got {builder!r}.")
        key = name if name is not None else builder.__name__
        if key in self._builders:
            raise ValueError(
                f"A {self.kind} builder named {key!r} is already registered "
                f"({self._builders[key].__module__}.{self._builders[key].__qualname__})."
            )
        self._builders[key] = builder
        return builder

    def get(self, name: str) -> Callable[..., Any]:
        """Return the builder registered under ``name``.

        Args:
            name: The registered name, as written in a config.

        Returns:
            The builder function.

        Raises:
            ConfigError: If nothing is registered under ``name``; the message lists the registered names and
                the closest one.
        """
        try:
            return self._builders[name]
        except KeyError:
            raise ConfigError(self.unknown_name_message(name)) from None

    def unknown_name_message(self, name: object) -> str:
        """Say that ``name`` is not registered, suggest the closest registered name and list them all.

        Args:
            name: The name that was looked up.

        Returns:
            A one-paragraph message.
        """
        known = self.names()
        message = f"Unknown {self.kind} {name!r}."
        suggestion = closest_match(str(name), known)
        if suggestion is not None:
            message += f" Did you mean {suggestion!r}?"
        if known:
            message += f" Registered {self.kind} builders: {', '.join(known)}."
        else:
            message += (
                f" No {self.kind} builders are registered: import the module that defines them before "
                "building from a config."
            )
        return message

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


MODELS = Registry("model")
DATASETS = Registry("dataset")
TASKS = Registry("task")
PROCESSORS = Registry("processor")
