"""Summaries of a benchmark run, computed from its stored per-image units (never the reverse).

``summarize_run(out)`` returns one record per model (clean accuracy, AR per attack, WCAR,
gradient-masking flag, per-corruption accuracies, CE/mCE against the FP model, mNR, systematic
accuracies, ACC_s and its std, throughput per family) and writes ``results.json`` and
``results.csv`` atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robustq.bench import metrics
from robustq.bench.findings import check_findings
from robustq.bench.runner import CONFIG_FILE, RESULTS_FILE, UNITS_FILE, BenchConfig, unit_name
from robustq.bench.systematic import VARIANTS
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_csv, atomic_write_json
from robustq.utils.provenance import provenance

CSV_COLUMNS = ["model", "method", "bits", "clean_accuracy", "wcar", "wcar_gradient", "masking",
               "mce", "mnr", "acc_s", "acc_s_std"]


def load_cell(out: Path, model: str, family: str, name: str) -> np.ndarray | None:
    """The stored per-image correctness of one unit of run ``out`` (None when not run yet)."""
    path = out / "cells" / model / family / f"{unit_name(name)}.npy"
    return np.load(path, allow_pickle=False) if path.is_file() else None


def _model_record(out: Path, cfg: BenchConfig, key: str, method: str,
                  bits: int) -> dict[str, Any] | None:
    clean = load_cell(out, key, "clean", "clean")
    if clean is None:
        return None
    rec: dict[str, Any] = {"model": key, "method": method, "bits": bits,
                           "clean_accuracy": float(clean.mean())}
    if "adversarial" in cfg.families:
        pos = cfg.attack_positions()
        grad = {a.label: load_cell(out, key, "adversarial", a.label) for a in cfg.attacks()}
        grad = {k: v for k, v in grad.items() if v is not None}
        rec["ar"] = {k: metrics.adversarial_robustness(clean[pos], v) for k, v in grad.items()}
        rec["wcar_gradient"] = metrics.wcar(clean[pos], grad) if grad else None
        aa_pos = cfg.autoattack_positions()
        within = cfg.autoattack_within_attacks()
        for label in cfg.autoattack_labels():          # none without AutoAttack images
            aa = load_cell(out, key, "adversarial", label)
            if aa is None:
                continue
            rec["ar"][label] = metrics.adversarial_robustness(clean[aa_pos], aa)
            subset = {k: v[within] for k, v in grad.items()} | {label: aa}
            rec["wcar"] = metrics.wcar(clean[aa_pos], subset)
            details = out / "cells" / key / "adversarial" / f"{unit_name(label)}.json"
            d = json.loads(details.read_text()) if details.is_file() else {}
            rec.setdefault("autoattack", {})[label] = d
            # Square (black box) broke points every white-box stage left correct: masking
            rec["masking"] = bool(d.get("square_extra", 0) > 0)
    if "natural" in cfg.families:
        acc = {c: [float(u.mean()) for s in cfg.severities
                   if (u := load_cell(out, key, "natural", f"{c}-s{s}")) is not None]
               for c in cfg.corruptions}
        rec["corruption_accuracy"] = {c: v for c, v in acc.items() if len(v) == len(cfg.severities)}
        if rec["corruption_accuracy"]:
            rec["mnr"] = metrics.mnr(rec["corruption_accuracy"])
            rec["corruption_ranking"] = metrics.corruption_ranking(rec["corruption_accuracy"])
    if "systematic" in cfg.families:
        sys_acc = {v: float(u.mean()) for v in VARIANTS
                   if (u := load_cell(out, key, "systematic", v)) is not None}
        rec["systematic_accuracy"] = sys_acc
        if sys_acc:
            rec["acc_s"], rec["acc_s_std"] = metrics.systematic(sys_acc)
    return rec


def _units(out: Path) -> list[dict[str, Any]]:
    path = out / UNITS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _family(unit: dict[str, Any]) -> str:
    return "autoattack" if unit["unit"].startswith("autoattack") else unit["family"]


def throughput(out: Path) -> dict[str, float]:
    """Images per second of each family (and of AutoAttack alone): the median over its units of
    images / seconds, from ``units.jsonl`` (a median, so a unit that also loaded or fine-tuned
    its model, or ran while the machine was busy or the job paused, does not skew it); plus the
    summed seconds of all units (``total_seconds``)."""
    return _throughput(_units(out))


def family_seconds(out: Path) -> dict[str, float]:
    """Seconds each family took: the sum over its units in ``units.jsonl`` (AutoAttack apart
    from the other attacks). A sum of recorded unit times, so it includes a model's loading or
    fine-tuning where a unit did that, and any time the machine spent on other jobs."""
    return _family_seconds(_units(out))


def _throughput(units: list[dict[str, Any]]) -> dict[str, float]:
    rates: dict[str, list[float]] = {}
    for u in units:
        if u["seconds"] > 0:
            rates.setdefault(_family(u), []).append(u["images"] / u["seconds"])
    return {f: round(float(np.median(r)), 2) for f, r in rates.items()} | {
        "total_seconds": round(sum(u["seconds"] for u in units), 1)}


def _family_seconds(units: list[dict[str, Any]]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for u in units:
        family = _family(u)
        sums[family] = sums.get(family, 0.0) + u["seconds"]
    return {f: round(t, 1) for f, t in sums.items()}


def expected_units(cfg: BenchConfig) -> int:
    """How many units one model of the grid has (the clean pass included)."""
    n = 1
    if "adversarial" in cfg.families:
        n += len(cfg.attacks()) + (len(cfg.autoattack_eps) if cfg.autoattack_images else 0)
    if "natural" in cfg.families:
        n += len(cfg.corruptions) * len(cfg.severities)
    if "systematic" in cfg.families:
        n += len(VARIANTS)
    return n


def collect_results(out: str | Path) -> dict[str, Any]:
    """The run's summary computed from its stored units (nothing is written); models and units
    not run yet are simply absent, and ``units_done`` / ``units_planned`` say how far it got."""
    out = Path(out)
    if not (out / CONFIG_FILE).is_file():
        raise RobustqError(f"{out}: not a benchmark directory (no {CONFIG_FILE})")
    cfg = BenchConfig.from_json(json.loads((out / CONFIG_FILE).read_text())["config"])
    records = [r for k, m, b in cfg.models() if (r := _model_record(out, cfg, k, m, b)) is not None]
    fp = next((r for r in records if r["model"] == "fp"), None)
    for r in records:
        if fp and r.get("corruption_accuracy") and fp.get("corruption_accuracy"):
            common = {c: r["corruption_accuracy"][c] for c in fp["corruption_accuracy"]
                      if c in r["corruption_accuracy"]}
            r["ce"], r["mce"] = metrics.corruption_errors(common, fp["corruption_accuracy"])
    units = _units(out)                                 # units.jsonl, read once
    result = {"models": records, "throughput_images_per_s": _throughput(units),
              "seconds_per_family": _family_seconds(units),
              "images": cfg.images, "attack_images": len(cfg.attack_positions()),
              "autoattack_images": cfg.autoattack_images,
              "mce_reference": "FP model of the same architecture (the run's checkpoint)",
              "provenance": provenance(cfg.seed, cfg.to_json())}
    result["findings"] = check_findings(result)
    result["units_planned"] = expected_units(cfg) * len(cfg.models())
    result["units_done"] = sum(1 for _ in (out / "cells").glob("*/*/*.npy"))
    return result


def summarize_run(out: str | Path) -> dict[str, Any]:
    """``collect_results`` written to ``results.json`` and ``results.csv`` (atomically)."""
    out = Path(out)
    result = collect_results(out)
    records = result["models"]
    atomic_write_json(out / RESULTS_FILE, result)
    atomic_write_csv(out / "results.csv", CSV_COLUMNS, records)
    return result
