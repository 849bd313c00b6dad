"""RobustMQ's four findings (spec 04), re-measured on a benchmark's results instead of assumed.

``check_findings(result)`` takes ``summarize_run``'s output and returns one record per claim
with ``holds`` (True / False / None when the run lacks the data), a one-line verdict and the
numbers behind it. Adversarial robustness is WCAR where AutoAttack ran, else the gradient-only
WCAR; natural robustness is mNR; systematic robustness is ACC_s. A half whose metric is the same
for every model (WCAR 0 when the largest budget breaks every image) is undecided; a claim holds
when every half holds and fails when any decided half fails.

``pool_results({"resnet20": result, "resnet56": ...})`` joins several runs (one per
architecture) into one result whose models carry their ``group``: ``check_findings`` then
compares every quantized model with the FP model of its own group, fits the bit-width trends
per (group, method), and ranks corruptions and pipelines over all models together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr


def _adv_metric(models: list[dict]) -> str:
    """WCAR over every attack (AutoAttack included) when every model has it, else the
    FGSM/PGD-only WCAR for all: one metric for every model, never a mix."""
    return "wcar" if models and all(r.get("wcar") is not None for r in models) else \
        "wcar_gradient"


def _known(models: list[dict], key) -> list[tuple[dict, float]]:
    """(model, value) for every model whose ``key`` is a number (not None, not NaN)."""
    return [(r, v) for r in models if (v := key(r)) is not None and not np.isnan(v)]


def _at_a_floor(models: list[dict], key) -> bool:
    """Every model has the same value (e.g. WCAR 0 when the largest budget breaks every image):
    a comparison on it cannot tell the models apart, so its half of a finding is undecided."""
    values = {v for _, v in _known(models, key)}
    return len(values) == 1 and len(models) > 1


def _verdict(parts: list[bool | None]) -> bool | None:
    """All parts hold -> True; any decided part fails -> False; else None (undecided)."""
    if any(p is False for p in parts):
        return False
    return None if any(p is None for p in parts) else True


def _group(r: dict) -> str:
    return r.get("group", "")


def _vs_fp(models: list[dict], key, higher: bool) -> dict[str, Any] | None:
    """How the quantized models compare with the FP model of their group; ``fp`` is the FP
    models' mean over the groups (the FP value itself for one run)."""
    vals = {(_group(r), r["model"]): v for r, v in _known(models, key)}
    fps = {g: v for (g, m), v in vals.items() if m == "fp"}
    q = [(g, v) for (g, m), v in vals.items() if m != "fp" and g in fps]
    if not q:
        return None
    share = float(np.mean([(v > fps[g]) if higher else (v < fps[g]) for g, v in q]))
    return {"fp": float(np.mean(list(fps.values()))),
            "quantized_mean": float(np.mean([v for _, v in q])),
            "share_of_quantized_models": share}


def _trend(models: list[dict], key) -> dict[str, float] | None:
    """Spearman correlation of bit-width with the metric, per method (per group and method when
    pooled; quantized models only)."""
    out = {}
    for g, method in sorted({(_group(r), r["method"]) for r in models if r["method"] != "fp"}):
        pts = [(r["bits"], v) for r, v in _known(models, key)
               if r["method"] == method and _group(r) == g]
        if len(pts) >= 3 and len({b for b, _ in pts}) >= 3 and len({v for _, v in pts}) >= 2:
            rho = spearmanr(*zip(*pts, strict=True)).statistic
            out[f"{g}/{method}" if g else method] = float(rho)
    return out or None


def pool_results(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One result of the models of several runs, each model labelled with its run's key as
    ``group`` (e.g. the architecture); the runs' own fields are not carried over."""
    return {"models": [{**r, "group": g} for g, res in results.items() for r in res["models"]]}


def check_findings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The four findings on ``result["models"]`` (one run, or runs joined by ``pool_results``)."""
    models = result["models"]
    metric = _adv_metric(models)

    def _adv(r: dict) -> float | None:
        return r.get(metric)

    adv, nat = _vs_fp(models, _adv, higher=True), _vs_fp(models, lambda r: r.get("mnr"), False)
    sys_ = _vs_fp(models, lambda r: r.get("acc_s"), higher=False)
    floor = _at_a_floor(models, _adv)
    f1 = {"claim": "1. quantized models are more robust to attacks than FP, less robust to natural "
                   "corruptions and systematic noise",
          "adversarial_metric": metric, "adversarial_at_a_floor": floor, "adversarial": adv,
          "natural": nat, "systematic": sys_,
          "holds": _verdict([None if p is None or (p is adv and floor)
                             else p["share_of_quantized_models"] > 0.5
                             for p in (adv, nat, sys_)])}
    t_adv, t_nat = _trend(models, _adv), _trend(models, lambda r: r.get("mnr"))
    t_sys = _trend(models, lambda r: r.get("acc_s"))
    f2 = {"claim": "2. more bits: less adversarial robustness, more natural and systematic "
                   "robustness (Spearman rho of bits vs metric, per method)",
          "adversarial": t_adv, "natural": t_nat, "systematic": t_sys,
          "holds": _verdict([None if t is None else sign * np.mean(list(t.values())) > 0
                             for t, sign in ((t_adv, -1), (t_nat, 1), (t_sys, 1))])}
    ranks: dict[str, list[int]] = {}
    for r in models:
        for i, c in enumerate(r.get("corruption_ranking", [])):
            ranks.setdefault(c, []).append(i)
    mean_rank = {c: float(np.mean(v)) for c, v in ranks.items()}
    order = sorted(mean_rank, key=mean_rank.get)
    f3 = {"claim": "3. impulse noise and glass blur hurt most, brightness least",
          "mean_rank_most_harmful_first": {c: round(mean_rank[c], 2) for c in order},
          "holds": None if not order or not {"impulse_noise", "glass_blur", "brightness"} <= set(
              order) else (set(order[:2]) == {"impulse_noise", "glass_blur"}
                           and order[-1] == "brightness")}
    sys_acc: dict[str, list[float]] = {}
    for r in models:
        for v, a in r.get("systematic_accuracy", {}).items():
            sys_acc.setdefault(v, []).append(a)
    mean_acc = {v: float(np.mean(a)) for v, a in sys_acc.items()}
    worst = sorted(mean_acc, key=mean_acc.get)
    resize = [v for v in worst if v.startswith("resize")]
    gentle = ("bilinear", "linear", "bicubic", "cubic", "area")
    f4 = {"claim": "4. nearest-neighbour interpolation hurts most; bilinear, cubic and area least",
          "mean_accuracy_worst_first": {v: round(mean_acc[v], 4) for v in worst},
          "holds": None if len(resize) < 4 else (
              "nearest" in resize[0] and all(v.rsplit("-", 1)[1] in gentle for v in resize[-3:]))}
    return [f1, f2, f3, f4]
