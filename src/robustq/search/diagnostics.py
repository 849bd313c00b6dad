"""What a finished (or running) search's episodes cost, and how finely its reward can rank.

``episode_costs``: medians of each part of an episode (fine-tuning or re-bitting, reward and its
certification, agent) from ``episodes.jsonl``. ``reward_precision``: for pairs of episodes with
different policies, the paired 95% interval of their held-out ACR difference (IRS radii per
image, the same images and noise in every episode), on the first k certification images for
each k asked: the half-width a reward difference must beat to mean anything.
``pareto_front``: the episodes no other episode beats on every objective (ACR, clean
accuracy, BitOPs by default). ``proposal_gain``: how much better, on average, a strategy's
proposals are than random ones (Welch's interval): whether it learns, free of the winner's
curse that biases a best-of-N. ``rank_agreement``: Spearman's rho between a cheap and a dear
score of the same policies, with a bootstrap interval over policies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata, spearmanr, ttest_ind

from robustq.certify.metrics import certified_radii, paired_difference
from robustq.certify.rundir import read_rows
from robustq.search.search import read_episodes
from robustq.utils.errors import RobustqError

PARTS = ("finetune_s", "reward_s", "certify_s", "agent_s", "episode_s")


def episode_costs(search_dir: str | Path) -> dict[str, Any]:
    """Median seconds of each part of an episode over the logged episodes, their count, and
    how many episodes of that median fit in two hours."""
    lines = read_episodes(Path(search_dir))
    if not lines:
        raise RobustqError(f"{search_dir}: no episodes logged")
    med = {p: float(np.median([ln[p] for ln in lines])) for p in PARTS
           if all(p in ln for ln in lines)}
    return {"episodes": len(lines), "median_s": med,
            "episodes_per_2h": int(7200 // med["episode_s"]) if med["episode_s"] > 0 else None}


def episode_radii(search_dir: str | Path, episode: int) -> np.ndarray:
    """Per-image certified radii (0 where wrong or abstained) of one episode's IRS run, in
    image order."""
    rows = sorted(read_rows(Path(search_dir) / "episodes" / f"{episode:04d}" / "irs"),
                  key=lambda r: int(r["idx"]))
    return certified_radii([int(r["predict"]) for r in rows], [int(r["label"]) for r in rows],
                           [float(r["radius"]) for r in rows])


def reward_precision(search_dir: str | Path, image_counts: Sequence[int] = (),
                     max_pairs: int = 50) -> list[dict[str, Any]]:
    """For each k in ``image_counts`` (default: all images), the median and largest paired 95%
    half-width of the ACR difference between consecutive episodes with different policies (at
    most ``max_pairs`` pairs), on their first k certification images."""
    lines = read_episodes(Path(search_dir))
    pairs = [(a["episode"], b["episode"]) for a, b in pairwise(lines)
             if a["policy"] != b["policy"]][:max_pairs]
    if not pairs:
        raise RobustqError(f"{search_dir}: no two consecutive episodes with different policies")
    radii = {e: episode_radii(search_dir, e) for pair in pairs for e in pair}
    total = min(len(r) for r in radii.values())
    out = []
    for k in image_counts or (total,):
        if not 2 <= k <= total:
            raise RobustqError(f"image counts must lie in [2, {total}], got {k}")
        halves = [(d.high - d.low) / 2 for d in
                  (paired_difference(radii[a][:k], radii[b][:k]) for a, b in pairs)]
        out.append({"images": k, "pairs": len(pairs), "median_half_width": float(np.median(halves)),
                    "max_half_width": float(np.max(halves))})
    return out


OBJECTIVES = (("acr", 1), ("accuracy", 1), ("bitops_percent", -1))


def pareto_front(lines: Sequence[dict[str, Any]],
                 objectives: Sequence[tuple[str, int]] = OBJECTIVES) -> list[dict[str, Any]]:
    """The non-dominated episodes, by ``objectives`` (key, +1 to maximize or -1 to minimize):
    none is at least as good as another on every objective and better on one. Duplicated
    policies count once; the front is sorted by the last objective."""
    unique = list({json.dumps(ln["policy"], sort_keys=True): ln for ln in lines}.values())
    values = np.array([[sign * ln[key] for key, sign in objectives] for ln in unique])

    def dominated(i: int) -> bool:
        return bool(np.any(np.all(values >= values[i], axis=1)
                           & np.any(values > values[i], axis=1)))

    front = [ln for i, ln in enumerate(unique) if not dominated(i)]
    key, sign = objectives[-1]
    return sorted(front, key=lambda ln: -sign * ln[key])


def best_so_far(lines: Sequence[dict[str, Any]], checkpoints: Sequence[int]) -> list[float]:
    """The highest reward among the first k episodes, for each k in ``checkpoints`` (each at
    most the episodes logged): how fast a strategy finds what it finds."""
    rewards = np.maximum.accumulate([ln["reward"] for ln in lines])
    if any(not 1 <= k <= len(rewards) for k in checkpoints):
        raise RobustqError(f"checkpoints must lie in [1, {len(rewards)}], got {list(checkpoints)}")
    return [float(rewards[k - 1]) for k in checkpoints]


def compare_best(search_dirs: Sequence[str | Path], reference: str | Path) -> list[dict[str, Any]]:
    """Each search's best episode (highest reward) beside the ``reference`` search's best:
    its held-out ACR, accuracy, BitOPs and the paired 95% interval of its ACR minus the
    reference's, per image (IRS radii). Meaningful only for ARQ-rewarded searches that share
    the FP cache and certification settings (the same images and noise in every episode)."""
    def best(d: str | Path) -> dict[str, Any]:
        lines = read_episodes(Path(d))
        if not lines or "acr" not in lines[0]:
            raise RobustqError(f"{d}: no episodes with ARQ's reward logged")
        return max(lines, key=lambda ln: ln["reward"]) | {"episodes": len(lines)}

    ref = best(reference)
    ref_radii = episode_radii(reference, ref["episode"])
    out = []
    for d in search_dirs:
        b = best(d)
        radii = episode_radii(d, b["episode"])
        if len(radii) != len(ref_radii):
            raise RobustqError(f"{d}: {len(radii)} certification images, {reference}: "
                               f"{len(ref_radii)}; compare searches with the same settings")
        diff = paired_difference(radii, ref_radii)
        out.append({"search": str(d), "episodes": b["episodes"], "best_episode": b["episode"],
                    "reward": b["reward"], "acr": b["acr"], "accuracy": b["accuracy"],
                    "bitops_percent": b["bitops_percent"], "acr_minus_reference": diff.mean,
                    "low": diff.low, "high": diff.high})
    return out


def mean_gain(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """mean(a) - mean(b) for two independent samples with Welch's t interval (unequal
    variances; SciPy), and the sample sizes."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise RobustqError(f"a mean gain needs at least 2 values a side, got {len(a)} and {len(b)}")
    ci = ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return {"mean": float(a.mean() - b.mean()), "low": float(ci.low), "high": float(ci.high),
            "n": len(a), "n_baseline": len(b)}


def proposal_gain(search_dir: str | Path, random_acrs: Sequence[float],
                  start: int) -> dict[str, Any]:
    """Held-out ACR of a search's episodes from ``start`` on (after its warm-up) minus that of
    random policies scored with the same settings (``random_acrs``: e.g. a random search's
    episodes and the warm-ups), with Welch's 95% interval. Unlike a best-of-N, the mean is
    not biased upward by the reward's noise; the shared images and noise shift both sides
    alike."""
    lines = read_episodes(Path(search_dir))
    if not lines or "acr" not in lines[0]:
        raise RobustqError(f"{search_dir}: no episodes with ARQ's reward logged")
    return mean_gain([ln["acr"] for ln in lines[start:]], random_acrs) | {"from": start}


def rank_agreement(cheap: Sequence[float], dear: Sequence[float], draws: int = 2000,
                   confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Spearman's rho (SciPy) between two scores of the same policies, and a percentile
    bootstrap interval over policies (resamples in which either score is constant are
    skipped: rho is undefined there). With few policies the interval is wide: it is the
    honest statement of how little a handful of policies can show."""
    x, y = np.asarray(cheap, dtype=float), np.asarray(dear, dtype=float)
    if len(x) != len(y) or len(x) < 3:
        raise RobustqError(f"a rank agreement needs at least 3 paired scores, got {len(x)} "
                           f"and {len(y)}")
    if len(set(x)) < 2 or len(set(y)) < 2:
        raise RobustqError("a score is constant over the policies: no ranking to compare")
    idx = np.random.default_rng(seed).integers(0, len(x), (draws, len(x)))
    # Spearman's rho of every resample at once: Pearson's r of the average ranks, which is what
    # spearmanr computes, vectorised over the resamples (one spearmanr call each is ~100x slower)
    xr, yr = (rankdata(v[idx], axis=1) for v in (x, y))
    xr, yr = xr - xr.mean(axis=1, keepdims=True), yr - yr.mean(axis=1, keepdims=True)
    norm = np.sqrt((xr**2).sum(axis=1) * (yr**2).sum(axis=1))
    boot = (xr * yr).sum(axis=1)[norm > 0] / norm[norm > 0]
    tail = (1 - confidence) / 2
    low, high = (float(q) for q in np.nanquantile(boot, [tail, 1 - tail]))
    return {"rho": float(spearmanr(x, y).statistic), "low": low, "high": high, "n": len(x)}
