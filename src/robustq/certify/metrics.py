"""Certification metrics from per-image results (prediction, label, radius)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from robustq.certify.smooth import ABSTAIN


def certified_radii(predictions: Sequence[int], labels: Sequence[int],
                    radii: Sequence[float]) -> np.ndarray:
    """Per-image certified radius: the radius where correct, 0 where wrong or abstaining."""
    p, y, r = np.asarray(predictions), np.asarray(labels), np.asarray(radii, dtype=float)
    return np.where((p == y) & (p != ABSTAIN), r, 0.0)


def certified_accuracy(predictions, labels, radii, at: Sequence[float]) -> dict[float, float]:
    """Fraction of images with the correct class and radius >= r, for each r in ``at``."""
    cr = certified_radii(predictions, labels, radii)
    correct = np.asarray(predictions) == np.asarray(labels)
    return {float(r): float(np.mean(correct & (cr >= r))) if len(cr) else 0.0 for r in at}


def summarize(predictions, labels, radii, at: Sequence[float] = (0.25, 0.5, 0.75, 1.0)) -> dict:
    """ACR, smoothed clean accuracy, abstention rate and certified accuracy at radii ``at``."""
    p = np.asarray(predictions)
    cr = certified_radii(predictions, labels, radii)
    n = len(p)
    return {
        "images": n,
        "acr": float(cr.mean()) if n else 0.0,
        "smoothed_accuracy": float(np.mean(p == np.asarray(labels))) if n else 0.0,
        "abstention_rate": float(np.mean(p == ABSTAIN)) if n else 0.0,
        "certified_accuracy": {str(r): v for r, v in certified_accuracy(
            predictions, labels, radii, at).items()},
    }


def accuracy_curve(predictions, labels, radii, max_radius: float | None = None,
                   points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Certified accuracy versus radius on a grid from 0 to ``max_radius`` (default: max R)."""
    cr = certified_radii(predictions, labels, radii)
    correct = np.asarray(predictions) == np.asarray(labels)
    top = max_radius if max_radius is not None else (float(cr.max()) if len(cr) else 1.0)
    grid = np.linspace(0, max(top, 1e-9), points)
    return grid, np.array([np.mean(correct & (cr >= r)) if len(cr) else 0.0 for r in grid])


@dataclass(frozen=True)
class PairedDifference:
    """Mean of per-image differences a - b with a two-sided t confidence interval."""

    mean: float
    low: float
    high: float
    images: int
    confidence: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.low > 0 or self.high < 0


def paired_difference(a: Sequence[float], b: Sequence[float],
                      confidence: float = 0.95) -> PairedDifference:
    """Compare two models certified on the *same* images: mean(a - b) with a t interval.

    ``a`` and ``b`` are per-image values in image order (certified radii, for an ACR difference;
    0/1 correctness, for an accuracy difference). Pairing removes the image-to-image spread that
    dominates each model's own standard error, so small model differences become visible. The
    interval covers the expected per-image difference (over images drawn like these) with
    probability ``confidence`` (asymptotically; exact for normal differences); it does not
    include the Monte-Carlo error of the certificates themselves.
    """
    da = np.asarray(a, dtype=float)
    db = np.asarray(b, dtype=float)
    if da.shape != db.shape or da.ndim != 1:
        raise ValueError(f"paired values need equal 1-d shapes, got {da.shape} and {db.shape}")
    if len(da) < 2:
        raise ValueError("a paired difference needs at least 2 images")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = da - db
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    if se == 0:
        return PairedDifference(mean, mean, mean, len(d), confidence)
    half = float(student_t.ppf(0.5 + confidence / 2, df=len(d) - 1)) * se
    return PairedDifference(mean, mean - half, mean + half, len(d), confidence)
