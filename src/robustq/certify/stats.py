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
