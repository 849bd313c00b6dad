"""Incremental randomized smoothing (IRS; Ugare et al., ICLR 2024).

Certify an approximation f_p of f (quantized, pruned, fp16) by reusing f's certification: the
cached class cA, its bound pA_low, and f's predictions on the replayable estimation noise.
Transfer theorem: if P(f(x+e) != f_p(x+e)) <= zeta then f_p's smoothed classifier predicts cA
within sigma * PhiInv(pA_low - zeta), with confidence 1 - (alpha + alpha_zeta) (union bound;
the same noise may be reused).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from robustq.certify.noise import ESTIMATION
from robustq.certify.smooth import ABSTAIN, Certificate, Smooth, check_alpha
from robustq.certify.stats import clopper_pearson_lower, clopper_pearson_upper, radius_from_p
from robustq.utils.errors import RobustqError

FRESH_PHASE = 3  # noise for the gamma branch: fresh, independent of the cached samples


@dataclass(frozen=True)
class CacheEntry:
    """What certifying f left for one image: class, its lower bound (valid at confidence
    1 - ``alpha``), seed, f's predictions, and the ``chunk`` its noise was drawn in."""

    c_a: int
    p_lower: float
    seed: int
    predictions: np.ndarray   # f's estimation-phase predictions, in sampling order
    chunk: int
    alpha: float


@dataclass(frozen=True)
class IRSCertificate(Certificate):
    zeta: float | None = None      # None where the gamma branch certified from fresh samples
    disagreements: int | None = None


def estimate_zeta(smooth_p: Smooth, xs: torch.Tensor, entries: Sequence[CacheEntry], n_p: int,
                  alpha_zeta: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper (1 - alpha_zeta) bounds on P(f != f_p) per image from the first ``n_p`` cached samples.

    Replays whole noise chunks (exactly as drawn when f was certified) and compares f_p's
    predictions with f's. Returns (zeta, disagreement counts).
    """
    n_cached = min(len(e.predictions) for e in entries)
    if not 1 <= n_p <= n_cached:
        raise RobustqError(f"n_p must lie in [1, {n_cached}] (the cached samples), got {n_p}")
    replay = replay_sampler(smooth_p, entries)
    n_replay = min(math.ceil(n_p / replay.chunk) * replay.chunk, n_cached)
    _, preds = replay.sample(xs, n_replay, [e.seed for e in entries], ESTIMATION, record=True)
    cached = np.stack([e.predictions[:n_p] for e in entries])
    n_d = (preds[:, :n_p] != cached).sum(1)
    return clopper_pearson_upper(n_d, n_p, alpha_zeta), n_d


def replay_sampler(smooth_p: Smooth, entries: Sequence[CacheEntry]) -> Smooth:
    """A sampler of f_p that draws noise in the cache's chunks (the caller's chunk may differ:
    the replayed noise must be the very noise f saw)."""
    chunks = {e.chunk for e in entries}
    if len(chunks) != 1:
        raise RobustqError(f"cache entries drawn with different chunks {sorted(chunks)}")
    chunk = chunks.pop()
    if chunk == smooth_p.chunk:
        return smooth_p
    return Smooth(smooth_p.model, smooth_p.num_classes, smooth_p.sigma,
                  max(smooth_p.batch_size, chunk), chunk, smooth_p.device)


def cache_alpha(entries: Sequence[CacheEntry], alpha: float | None) -> float:
    """The confidence the cached bounds hold at; asking for another one is refused."""
    alphas = {e.alpha for e in entries}
    if len(alphas) != 1:
        raise RobustqError(f"cache entries certified at different alphas {sorted(alphas)}")
    cached = alphas.pop()
    if alpha is not None and alpha != cached:
        raise RobustqError(f"the cached bounds hold at alpha={cached}, not at the asked "
                           f"alpha={alpha}; certify f again at alpha={alpha}")
    return cached


def irs_certify_many(smooth_p: Smooth, xs: torch.Tensor, entries: Sequence[CacheEntry], n_p: int,
                     alpha: float | None = None, alpha_zeta: float = 0.001, gamma: float = 0.99
                     ) -> list[IRSCertificate]:
    """IRS-CERTIFY f_p on each image against f's cache (spec: 01-certification.md).

    Where pA_low < gamma: zeta from ``n_p`` replayed samples, certificate
    sigma * PhiInv(pA_low - zeta) if pA_low - zeta > 1/2. Where pA_low >= gamma: plain
    certification of cA on f_p from ``n_p`` fresh samples at confidence alpha + alpha_zeta.
    Guarantee: each certificate holds with probability at least 1 - (alpha + alpha_zeta), where
    alpha is the cache's (``alpha=None`` takes it; another value is refused). Noise is replayed
    in the cache's chunks, whatever ``smooth_p.chunk`` is.
    """
    alpha = cache_alpha(entries, alpha)
    check_alpha(alpha)
    check_alpha(alpha_zeta, "alpha_zeta")
    if not 0.5 < gamma <= 1:
        raise RobustqError(f"gamma must lie in (0.5, 1], got {gamma}")
    out: list[IRSCertificate | None] = [None] * len(entries)
    low = [i for i, e in enumerate(entries) if e.p_lower < gamma]
    high = [i for i, e in enumerate(entries) if e.p_lower >= gamma]
    if low:
        zeta, n_d = estimate_zeta(smooth_p, xs[low], [entries[i] for i in low], n_p, alpha_zeta)
        for i, z, d in zip(low, zeta, n_d, strict=True):
            # a lower bound on a probability: below 0 it says no more than 0 does
            e, p = entries[i], max(entries[i].p_lower - float(z), 0.0)
            out[i] = (IRSCertificate(e.c_a, float(radius_from_p(p, smooth_p.sigma)), p, -1, n_p,
                                     float(z), int(d)) if p > 0.5 else
                      IRSCertificate(ABSTAIN, 0.0, p, -1, n_p, float(z), int(d)))
    if high:
        counts, _ = smooth_p.sample(xs[high], n_p, [entries[i].seed for i in high], FRESH_PHASE)
        for row, i in enumerate(high):
            c_a = entries[i].c_a
            n_a = int(counts[row, c_a])
            p = float(clopper_pearson_lower(n_a, n_p, alpha + alpha_zeta))
            out[i] = (IRSCertificate(c_a, float(radius_from_p(p, smooth_p.sigma)), p, n_a, n_p)
                      if p > 0.5 else IRSCertificate(ABSTAIN, 0.0, p, n_a, n_p))
    return out  # type: ignore[return-value]
