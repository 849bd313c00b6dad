"""Config files are data: dataclasses filled from JSON/YAML dicts, unknown keys refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robustq.utils.errors import RobustqError

T = TypeVar("T")


def from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)`` for a dataclass ``cls``, refusing keys it does not know; JSON lists become
    tuples where the field's default is a tuple."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise RobustqError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
    return cls(**{k: _field_value(fields[k], v) for k, v in d.items()})


def _field_value(f: dataclasses.Field, value: Any) -> Any:
    """A JSON value for field ``f``: a list where the field is a tuple becomes a tuple, a dict
    where the default is a config (a nested one, e.g. a job's TrainConfig) becomes that config."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    declared_tuple = isinstance(f.type, str) and f.type.startswith("tuple")
    if isinstance(value, list) and (isinstance(default, tuple) or declared_tuple):
        return tuple(value)
    if isinstance(value, dict) and dataclasses.is_dataclass(default) and hasattr(default, "from_json"):
        return type(default).from_json(value)
    return value


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


def parse_json_or_yaml(text: str, path: str | Path) -> Any:
    """``text`` read from ``path``: YAML (safe loader) for ``.yaml``/``.yml``, JSON otherwise;
    a repeated key is refused (both parsers would keep the last). Errors name the file."""
    path = Path(path)
    as_yaml = path.suffix in (".yaml", ".yml")
    try:
        return (yaml.load(text, Loader=_UniqueKeyLoader) if as_yaml
                else json.loads(text, object_pairs_hook=_unique_pairs))
    except (yaml.YAMLError, json.JSONDecodeError, RobustqError) as e:
        raise RobustqError(f"{path}: not valid {'YAML' if as_yaml else 'JSON'} "
                           f"({' '.join(str(e).split())})") from None


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise RobustqError(f"duplicate key {dup!r}")
    return dict(pairs)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)
