"""Each quantized model minus the FP model of its run, image by image: RobustMQ's finding 1
(quantized models more robust to attacks, less to corruptions and pipelines) with paired 95%
intervals instead of a comparison of two means.

Every unit of a run is evaluated on the same evenly spaced test images (attacks on a nested
subset), so a per-image score of one model can be paired with the same image's score under the
FP model. The scores, each in [0, 1] per image:

- ``natural``: the share of the corruption x severity units the image survives (only when all
  of them are stored);
- ``systematic``: the share of the decoding and resizing pipelines it survives (all stored);
- each FGSM/PGD label, and each AutoAttack label: 1 when the attacked image is classified
  correctly (robust accuracy, *not* conditioned on the clean-correct images as AR is);
- ``worst FGSM/PGD``: correct under every FGSM/PGD unit (the per-image form of WCAR over the
  gradient attacks, again unconditioned);
- ``pgd-linf-2/255 on AutoAttack's images``: PGD at each AutoAttack budget, on AutoAttack's
  images only, to set beside AutoAttack's own score.

The interval is ``certify.metrics.paired_difference`` (a t interval over images); it covers the
expected per-image difference over images drawn like these, not the spread over training runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robustq.bench.runner import CONFIG_FILE, BenchConfig
from robustq.bench.systematic import VARIANTS
from robustq.bench.tables import load_cell
from robustq.certify.metrics import paired_difference
from robustq.utils.errors import RobustqError

WORST = "worst FGSM/PGD"


def _mean_of_units(cells: list[np.ndarray | None]) -> np.ndarray | None:
    """Per-image share of the units survived, or None unless every unit is stored."""
    if not cells or any(c is None for c in cells):
        return None
    return np.mean([np.asarray(c, float) for c in cells], axis=0)


def per_image_scores(out: str | Path, cfg: BenchConfig, key: str) -> dict[str, np.ndarray]:
    """Model ``key``'s per-image scores in run ``out`` (see the module docstring); a score whose
    units are not all stored yet is left out."""
    out = Path(out)
    scores: dict[str, np.ndarray] = {}
    natural = _mean_of_units([load_cell(out, key, "natural", f"{c}-s{s}")
                              for c in cfg.corruptions for s in cfg.severities])
    systematic = _mean_of_units([load_cell(out, key, "systematic", v) for v in VARIANTS])
    for family, value in (("natural", natural), ("systematic", systematic)):
        if family in cfg.families and value is not None:
            scores[family] = value
    if "adversarial" in cfg.families:
        for label in [a.label for a in cfg.attacks()] + cfg.autoattack_labels():
            if (cell := load_cell(out, key, "adversarial", label)) is not None:
                scores[label] = np.asarray(cell, float)
        gradient = [scores.get(a.label) for a in cfg.attacks()]
        if gradient and all(g is not None for g in gradient):
            scores[WORST] = np.min(gradient, axis=0)
        scores |= _pgd_on_autoattack_images(cfg, scores)
    return scores


def on_autoattack_images(label: str) -> str:
    """The name of FGSM/PGD unit ``label``'s score restricted to AutoAttack's images."""
    return f"{label} on AutoAttack's images"


def _pgd_on_autoattack_images(cfg: BenchConfig,
                              scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PGD at each AutoAttack budget on AutoAttack's images (a nested subset of PGD's), where
    both units are stored: a gain under PGD that AutoAttack on the same images does not show
    is a weaker attack, not robustness."""
    within = cfg.autoattack_within_attacks()
    out = {}
    for e, label in zip(cfg.autoattack_eps, cfg.autoattack_labels(), strict=False):
        pgd = next((a.label for a in cfg.attacks() if a.name == "pgd" and a.norm == "linf"
                    and a.eps == e), None)
        if label in scores and pgd in scores:
            out[on_autoattack_images(pgd)] = scores[pgd][within]
    return out


def paired_against(scores: dict[str, dict[str, np.ndarray]], reference: str = "fp",
                   confidence: float = 0.95) -> list[dict[str, Any]]:
    """One row per (model, score) that both the model and ``reference`` have: the mean per-image
    difference model minus reference with its paired ``confidence`` interval, in the units of
    the score (a share of images, 0-1)."""
    if reference not in scores:
        raise RobustqError(f"no scores for the reference model {reference!r}")
    ref = scores[reference]
    rows = []
    for model, own in scores.items():
        if model == reference:
            continue
        for name in (n for n in own if n in ref):
            d = paired_difference(own[name], ref[name], confidence)
            rows.append({"model": model, "score": name, "difference": d.mean, "low": d.low,
                         "high": d.high, "images": d.images})
    return rows


def paired_run(out: str | Path, confidence: float = 0.95) -> list[dict[str, Any]]:
    """``paired_against`` for every model of benchmark run ``out``, against its FP model."""
    out = Path(out)
    if not (out / CONFIG_FILE).is_file():
        raise RobustqError(f"{out}: not a benchmark directory (no {CONFIG_FILE})")
    cfg = BenchConfig.from_json(json.loads((out / CONFIG_FILE).read_text())["config"])
    scores = {key: per_image_scores(out, cfg, key) for key, _, _ in cfg.models()}
    return paired_against(scores, "fp", confidence)
