"""Config files are data: dataclasses filled from JSON/YAML dicts, unknown keys refused."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from robustq.utils.errors import RobustqError

T = TypeVar("T")


def from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)`` for a dataclass ``cls``, refusing keys it does not know; JSON lists become
    tuples where the field's default is a tuple."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise RobustqError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) and isinstance(fields[k].default, tuple)
                  else v for k, v in d.items()})


class JsonConfig:
    """Mixin for frozen dataclass configs: ``to_json`` (plain JSON types: tuples as lists) and
    ``from_json`` (validated by the dataclass, unknown keys refused)."""

    def to_json(self) -> dict[str, Any]:
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_json(cls: type[T], d: dict[str, Any]) -> T:
        return from_dict(cls, d, cls.__name__)


def json_ready(value: Any) -> Any:
    """``value`` with tuples turned into lists, recursively (what ``json.loads`` gives back)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value
