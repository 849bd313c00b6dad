"""Paired model comparison on the same images: the interval covers the true mean difference."""

import math

import numpy as np
import pytest

from robustq.certify import paired_difference

TRIALS = 2000


def radius_like(rng: np.random.Generator, images: int, shift: float) -> tuple[np.ndarray, ...]:
    """Two models' certified radii on the same images: a shared per-image difficulty, each
    model correct with its own chance, radii capped like a smoothed classifier's (skewed, with
    a mass at 0). Model a is better by ``shift`` in its chance of being correct."""
    difficulty = rng.uniform(0, 1, images)
    base = np.minimum(rng.exponential(0.3, images), 0.8)
    a = np.where(rng.uniform(0, 1, images) < np.clip(1 - difficulty + shift, 0, 1), base, 0.0)
    b = np.where(rng.uniform(0, 1, images) < 1 - difficulty, base, 0.0)
    return a, b


def true_mean_difference(shift: float) -> float:
    """E[a - b] of ``radius_like`` by a large sample (the closed form is not needed here)."""
    a, b = radius_like(np.random.default_rng(12345), 2_000_000, shift)
    return float((a - b).mean())


@pytest.mark.parametrize("images,confidence", [(50, 0.95), (500, 0.9)])
def test_interval_covers_the_true_difference_at_its_confidence(images, confidence):
    truth = true_mean_difference(0.1)
    rng = np.random.default_rng(images)
    covered = 0
    for _ in range(TRIALS):
        d = paired_difference(*radius_like(rng, images, 0.1), confidence=confidence)
        assert d.low <= d.mean <= d.high
        covered += d.low <= truth <= d.high
    slack = 3 * math.sqrt(confidence * (1 - confidence) / TRIALS)
    # A t interval on skewed data is approximate: allow 1.5 points below nominal plus sampling.
    assert covered / TRIALS >= confidence - 0.015 - slack
    assert covered / TRIALS <= confidence + slack + 0.01


def test_pairing_sees_a_difference_that_unpaired_errors_hide():
    rng = np.random.default_rng(0)
    a, b = radius_like(rng, 500, 0.1)
    d = paired_difference(a, b)
    unpaired_half = 1.96 * math.sqrt(a.var(ddof=1) / 500 + b.var(ddof=1) / 500)
    assert d.high - d.low < 2 * unpaired_half
    assert d.significant and d.mean > 0
    same = paired_difference(a, a)
    assert (same.mean, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)


@pytest.mark.parametrize("a,b,confidence,match", [
    ([1.0, 2.0], [1.0], 0.95, "equal 1-d shapes"),
    ([1.0], [1.0], 0.95, "at least 2 images"),
    ([1.0, 2.0], [0.0, 1.0], 1.0, "confidence"),
])
def test_bad_input_is_refused(a, b, confidence, match):
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b, confidence)
