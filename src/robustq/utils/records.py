"""A run's configuration record (``run.json``, ``search.json``, ``bench.json``): read with full
validation, compared on resume, written only once everything else has been checked.

Commands call ``claim`` as the *last* step of their validation: a rerun with corrected options
into the same directory is then never refused because a bad first attempt left its config.
``start_run`` / ``finish_run`` keep the workflows' ``run.json`` (kind, schema, config, inputs
resolved and hashed, provenance, status running/complete) through ``claim``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json, file_sha256
from robustq.utils.provenance import provenance
from robustq.utils.runlock import hold_run_dir


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
    to what must be equal for a resume (e.g. a record written by an older robustq). The
    directory is first held for this process (``utils.runlock``): a run another process is
    writing is refused."""
    path = Path(path)
    hold_run_dir(path.parent)
    if path.is_file():
        old = read_record(path, compare)
        key = first_difference(old, record, compare, identity)
        if key is not None:
            detail = (f" ({', '.join(differing_keys(old[key], record[key]))})"
                      if isinstance(old[key], dict) and isinstance(record.get(key), dict)
                      else "")
            which = "other settings" if key == "config" else f"another {key}"
            raise RobustqError(f"{path.parent}: holds a {what} with {which}{detail}; "
                               "use a new --out or the same options to resume")
        return True
    atomic_write_json(path, record)
    return False


def first_difference(old: dict[str, Any], record: dict[str, Any], compare: tuple[str, ...],
                     identity: dict[str, Callable[[Any], Any]] | None = None) -> str | None:
    """The first of ``compare`` whose entries in the recorded ``old`` and the new ``record``
    differ (each mapped through ``identity[key]`` where given, as ``claim`` compares them), or
    None when the two records describe the same run."""
    for key in compare:
        same = (identity or {}).get(key, lambda v: v)
        if same(old[key]) != same(record.get(key)):
            return key
    return None


RUN_FILE = "run.json"
RUN_SCHEMA = 1


def input_record(path: str | Path) -> dict[str, str]:
    """An input file as a run records it: the resolved path and the content hash, so the run
    can be reused from any working directory and a changed file is noticed."""
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def start_run(out: str | Path, kind: str, config: dict[str, Any], seed: int,
              inputs: dict[str, str | Path] | None = None) -> bool:
    """Claim ``out/run.json`` for a ``kind`` run of ``config`` (schema, resolved input paths and
    hashes, provenance, ``status: running``); call it as the last step of validation. A rerun
    with the same kind and config is a resume (returns True); another run is refused."""
    path = Path(out) / RUN_FILE
    record = {"kind": kind, "schema": RUN_SCHEMA, "config": config,
              "inputs": {k: input_record(p) for k, p in (inputs or {}).items()},
              "provenance": provenance(seed, config), "status": "running"}
    Path(out).mkdir(parents=True, exist_ok=True)
    resumed = claim(path, record, compare=("kind", "config"), what=f"{kind} run")
    if resumed:
        atomic_write_json(path, {**read_record(path), "status": "running"})
    return resumed


def finish_run(out: str | Path, results: dict[str, Any] | None = None) -> None:
    """Mark ``out/run.json`` complete (with a summary of ``results``), atomically."""
    path = Path(out) / RUN_FILE
    record = read_record(path, ("kind", "config"))
    atomic_write_json(path, {**record, "status": "complete", **({"results": results}
                                                                   if results else {})})
