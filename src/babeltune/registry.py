"""Small explicit registries: a name maps to one implementation, and an unknown name fails helpfully."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class BabeltuneError(Exception):
    """An error caused by the user's input: printed as one line, no traceback (``--debug`` shows it)."""


def short(value: object, limit: int = 60) -> str:
    """A value's repr for an error message, cut to ``limit`` characters: never a whole file in one line.

    >>> short("x" * 100)
    "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (102 characters)"
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 2]}... ({len(text)} characters)"


def unknown_name_error(kind: str, name: str, choices: Iterable[str]) -> BabeltuneError:
    """Build the error for an unknown name, listing near matches first and then every choice.

    >>> str(unknown_name_error("regime", "english", ["english-only", "multilingual"]))
    "unknown regime 'english'; did you mean 'english-only'? choices: english-only, multilingual"
    """
    choices = sorted(choices)
    near = difflib.get_close_matches(name[:200], choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return BabeltuneError(f"unknown {kind} {short(name)}{hint} choices: {', '.join(choices)}")


def check_names(where: str, **lookups: Callable[[], object]) -> None:
    """Run each lookup (a registry get, a prompt file load); an unknown name's error names its field.

    >>> strategies = Registry("strategy")
    >>> _ = strategies.register("uniform")(print)
    >>> check_names("mix", strategy=lambda: strategies.get("unifrom"))
    Traceback (most recent call last):
    babeltune.registry.BabeltuneError: mix.strategy: unknown strategy 'unifrom'; did you mean 'uniform'? choices: uniform
    """
    for field, lookup in lookups.items():
        try:
            lookup()
        except BabeltuneError as err:
            raise BabeltuneError(f"{where}.{field}: {err}") from None


class Registry(Generic[T]):
    """Name -> implementation, filled with the ``register`` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name_error(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
