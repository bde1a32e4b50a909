"""One generic name registry for models, datasets, methods, sources, loss terms and plug-ins."""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name, free-form tags and a one-line description."""

    name: str
    obj: T
    tags: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


class Registry(Generic[T]):
    """Maps names to objects; lookups of unknown names fail with a close-match suggestion.

    Args:
        kind: what the registry holds, in plural ("models", "methods"); used in messages and in
            the hint ``dfkd list <kind>``.
    """

    def __init__(self, kind: str) -> None:
        if kind in _ALL:
            raise ValueError(f"a registry of {kind} already exists")
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        _ALL[kind] = self

    def register(
        self, name: str, obj: T | None = None, *, doc: str | None = None, **tags: Any
    ) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does so."""

        def add(o: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind}: '{name}' is already registered")
            text = doc if doc is not None else _first_line(getattr(o, "__doc__", None))
            self._entries[name] = Entry(name, o, dict(tags), text)
            return o

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and interactive sessions use this to undo a registration)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """Return the entry for ``name`` or raise a one-line ConfigError with a suggestion."""
        try:
            return self._entries[name]
        except KeyError:
            hint = did_you_mean(name, self._entries)
            raise ConfigError(
                f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} '{name}'"
                f"{hint} (see `dfkd list {self.kind}`)"
            ) from None

    def get(self, name: str) -> T:
        """Return the object registered under ``name``."""
        return self.entry(name).obj

    def names(self, pattern: str = "*", **tags: Any) -> list[str]:
        """Sorted names matching a shell-style ``pattern`` and, if given, equal tag values."""
        return sorted(
            n
            for n, e in self._entries.items()
            if fnmatch.fnmatch(n, pattern) and all(e.tags.get(k) == v for k, v in tags.items())
        )

    def entries(self) -> Iterator[Entry[T]]:
        """All entries, sorted by name."""
        for n in sorted(self._entries):
            yield self._entries[n]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


_ALL: dict[str, Registry[Any]] = {}


def registries() -> dict[str, Registry[Any]]:
    """Every registry made so far, by kind, in order of creation (``dfkd list`` shows these)."""
    return dict(_ALL)


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def options_of(obj: Any, skip: tuple[str, ...] = ("self", "ctx")) -> list[tuple[str, Any, str]]:
    """A registered part's options: ``(name, default, doc)`` per parameter of ``obj`` (a function
    or a class), ``doc`` the docstring line that documents the option: its ``Args`` entry, else
    the first line naming it as ````name````, else the first naming it at all ("" if none)."""
    fn = obj.__init__ if isinstance(obj, type) else obj
    doc = inspect.getdoc(obj) or ""
    if isinstance(obj, type):
        doc += "\n" + (inspect.getdoc(obj.__init__) or "")
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        word = rf"(?<![\w.]){re.escape(p.name)}(?!\w)"
        key = rf"^\s*(\w+, )*{re.escape(p.name)}(, \w+)*,?:\s"  # an Args entry's names
        tries = (key, rf"``{re.escape(p.name)}``", word)
        lines = doc.splitlines()
        found = (ln for pat in tries for ln in lines if re.search(pat, ln))
        out.append((p.name, None if p.default is p.empty else p.default,
                    next(found, "").strip(" *-")))  # fmt: skip
    return out
