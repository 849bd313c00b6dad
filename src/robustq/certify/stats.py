"""Confidence bounds for binomial proportions (Clopper-Pearson, exact) and the binomial test."""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binomtest, norm


def clopper_pearson_lower(k: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) lower confidence bound on p from k successes in n trials.

    Equals the lower end of the two-sided Clopper-Pearson interval at level 1 - 2 alpha;
    0 when k = 0.
    """
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    return np.where(k > 0, beta.ppf(alpha, k, n - k + 1), 0.0)


def clopper_pearson_upper(k: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) upper confidence bound on p; 1 when k = n."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    return np.where(k < n, beta.ppf(1 - alpha, k + 1, n - k), 1.0)


def binom_two_sided_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value (SciPy's ``binomtest``)."""
    return float(binomtest(int(k), int(n), p, alternative="two-sided").pvalue)


def radius_from_p(p_lower: float | np.ndarray, sigma: float) -> np.ndarray:
    """Cohen et al.'s l2 radius ``sigma * PhiInv(p_lower)`` (pixel units), for p_lower > 1/2."""
    return sigma * norm.ppf(p_lower)


def plugin_radii(counts: np.ndarray, labels: np.ndarray, sigma: float) -> np.ndarray:
    """Per-image plug-in l2 radius of a smoothed classifier from its class ``counts`` (k, C)
    over m noisy samples each: ``sigma * PhiInv(p)`` with p the top class's share, where that
    class is the label and p > 1/2, else 0. An *estimate* of the radius the smoothed classifier
    has, without CERTIFY's confidence bound (no guarantee: it can exceed the certified radius);
    p is capped at 1 - 1/(2m), so no radius exceeds ``sigma * PhiInv(1 - 1/(2m))``. For ranking
    candidates on shared noise, not for reporting a certificate."""
    counts = np.asarray(counts)
    m = counts.sum(axis=1)
    top = counts.argmax(axis=1)
    p = np.minimum(counts.max(axis=1) / m, 1 - 0.5 / m)
    ok = (top == np.asarray(labels)) & (p > 0.5)
    return np.where(ok, sigma * norm.ppf(np.where(ok, p, 0.75)), 0.0)
