import json

import numpy as np
import pytest

from robustq.search.diagnostics import mean_gain, proposal_gain, rank_agreement
from robustq.utils.errors import RobustqError


def test_mean_gain_interval_covers_the_true_difference_95_percent_of_the_time():
    """Welch's interval at unequal sizes and spreads: coverage of 1,000 simulated comparisons
    within 3 binomial standard deviations (0.007) of 0.95."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(1000):
        g = mean_gain(rng.normal(0.173, 0.006, 30), rng.normal(0.163, 0.009, 40))
        covered += g["low"] <= 0.010 <= g["high"]
        assert g["low"] < g["mean"] < g["high"] and (g["n"], g["n_baseline"]) == (30, 40)
    assert 0.93 <= covered / 1000 <= 0.97
    with pytest.raises(RobustqError, match="at least 2"):
        mean_gain([0.1], [0.1, 0.2])


def test_proposal_gain_takes_the_episodes_after_warm_up(tmp_path):
    acrs = [0.10, 0.30, 0.20, 0.22, 0.24]
    (tmp_path / "episodes.jsonl").write_text(
        "".join(json.dumps({"episode": k, "reward": a, "acr": a, "episode_s": 1.0}) + "\n"
                for k, a in enumerate(acrs)))
    g = proposal_gain(tmp_path, [0.15, 0.17, 0.19], start=2)
    assert g["mean"] == pytest.approx(np.mean(acrs[2:]) - 0.17)
    assert (g["n"], g["from"]) == (3, 2)
    no_acr = {"episode": 0, "reward": 0.9, "episode_s": 1.0}        # HAQ's reward: no ACR
    (tmp_path / "episodes.jsonl").write_text(json.dumps(no_acr) + "\n")
    with pytest.raises(RobustqError, match="ARQ's reward"):
        proposal_gain(tmp_path, [0.1, 0.2], start=0)


def test_rank_agreement_is_one_for_a_monotone_score_and_refuses_what_cannot_rank():
    cheap = [0.12, 0.15, 0.11, 0.19, 0.14]
    agree = rank_agreement(cheap, [3 * c - 0.2 for c in cheap], draws=200)
    assert [agree[k] for k in ("rho", "low", "high")] == pytest.approx([1.0] * 3)
    assert agree["n"] == 5
    assert rank_agreement(cheap, [-c for c in cheap], draws=200)["rho"] == pytest.approx(-1.0)
    with pytest.raises(RobustqError, match="at least 3"):
        rank_agreement([0.1, 0.2], [0.1, 0.2])
    with pytest.raises(RobustqError, match="constant"):
        rank_agreement(cheap, [0.3] * 5)


def test_rank_agreement_interval_covers_the_population_rho_about_95_percent_of_the_time():
    """Bivariate normal with Pearson r = 0.6 has Spearman rho (6/pi) asin(r/2) = 0.5829; the
    percentile bootstrap at 40 policies covers it in 400 simulated studies within about 3
    binomial standard deviations (it runs a little under nominal at this size)."""
    rng = np.random.default_rng(1)
    true_rho = 6 / np.pi * np.arcsin(0.3)
    cov = [[1.0, 0.6], [0.6, 1.0]]
    covered = 0
    for k in range(400):
        x, y = rng.multivariate_normal([0, 0], cov, 40).T
        agree = rank_agreement(x, y, draws=1000, seed=k)
        covered += agree["low"] <= true_rho <= agree["high"]
        assert agree["low"] <= agree["rho"] <= agree["high"]
    assert 0.90 <= covered / 400 <= 0.98
