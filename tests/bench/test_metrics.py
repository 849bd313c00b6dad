import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustq.bench import metrics


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1, max_size=4))))
def test_wcar_is_at_most_every_ar(data):
    clean, attacks = data
    clean = np.array(clean)
    if not clean.any():
        return
    adv = {f"a{i}": np.array(a) for i, a in enumerate(attacks)}
    w = metrics.wcar(clean, adv)
    assert all(w <= metrics.adversarial_robustness(clean, a) + 1e-12 for a in adv.values())


def test_ar_counts_only_clean_correct():
    clean = np.array([1, 1, 0, 0], bool)
    assert metrics.adversarial_robustness(clean, np.array([1, 0, 1, 1], bool)) == 0.5
    assert np.isnan(metrics.adversarial_robustness(np.zeros(3, bool), np.ones(3, bool)))


def test_corruption_error_and_mce():
    ref = {"fog": [0.9, 0.8], "snow": [0.5, 0.5]}
    ce, mce = metrics.corruption_errors({"fog": [0.8, 0.6], "snow": [0.5, 0.5]}, ref)
    assert ce == pytest.approx({"fog": 2.0, "snow": 1.0}) and mce == pytest.approx(1.5)
    assert metrics.mnr({"fog": [0.8, 0.6], "snow": [0.5, 0.5]}) == pytest.approx(0.6)
    assert metrics.corruption_ranking({"fog": [0.8, 0.6], "snow": [0.5, 0.5]}) == ["snow", "fog"]


def test_systematic_mean_and_std():
    m, s = metrics.systematic({"a": 0.8, "b": 0.6})
    assert m == pytest.approx(0.7) and s == pytest.approx(0.1)
