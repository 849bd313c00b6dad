"""``Registry``: the named members of one family (models, data formats, corruptions, decoders,
approximations), with one way to add (``register``), list (``names``) and look up (``get``);
an unknown name is refused in one line that lists the known ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from robustq.utils.errors import RobustqError

T = TypeVar("T")


class Registry(Generic[T]):
    """Members of the family ``what`` ("decoder", "data format"), in registration order."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._members: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add the decorated object under ``name`` (a name is registered once)."""
        def add(member: T) -> T:
            if name in self._members:
                raise ValueError(f"{self.what} {name!r} registered twice")
            self._members[name] = member
            return member
        return add

    def names(self) -> list[str]:
        return list(self._members)

    def get(self, name: str) -> T:
        if name not in self._members:
            raise RobustqError(f"unknown {self.what} {name!r}; known: {', '.join(self._members)}")
        return self._members[name]

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)
