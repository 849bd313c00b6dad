"""Statistics across certification runs: paired differences of two runs over the same
images (per-image certified radius and correctness), with t intervals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustq.certify.metrics import PairedDifference, certified_radii, paired_difference
from robustq.certify.rundir import read_rows
from robustq.utils.errors import RobustqError


def compare_runs(run_a: str | Path, run_b: str | Path, confidence: float = 0.95,
                 common: bool = False) -> dict[str, PairedDifference]:
    """Paired differences a - b of two certification runs over the same images: ``acr`` (per-image
    certified radius, 0 where wrong) and ``smoothed_accuracy`` (per-image correctness), each with
    a ``confidence`` t interval (``paired_difference``). Raises ``RobustqError`` when the runs
    did not certify the same images with the same labels; with ``common``, pairs the images both
    runs certified so far (e.g. an unfinished run; ``.images`` says how many)."""
    a = {r["idx"]: r for r in read_rows(run_a)}
    b = {r["idx"]: r for r in read_rows(run_b)}
    if common:
        a = {i: r for i, r in a.items() if i in b}
        b = {i: r for i, r in b.items() if i in a}
    if a.keys() != b.keys() or any(a[i]["label"] != b[i]["label"] for i in a):
        raise RobustqError(f"{run_a} and {run_b} certified different images; a paired "
                           f"comparison needs the same ones ({len(a)} and {len(b)} rows)")
    if len(a) < 2:
        raise RobustqError(f"{run_a}: a paired comparison needs at least 2 certified images")
    order = sorted(a, key=int)

    def per_image(rows: dict[str, dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        preds = [int(rows[i]["predict"]) for i in order]
        labels = [int(rows[i]["label"]) for i in order]
        radii = certified_radii(preds, labels, [float(rows[i]["radius"]) for i in order])
        return radii, (np.asarray(preds) == np.asarray(labels)).astype(float)

    (ra, ca), (rb, cb) = per_image(a), per_image(b)
    return {"acr": paired_difference(ra, rb, confidence),
            "smoothed_accuracy": paired_difference(ca, cb, confidence)}


def pairwise_differences(runs: Sequence[tuple[str, str | Path]], confidence: float = 0.95
                         ) -> list[dict[str, Any]]:
    """``compare_runs`` for every later run against every earlier one (name, directory), as
    JSON-ready rows: ``{"a", "b", "images", "acr": {...}, "smoothed_accuracy": {...}}``, each
    difference a - b with ``mean``, ``low``, ``high`` and ``significant``."""
    out = []
    for i, (name_b, dir_b) in enumerate(runs):
        for name_a, dir_a in runs[i + 1:]:
            d = compare_runs(dir_a, dir_b, confidence)
            out.append({"a": name_a, "b": name_b, "images": d["acr"].images,
                        "confidence": confidence,
                        **{k: {"mean": v.mean, "low": v.low, "high": v.high,
                               "significant": v.significant} for k, v in d.items()}})
    return out
