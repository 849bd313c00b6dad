"""Find and read the results of robustq runs for the report; never write into a run.

Every record keeps the files its numbers come from (``sources``) and what is missing from an
unfinished run (``missing``): a half-finished run yields what it has plus a note, not an error.

Run kinds, by the file that marks their directory:
- ``certify`` / ``irs``: ``run.json`` + ``certify.tsv`` (+ ``summary.json`` once finished);
- ``search``: ``search.json`` + ``episodes.jsonl``, ``search_state.safetensors``, ``final.json``;
- ``compare``: ``compare.json`` with per-model certification runs under ``runs/``;
- ``bench``: ``bench.json`` + unit cells (summarized from the cells when ``results.json`` is
  missing or older than the last unit);
- ``dq``: ``dq.json`` (``benchmarks/dq_experiment.py``);
- ``demo``: ``demo.json`` (timings of ``robustq demo``), whose sub-runs are found separately;
- ``model``: ``model.safetensors`` of ``robustq train`` / ``robustq quantize``, whose
  ``run.json`` says kind ``train`` / ``quantize`` (the checkpoint's metadata:
  card, quantization, accuracy, training history; the weights are not read);
- ``amplification``: ``amplification.json`` of ``robustq amplification`` (or that file given
  directly, under any name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustq.bench.amplification import AMPLIFICATION_FILE
from robustq.bench.runner import CONFIG_FILE as BENCH_CONFIG
from robustq.bench.runner import RESULTS_FILE, UNITS_FILE
from robustq.bench.tables import collect_results
from robustq.certify.run import read_rows, summarize_rows
from robustq.certify.rundir import RUN, SUMMARY, TSV
from robustq.models.checkpoint import read_metadata
from robustq.models.train import FINAL_FILE as CHECKPOINT
from robustq.quant.defensive import DQ_FILE
from robustq.report.demo import DEMO_FILE
from robustq.search.compare import COMPARE_FILE
from robustq.search.search import BEST_POLICY, EPISODES, FINAL_FILE
from robustq.search.search import CONFIG_FILE as SEARCH_FILE
from robustq.utils.errors import RobustqError

RADII = (0.25, 0.5, 0.75, 1.0)


@dataclass
class RunRecord:
    """One run as the report sees it. ``name`` is its path relative to the report's inputs."""

    kind: str
    name: str
    path: Path
    data: dict[str, Any]
    sources: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RobustqError(f"{path}: unreadable results file ({e})") from None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:        # a line cut by a kill: the unit was not finished
            break
    return out


def load_certify(path: Path, name: str) -> RunRecord:
    meta = _json(path / RUN)
    rec = RunRecord(meta.get("kind", "certify"), name, path, {"meta": meta},
                    provenance=meta.get("provenance"))
    planned = len(meta.get("data", {}).get("indices", []))
    if (path / SUMMARY).is_file():
        rec.data["summary"] = _json(path / SUMMARY)
        rec.sources.append(path / SUMMARY)
    else:
        rows = read_rows(path)
        rec.sources.append(path / TSV)
        if rows:
            radii = tuple(meta.get("config", {}).get("radii", RADII))
            rec.data["summary"] = summarize_rows(rows, radii)
        rec.missing.append(f"{name}: unfinished certification, {len(rows)} of {planned} images "
                           "(numbers computed from certify.tsv so far)")
    return rec


def load_search(path: Path, name: str) -> RunRecord:
    meta = _json(path / SEARCH_FILE)
    rec = RunRecord("search", name, path, {"config": meta["config"]},
                    sources=[path / SEARCH_FILE], provenance=meta.get("provenance"))
    rec.data["episodes"] = _jsonl(path / EPISODES)
    rec.sources.append(path / EPISODES)
    planned = 1 if meta["config"].get("strategy") == "uniform" else meta["config"]["episodes"]
    if len(rec.data["episodes"]) < planned:
        rec.missing.append(f"{name}: {len(rec.data['episodes'])} of {planned} episodes done")
    if (path / BEST_POLICY).is_file():
        rec.data["policy"] = _json(path / BEST_POLICY)
        rec.data["policy_source"] = path / BEST_POLICY
    elif rec.data["episodes"]:
        rec.data["policy"] = max(rec.data["episodes"], key=lambda e: e["reward"])["policy"]
        rec.data["policy_source"] = path / EPISODES
    if (path / FINAL_FILE).is_file():
        rec.data["final"] = _json(path / FINAL_FILE)
        rec.sources.append(path / FINAL_FILE)
        if (path / "final" / SUMMARY).is_file():
            rec.data["final_curve"] = _json(path / "final" / SUMMARY).get("curve")
            rec.sources.append(path / "final" / SUMMARY)
    else:
        rec.data["no_final"] = True       # unless a compare among the runs evaluated it
    return rec


def load_compare(path: Path, name: str) -> RunRecord:
    meta = _json(path / COMPARE_FILE)
    rec = RunRecord("compare", name, path, {"rows": meta["rows"], "curves": {},
                                            "paired": meta.get("paired", [])},
                    sources=[path / COMPARE_FILE], provenance=meta.get("provenance"))
    done = {row["name"] for row in meta["rows"]}
    for name_left in [c for c in meta.get("candidates", []) if c not in done]:
        rec.missing.append(f"{name}: {name_left} not evaluated yet")
    for row in meta["rows"]:
        s = Path(row.get("certification_dir", path / "runs" / row["name"])) / SUMMARY
        if s.is_file():
            rec.data["curves"][row["name"]] = _json(s).get("curve")
            rec.sources.append(s)
    return rec


def load_bench(path: Path, name: str) -> RunRecord:
    meta = _json(path / BENCH_CONFIG)
    results_path, units = path / RESULTS_FILE, path / UNITS_FILE
    fresh = results_path.is_file() and (not units.is_file() or
                                        results_path.stat().st_mtime >= units.stat().st_mtime)
    results = _json(results_path) if fresh else collect_results(path)
    rec = RunRecord("bench", name, path, {"config": meta["config"], "results": results},
                    sources=[results_path if fresh else path / "cells", path / BENCH_CONFIG],
                    provenance=meta.get("provenance"))
    done, planned = results.get("units_done"), results.get("units_planned")
    if done is not None and planned is not None and done < planned:
        rec.missing.append(f"{name}: benchmark unfinished, {done} of {planned} units "
                           "(the tables show the finished cells)")
    return rec


def load_dq(path: Path, name: str) -> RunRecord:
    meta = _json(path / DQ_FILE)
    return RunRecord("dq", name, path, {"rows": meta["rows"]}, sources=[path / DQ_FILE],
                     provenance=meta.get("provenance"))


def load_demo(path: Path, name: str) -> RunRecord:
    meta = _json(path / DEMO_FILE)
    rec = RunRecord("demo", name, path, meta, sources=[path / DEMO_FILE],
                    provenance=meta.get("provenance"))
    if not meta.get("finished"):
        rec.missing.append(f"{name}: the demo has not finished (last step: "
                           f"{meta.get('step', 'unknown')})")
    return rec


def load_model_run(path: Path, name: str) -> RunRecord:
    """A train / quantize output: the checkpoint's metadata (safetensors header only)."""
    ckpt = path / CHECKPOINT
    meta = read_metadata(ckpt)
    return RunRecord("model", name, path, meta, sources=[ckpt], provenance=meta.get("provenance"))


def load_amplification(path: Path, name: str) -> RunRecord:
    """``robustq amplification``'s JSON (``path``: its directory or the file itself)."""
    file = path if path.is_file() else path / AMPLIFICATION_FILE
    meta = _json(file)
    if not isinstance(meta.get("models"), dict):
        raise RobustqError(f"{file}: not a robustq amplification result (no 'models')")
    return RunRecord("amplification", name, file, meta, sources=[file],
                     provenance=meta.get("provenance"))


def load_run(path: Path, name: str) -> RunRecord:
    """A directory with ``run.json``, read by its kind: a certification (``certify``, ``irs``)
    or a model-making run (``train``, ``quantize``, ``shared``: its checkpoint, once there)."""
    kind = _json(path / RUN).get("kind", "certify")
    if kind in ("train", "quantize", "shared"):
        if not (path / CHECKPOINT).is_file():
            rec = RunRecord("model", name, path, {}, sources=[path / RUN])
            rec.missing.append(f"{name}: the {kind} run has not finished (no model.safetensors)")
            return rec
        return load_model_run(path, name)
    return load_certify(path, name)


# marker file -> loader; a directory with a marker is one run (its subdirectories belong to it)
_MARKERS = ((SEARCH_FILE, load_search), (COMPARE_FILE, load_compare),
            (BENCH_CONFIG, load_bench), (DQ_FILE, load_dq), (RUN, load_run),
            (AMPLIFICATION_FILE, load_amplification), (CHECKPOINT, load_model_run))


def discover(paths: list[str | Path]) -> list[RunRecord]:
    """Every run under ``paths`` (directories, or an amplification JSON file), in a stable
    order. Raises ``RobustqError`` for a path that does not exist or holds no robustq results."""
    records: list[RunRecord] = []
    for p in map(Path, paths):
        if p.is_file() and p.suffix == ".json":
            records.append(load_amplification(p, p.stem))
            continue
        if not p.is_dir():
            raise RobustqError(f"{p}: no such run directory")
        found = 0
        for root, dirs, files in os.walk(p):
            dirs.sort()
            here = Path(root)
            name = str(here.relative_to(p.parent)) if here != p else p.name
            if DEMO_FILE in files:
                records.append(load_demo(here, name))
                found += 1
            for marker, loader in _MARKERS:
                if marker in files:
                    records.append(loader(here, name))
                    found += 1
                    dirs.clear()            # the run's own subdirectories belong to it
                    break
        if not found:
            raise RobustqError(f"{p}: holds no robustq results (looked for "
                               f"{', '.join(m for m, _ in _MARKERS)}, demo.json)")
    compared = {row.get("search_dir") for r in records if r.kind == "compare"
                for row in r.data["rows"]}
    for r in records:
        if r.data.get("no_final") and str(r.path.resolve()) not in compared:
            r.missing.append(f"{r.name}: no test-split evaluation yet (final.json, or a "
                             "compare row of its best policy)")
    return records
