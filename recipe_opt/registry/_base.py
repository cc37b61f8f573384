"""A registry of named components: one table per kind, looked up with "did you mean".

In the manner of lm-evaluation-harness's `lm_eval/api/registry.py`: every name a user can write
in a config or on the command line (an objective, a sampler, a selection policy) is spelled once,
in its registry; the config's allowed values, the command line's help and every "unknown name"
error are derived from it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

__all__ = ["Named", "Registry"]


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Components of one kind, by name, in the order they were registered (the first is the default)."""

    def __init__(self, kind: str, entries: Iterable[T]) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"{kind} {entry.name!r} is registered twice")
            self._entries[entry.name] = entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(self.unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def text(self) -> str:
        """The names for help text: "a, b or c"."""
        names = list(self._entries)
        return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"

    def unknown(self, name: str) -> str:
        """The error message for a name that is not registered: did you mean, and what is known."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(map(repr, self._entries))})"

    def check(self, name: str) -> str:
        """`name` if it is registered, else `ValueError` with the message of `unknown`."""
        return self[name].name
