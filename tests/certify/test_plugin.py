"""The plug-in ACR estimate: consistent for a classifier whose radius is known exactly, capped,
zero where the top class is not the label, and replayable by its seeds."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from robustq.certify.smooth import Smooth
from robustq.certify.stats import plugin_radii
from tests.certify.synthetic import ThresholdClassifier, true_radius


@pytest.mark.parametrize("p", [0.6, 0.8, 0.95])
def test_plugin_radius_is_consistent_for_a_known_classifier(p):
    # 200 images at x = 0, 400 samples each: the mean plug-in radius is within 4 standard
    # errors (delta method over images) of sigma * PhiInv(p)
    sigma, m, k = 0.25, 400, 200
    smooth = Smooth(ThresholdClassifier(p, sigma), 2, sigma, batch_size=4000)
    est = smooth.plugin_acr(torch.zeros(k, 3, 4, 4), [0] * k, m, seeds=range(k))
    se = sigma * np.sqrt(p * (1 - p) / m) / norm.pdf(norm.ppf(p)) / np.sqrt(k)
    assert abs(est["plugin_acr"] - true_radius(p, sigma)) < 4 * se + 1e-3
    assert abs(est["noisy_accuracy"] - p) < 4 * np.sqrt(p * (1 - p) / (m * k))


def test_plugin_radii_by_hand():
    counts = np.array([[90, 10], [10, 90], [50, 50], [100, 0]])
    r = plugin_radii(counts, np.array([0, 0, 0, 0]), 0.5)
    assert r[0] == pytest.approx(0.5 * norm.ppf(0.9))
    assert r[1] == 0.0 and r[2] == 0.0                     # wrong top class; p = 1/2
    assert r[3] == pytest.approx(0.5 * norm.ppf(1 - 0.5 / 100))   # capped, finite


def test_plugin_estimate_replays_by_seed_and_differs_by_seed():
    smooth = Smooth(ThresholdClassifier(0.7, 0.25), 2, 0.25)
    x = torch.zeros(20, 3, 4, 4)
    a = smooth.plugin_acr(x, [0] * 20, 50, seeds=range(20))
    assert a == smooth.plugin_acr(x, [0] * 20, 50, seeds=range(20))
    assert a != smooth.plugin_acr(x, [0] * 20, 50, seeds=range(100, 120))
