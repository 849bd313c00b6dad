"""The certification run directory: its files, a validated reader for each, and the one
function that creates or resumes it.

- ``run.json``: configuration, data set, image list, model, provenance (``records.claim``);
- ``certify.tsv``: one line per image, appended and flushed as it is certified;
- ``summary.json``: ACR, certified accuracy at radii, smoothed accuracy, wall time;
- ``irs_cache.bin`` (with a cache): f's estimation predictions, ``n`` int16 per image, in the
  order of ``certify.tsv``; with ``certify.tsv`` and ``run.json`` it is the IRS cache.

Every reader validates what it reads and names file and row: a damaged directory is refused in
one line, never half-used. A resumed run rewrites ``certify.tsv`` atomically (the old file or the
complete new one), so no instant of a kill loses finished rows.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from robustq.certify.config import CertifyConfig
from robustq.certify.metrics import accuracy_curve, summarize
from robustq.data.embedded import EMBEDDED
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_text, file_sha256
from robustq.utils.records import RUN_FILE, claim, first_difference, read_record

TSV = "certify.tsv"
CACHE = "irs_cache.bin"
RUN = RUN_FILE
SUMMARY = "summary.json"
COLUMNS = ["idx", "label", "predict", "radius", "correct", "time", "samples", "p_lower", "count",
           "seed"]
IRS_COLUMNS = COLUMNS + ["zeta", "disagreements"]
_INTS = ("idx", "label", "predict", "correct", "samples", "count", "seed")
_FLOATS = ("radius", "time", "p_lower")


def _check_row(row: dict[str, str], num_classes: int | None) -> str | None:
    """What is wrong with one row, or None."""
    try:
        ints = {k: int(row[k]) for k in _INTS}
        floats = {k: float(row[k]) for k in _FLOATS}
    except (KeyError, TypeError, ValueError):
        return "a missing or non-numeric field"
    if not all(math.isfinite(v) for v in floats.values()):
        return "a non-finite number"
    top = num_classes if num_classes is not None else 2 ** 15
    checks = [(ints["idx"] >= 0, "a negative image index"),
              (0 <= ints["label"] < top, f"label {ints['label']} out of range"),
              (-1 <= ints["predict"] < top, f"class {ints['predict']} out of range"),
              (0 <= floats["p_lower"] <= 1, f"p_lower {floats['p_lower']} outside [0, 1]"),
              (floats["radius"] >= 0, f"negative radius {floats['radius']}"),
              (ints["correct"] == int(ints["predict"] == ints["label"]), "a wrong 'correct'")]
    return next((msg for ok, msg in checks if not ok), None)


def read_tsv(path: Path, num_classes: int | None = None) -> list[dict[str, str]]:
    """The complete rows of a ``certify.tsv`` (a partial last line is ignored), validated:
    header, numbers, class ids (below ``num_classes`` where known), p_lower in [0, 1]."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(complete), delimiter="\t")
    if complete and (reader.fieldnames or [])[: len(COLUMNS)] != COLUMNS:
        raise RobustqError(f"{path}: not a certification table (header {reader.fieldnames})")
    rows = list(reader)
    for k, row in enumerate(rows, 2):
        problem = _check_row(row, num_classes)
        if problem:
            raise RobustqError(f"{path}: line {k} has {problem}; the run directory is damaged: "
                               "remove it or use a new --out")
    return rows


def write_tsv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, delimiter="\t", extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# engine names written before engines named the classifier they certify (robustq <= a5473f6)
LEGACY_ENGINES = {"torch (eager)": "checkpoint", "torch (frozen, traced/compiled)": "checkpoint",
                  "onnxruntime": "deployed"}


def sampled_classifier(model: Any) -> Any:
    """What a resumed certification must sample as before: the model record without the
    engine that ran it (``torch`` and ``compile`` compute the same classifier, up to float
    rounding), the classifier named for records of older versions, and the device the noise is
    drawn on (records without one: the CPU). run.json keeps the first engine's record."""
    if not isinstance(model, dict):
        return model
    ident = {"device": "cpu", **{k: v for k, v in model.items() if k not in ("engine", "runtime")}}
    ident["checkpoint"] = checkpoint_identity(ident)
    ident.pop("checkpoint_sha256", None)
    if "classifier" not in ident and model.get("engine") in LEGACY_ENGINES:
        ident["classifier"] = LEGACY_ENGINES[model["engine"]]
    if ident.get("classifier") == "checkpoint":       # fp32 ONNX Runtime: the file is the engine's
        for key in ("deployed", "source"):
            ident.pop(key, None)
    return ident


def checkpoint_identity(model: dict[str, Any]) -> Any:
    """The checkpoint by content: its recorded SHA-256, or for a record without one (robustq
    <= 2026-12-02) the hash of the file at the recorded path where it still exists, else that
    path. So a run resumes after its checkpoint moved (a run kept in git, the checkpoint beside
    it), and not after the file at the same path changed."""
    if model.get("checkpoint_sha256"):
        return model["checkpoint_sha256"]
    path = model.get("checkpoint")
    return file_sha256(path) if isinstance(path, str) and Path(path).is_file() else path


def resolved_source(source: Any) -> Any:
    """A data source as recorded in run.json: an existing path resolved (so a run can be reused
    or resumed from another working directory), anything else (``embedded``) as it is."""
    if isinstance(source, str) and source not in EMBEDDED and Path(source).exists():
        return str(Path(source).resolve())
    return source


def same_data(data: Any) -> Any:
    """The data record with its source resolved: a record written with a relative source
    (robustq <= a5473f6) matches from the directory it was written in."""
    return {**data, "source": resolved_source(data.get("source"))} if isinstance(data, dict) \
        else data


def same_config(config: Any) -> Any:
    """The config with the fields added since a record was written at their defaults (a run
    recorded before ``offset`` existed started at image 0), as ``search`` resumes its own."""
    return {**CertifyConfig().to_json(), **config} if isinstance(config, dict) else config


# what makes a recorded run the one asked for, and how each entry is compared
SAME_RUN = ("config", "data", "model", "cache_source")
RUN_IDENTITY = {"model": sampled_classifier, "data": same_data, "config": same_config}


def prepare(out: Path, run_meta: dict[str, Any], columns: list[str], row_bytes: int,
            cache: bool, num_classes: int | None) -> list[dict[str, str]]:
    """Create or validate ``out`` for a (resumed) run; return the rows already done. A resume
    keeps the rows that have a complete line (and cache row), rewritten atomically."""
    out.mkdir(parents=True, exist_ok=True)
    resumed = claim(out / RUN, run_meta, SAME_RUN, what="certification run",
                    identity=RUN_IDENTITY)
    rows = read_tsv(out / TSV, num_classes) if resumed else []
    if cache:
        have = (out / CACHE).stat().st_size // row_bytes if (out / CACHE).is_file() else 0
        rows = rows[:have]
        with open(out / CACHE, "ab") as f:
            f.truncate(len(rows) * row_bytes)
    write_tsv(out / TSV, columns, rows)
    return rows


def finished_rows(out: Path, run_meta: dict[str, Any], total: int, row_bytes: int, cache: bool,
                  num_classes: int | None) -> list[dict[str, str]] | None:
    """The rows of the finished run of ``run_meta`` in ``out`` (``summary.json`` written, all
    ``total`` images certified, with ``cache`` every cache row there), read without taking the
    directory, so that processes can share a finished run while nothing writes it; None when
    there is no such run (``prepare`` then creates, resumes or refuses it, naming why)."""
    if not (out / RUN).is_file() or not (out / SUMMARY).is_file():
        return None
    try:
        old = read_record(out / RUN, SAME_RUN)
        rows = read_tsv(out / TSV, num_classes)
        read_record(out / SUMMARY, ("wall_time_s",))  # a damaged summary is written again
    except RobustqError:
        return None                                   # prepare says what is wrong
    if first_difference(old, run_meta, SAME_RUN, RUN_IDENTITY) is not None or len(rows) != total:
        return None
    if cache and not (old.get("cache") and (out / CACHE).is_file()
                      and (out / CACHE).stat().st_size >= total * row_bytes):
        return None
    return rows


def recorded_summary(out: Path, rows: list[dict[str, str]], radii: tuple[float, ...]
                     ) -> dict[str, Any]:
    """The summary of a finished run's ``rows`` at ``radii``, with the wall time its
    ``summary.json`` recorded (the time of the run, not of this reading)."""
    summary = summarize_rows(rows, radii)
    summary["wall_time_s"] = read_record(out / SUMMARY, ("wall_time_s",))["wall_time_s"]
    return summary


def load_cache(cache_dir: Path, num_classes: int | None = None
               ) -> tuple[dict[str, Any], list[dict[str, str]], np.ndarray]:
    """The run metadata, per-image rows and f's predictions ``(images, n)`` of an IRS cache,
    validated (class ids below ``num_classes`` where known)."""
    if not (cache_dir / RUN).is_file() or not (cache_dir / CACHE).is_file():
        raise RobustqError(f"{cache_dir}: not an IRS cache (needs {RUN}, {TSV} and {CACHE}; "
                           "certify with --cache to make one)")
    meta = read_record(cache_dir / RUN, ("config", "data"))
    n = meta["config"].get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RobustqError(f"{cache_dir / RUN}: config n must be a positive integer, got {n!r}")
    rows = read_tsv(cache_dir / TSV, num_classes)
    preds = np.fromfile(cache_dir / CACHE, dtype=np.int16)
    complete = min(len(rows), preds.size // n)
    preds = preds[: complete * n].reshape(complete, n)
    top = num_classes if num_classes is not None else 2 ** 15
    if preds.size and not (preds.min() >= 0 and preds.max() < top):
        raise RobustqError(f"{cache_dir / CACHE}: class ids out of range "
                           f"[{preds.min()}, {preds.max()}]; the cache is damaged")
    return meta, rows[:complete], preds


def summarize_rows(rows: list[dict[str, str]], radii: tuple[float, ...]) -> dict[str, Any]:
    """ACR, certified accuracy at ``radii``, the certified-accuracy curve (51 radii), time and
    samples of per-image rows as read from ``certify.tsv`` (a run's or a partial run's)."""
    preds = [int(r["predict"]) for r in rows]
    labels = [int(r["label"]) for r in rows]
    rads = [float(r["radius"]) for r in rows]
    summary = summarize(preds, labels, rads, radii)
    grid, curve = accuracy_curve(preds, labels, rads, points=51)
    summary.update(curve={"radius": grid.round(4).tolist(), "certified_accuracy": curve.tolist()},
                   certify_time_s=round(sum(float(r["time"]) for r in rows), 2),
                   samples=int(sum(int(r["samples"]) for r in rows)))
    return summary


def read_rows(out_dir: str | Path) -> list[dict[str, str]]:
    """The complete per-image rows of a (possibly unfinished) run in ``out_dir``, validated."""
    return read_tsv(Path(out_dir) / TSV)
