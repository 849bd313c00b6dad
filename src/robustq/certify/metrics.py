"""Certification metrics from per-image results (prediction, label, radius)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
