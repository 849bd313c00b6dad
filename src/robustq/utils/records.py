"""A run's configuration record (``run.json``, ``search.json``, ``bench.json``): read with full
validation, compared on resume, written only once everything else has been checked.

Commands call ``claim`` as the *last* step of their validation: a rerun with corrected options
into the same directory is then never refused because a bad first attempt left its config.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json


def read_record(path: str | Path, required: tuple[str, ...] = ("config",)) -> dict[str, Any]:
    """The JSON object in ``path`` holding the ``required`` keys (objects where named
    ``config``); a truncated, garbled or incomplete file is refused, naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RobustqError(f"{path}: not valid JSON ({e}); the run directory is damaged: "
                           "remove it or use a new --out") from None
    except UnicodeDecodeError:
        raise RobustqError(f"{path}: not UTF-8 text; the run directory is damaged") from None
    if not isinstance(data, dict):
        raise RobustqError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise RobustqError(f"{path}: lacks {', '.join(missing)}; the run directory is damaged")
    if "config" in required and not isinstance(data["config"], dict):
        raise RobustqError(f"{path}: 'config' must be a JSON object")
    return data


def differing_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def claim(path: str | Path, record: dict[str, Any], compare: tuple[str, ...] = ("config",),
          what: str = "run", identity: dict[str, Callable[[Any], Any]] | None = None) -> bool:
    """Write ``record`` to ``path`` for a new run, or check that the run already there has the
    same ``compare`` entries (a resume). Returns True on a resume. Refuses another run's
    directory, naming what differs. ``identity[key]``, where given, maps an entry (old or new)
    to what must be equal for a resume (e.g. a record written by an older robustq)."""
    path = Path(path)
    if path.is_file():
        old = read_record(path, compare)
        for key in compare:
            same = (identity or {}).get(key, lambda v: v)
            if same(old[key]) != same(record.get(key)):
                detail = (f" ({', '.join(differing_keys(old[key], record[key]))})"
                          if isinstance(old[key], dict) and isinstance(record.get(key), dict)
                          else "")
                which = "other settings" if key == "config" else f"another {key}"
                raise RobustqError(f"{path.parent}: holds a {what} with {which}{detail}; "
                                   "use a new --out or the same options to resume")
        return True
    atomic_write_json(path, record)
    return False
