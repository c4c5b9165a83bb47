"""One registry pattern for everything xrbench names: datasets, tasks, models, protocols, metrics.

Modelled on timm's ``register_model`` / ``create_model``: a decorator registers a factory under a
name, ``get`` returns it, and an unknown name raises :class:`UnknownNameError` listing the closest
registered names (the CLI turns that into exit status 2).
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that is not registered; ``suggestions`` holds the closest registered names."""

    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str]):
        self.kind, self.name, self.suggestions, self.known = kind, name, suggestions, known
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        listing = ", ".join(known) if len(known) <= 25 else ", ".join(known[:25]) + ", ..."
        super().__init__(f"unknown {kind} '{name}'.{hint} Registered {kind}s: {listing}")

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return self.args[0]


def closest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    """Close matches by edit similarity, plus candidates that contain the name as a substring."""
    hits = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    low = name.lower()
    for c in candidates:
        if low and low in c.lower() and c not in hits:
            hits.append(c)
    return hits[: max(n, 1) + 2]


class Registry(Generic[T]):
    """A named mapping of factories with did-you-mean errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None, *, overwrite: bool = False) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or getattr(obj, "__name__")
            self.add(key, obj, overwrite=overwrite)
            return obj

        return deco

    def add(self, name: str, obj: T, *, overwrite: bool = False) -> None:
        if name in self._items and not overwrite and self._items[name] is not obj:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            names = self.names()
            raise UnknownNameError(self.kind, name, closest(name, names), names) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())


DATASETS: Registry = Registry("dataset")
MODELS: Registry = Registry("model")
PROTOCOLS: Registry = Registry("protocol")
METRICS: Registry = Registry("metric")
TEXT_MODELS: Registry = Registry("text model")
