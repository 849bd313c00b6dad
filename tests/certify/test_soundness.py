"""Statistical tests: certificates claim more than the truth at most alpha of the time."""

import math

import numpy as np
import pytest
import torch

from robustq.certify import ABSTAIN, CacheEntry, Smooth, irs_certify_many
from robustq.certify.stats import clopper_pearson_lower
from tests.certify.synthetic import ThresholdClassifier, true_radius

TRIALS = 3000
SIGMA = 0.5


def slack(alpha: float, trials: int = TRIALS) -> float:
    """Three binomial standard deviations: the failure rate may exceed alpha by sampling only."""
    return 3 * math.sqrt(alpha * (1 - alpha) / trials)


def unsound(certs, radius_truth: float) -> float:
    """Fraction of certificates that name the wrong class or a radius beyond the truth."""
    bad = [(c.prediction not in (0, ABSTAIN)) or (c.prediction == 0 and c.radius > radius_truth)
           for c in certs]
    return float(np.mean(bad))


def certify_trials(model, n0, n, alpha, trials=TRIALS, record=False, seed0=0):
    smooth = Smooth(model, 2, SIGMA, batch_size=20_000, chunk=100)
    xs = torch.zeros(trials, 1, 1, 2)
    return smooth.certify_many(xs, n0, n, alpha, seeds=range(seed0, seed0 + trials), record=record)


@pytest.mark.parametrize("p,n,alpha", [(0.8, 300, 0.05), (0.95, 500, 0.1), (0.7, 100, 0.2)])
def test_certify_failure_rate_at_most_alpha(p, n, alpha):
    certs, _ = certify_trials(ThresholdClassifier(p, SIGMA), 20, n, alpha)
    rate = unsound(certs, true_radius(p, SIGMA))
    assert rate <= alpha + slack(alpha)
    # not vacuous: most trials certify, close to the truth
    radii = np.array([c.radius for c in certs])
    assert np.mean(radii > 0) > 0.9
    assert np.median(radii) > 0.6 * true_radius(p, SIGMA)


def test_the_test_catches_an_unsound_bound():
    """Using the point estimate nA/n instead of the lower bound fails about half the time."""
    p, n, alpha = 0.8, 300, 0.05
    certs, _ = certify_trials(ThresholdClassifier(p, SIGMA), 20, n, alpha)
    naive = [c.__class__(c.prediction, true_radius(c.count / c.n, SIGMA), c.count / c.n,
                         c.count, c.n) for c in certs]
    assert unsound(naive, true_radius(p, SIGMA)) > alpha + slack(alpha) + 0.2


def test_clopper_pearson_matches_exact_binomial_coverage():
    from scipy.stats import binom

    n, alpha, p = 50, 0.05, 0.73
    k = np.arange(n + 1)
    low = clopper_pearson_lower(k, n, alpha)
    coverage = binom.pmf(k, n, p)[low <= p].sum()      # exact, not sampled
    assert coverage >= 1 - alpha
    assert clopper_pearson_lower(0, 10, 0.05) == 0


@pytest.mark.parametrize("p,flip,gamma", [(0.85, 0.05, 0.99), (0.9, 0.02, 0.99),
                                          (0.995, 0.01, 0.99)])
def test_irs_failure_rate_at_most_alpha_plus_alpha_zeta(p, flip, gamma):
    alpha = alpha_zeta = 0.05
    n, n_p = 1000, 200
    f, f_p = ThresholdClassifier(p, SIGMA), ThresholdClassifier(p, SIGMA, flip_p=flip)
    certs, preds = certify_trials(f, 20, n, alpha, record=True)
    entries = [CacheEntry(c.prediction, c.p_lower, s, preds[i], chunk=100, alpha=alpha)
               for i, (c, s) in enumerate(zip(certs, range(TRIALS), strict=True))]
    keep = [i for i, e in enumerate(entries) if e.c_a != ABSTAIN]
    smooth_p = Smooth(f_p, 2, SIGMA, batch_size=20_000, chunk=100)
    irs = irs_certify_many(smooth_p, torch.zeros(len(keep), 1, 1, 2), [entries[i] for i in keep],
                           n_p, alpha, alpha_zeta, gamma)
    truth = true_radius(p * (1 - flip), SIGMA)
    rate = unsound(irs, truth) * len(keep) / TRIALS     # f abstaining is never a failure
    assert rate <= alpha + alpha_zeta + slack(alpha + alpha_zeta)
    assert np.mean([c.radius > 0 for c in irs]) > 0.8
    if p < gamma:   # the zeta branch really estimated disagreement, close to p * flip
        zetas = [c.zeta for c in irs if c.zeta is not None]
        assert len(zetas) > 0.9 * len(irs) and np.median(zetas) > p * flip
        d = np.mean([c.disagreements for c in irs]) / n_p
        assert abs(d - p * flip) < 0.01


def test_replayed_noise_reproduces_predictions_exactly():
    f = ThresholdClassifier(0.7, SIGMA)
    smooth = Smooth(f, 2, SIGMA, batch_size=250, chunk=100)
    xs = torch.zeros(3, 1, 1, 2)
    _, preds = smooth.certify_many(xs, 10, 500, 0.01, seeds=[4, 5, 6], record=True)
    # another batching of the same samples gives the same predictions, sample for sample
    _, again = Smooth(f, 2, SIGMA, batch_size=100, chunk=100).sample(xs, 500, [4, 5, 6], 1, True)
    assert np.array_equal(preds, again)
    entries = [CacheEntry(0, 0.6, s, preds[i], chunk=100, alpha=0.01)
               for i, s in enumerate([4, 5, 6])]
    irs = irs_certify_many(smooth, xs, entries, 250, 0.01, 0.01, 0.99)   # f_p = f: no disagreement
    assert all(c.disagreements == 0 for c in irs)


def test_cache_at_alpha_0_2_cannot_certify_at_1e_4():
    """A cache certified at alpha 0.2 holds bounds that exceed the truth ~20% of the time: used
    at alpha 1e-4 its certificates would fail 2,000x more often than claimed. IRS refuses that
    alpha, and at the cache's own alpha its failure rate is within alpha + alpha_zeta."""
    from robustq.utils.errors import RobustqError

    p, n, n_p, alpha, alpha_zeta = 0.7, 100, 100, 0.2, 0.001
    f = ThresholdClassifier(p, SIGMA)
    certs, preds = certify_trials(f, 20, n, alpha, record=True)
    entries = [CacheEntry(c.prediction, c.p_lower, s, preds[i], chunk=100, alpha=alpha)
               for i, (c, s) in enumerate(zip(certs, range(TRIALS), strict=True))
               if c.prediction != ABSTAIN]
    over = np.mean([e.p_lower > p for e in entries]) * len(entries) / TRIALS
    assert over > 100 * 1e-4 + slack(1e-4)          # the cached bounds fail far above 1e-4
    smooth = Smooth(f, 2, SIGMA, batch_size=20_000, chunk=100)
    xs = torch.zeros(len(entries), 1, 1, 2)
    with pytest.raises(RobustqError, match="hold at alpha=0.2"):
        irs_certify_many(smooth, xs, entries, n_p, 1e-4, alpha_zeta)
    irs = irs_certify_many(smooth, xs, entries, n_p, None, alpha_zeta)   # the cache's alpha
    rate = unsound(irs, true_radius(p, SIGMA)) * len(entries) / TRIALS
    assert rate <= alpha + alpha_zeta + slack(alpha + alpha_zeta)
    assert rate > 1e-4 + slack(1e-4)               # so a 1e-4 claim would have been false


def test_irs_replays_in_the_cache_chunks_whatever_the_caller_uses():
    f = ThresholdClassifier(0.7, SIGMA)
    xs = torch.zeros(2, 1, 1, 2)
    _, preds = Smooth(f, 2, SIGMA, batch_size=300, chunk=30).certify_many(
        xs, 10, 300, 0.01, seeds=[1, 2], record=True)
    entries = [CacheEntry(0, 0.6, s, preds[i], chunk=30, alpha=0.01) for i, s in enumerate([1, 2])]
    other = Smooth(f, 2, SIGMA, batch_size=100, chunk=100)     # f_p = f, sampled in other chunks
    irs = irs_certify_many(other, xs, entries, 200, None, 0.01, 0.99)
    assert all(c.disagreements == 0 for c in irs)


def test_irs_bound_below_zero_is_reported_as_zero_and_abstains():
    f = ThresholdClassifier(0.7, SIGMA)
    smooth = Smooth(f, 2, SIGMA, batch_size=250, chunk=100)
    xs = torch.zeros(2, 1, 1, 2)
    _, preds = smooth.certify_many(xs, 10, 200, 0.01, seeds=[4, 5], record=True)
    entries = [CacheEntry(0, 0.55, s, 1 - preds[i], chunk=100, alpha=0.01)   # f_p != f always
               for i, s in enumerate([4, 5])]
    irs = irs_certify_many(smooth, xs, entries, 50, 0.01, 0.01, 0.99)
    assert all(c.prediction == ABSTAIN and c.p_lower == 0.0 and c.zeta > 0.55 for c in irs)
