"""Optuna-backed strategies on synthetic logs: NSGA-II breeds from the elite and asks the same
policy for the same log (what makes a killed search resume exactly)."""

from types import SimpleNamespace

import numpy as np
import pytest

from robustq.search.strategies import NSGA2_OBJECTIVES, STRATEGIES, nsga2_bits, tpe_bits

pytest.importorskip("optuna")

NAMES = [f"layer{i}" for i in range(10)]
TABLE = SimpleNamespace(names=NAMES)
CFG = SimpleNamespace(seed=3, warmup=4, b_min=2, b_max=8)


def line(episode: int, bits: int, good: bool) -> dict:
    """A logged episode whose every layer is at ``bits``; good ones win on reward and accuracy
    at the same BitOPs, so they dominate the others."""
    return {"episode": episode, "policy": {n: {"w": bits, "a": bits} for n in NAMES},
            "reward": 1.0 if good else 0.0, "accuracy": 0.9 if good else 0.1,
            "bitops_percent": 1.0}


def test_nsga2_is_registered_with_three_objectives():
    assert "nsga2" in STRATEGIES
    assert [k for k, _ in NSGA2_OBJECTIVES] == ["reward", "accuracy", "bitops_percent"]


def test_nsga2_first_generation_is_random_within_the_bit_range():
    asked = [np.concatenate(nsga2_bits(TABLE, [], CFG, e)) for e in range(3)]
    assert all(((2 <= a) & (a <= 8)).all() for a in asked)
    assert len({tuple(a) for a in asked}) == 3        # seeded per episode: different draws


def test_nsga2_breeds_from_the_non_dominated_episodes():
    # generation 0 = episodes 0-3, generation 1 = 4-7 (population 4); the good ones are at 7
    # bits, the dominated ones at 2, so generation 2's parents are the four good episodes
    done = [line(e, 7 if good else 2, good)
            for e, good in enumerate([False, True, False, True, True, True, False, False])]
    genes = np.concatenate([np.concatenate(nsga2_bits(TABLE, done, CFG, 8 + k))
                            for k in range(5)])
    # crossover keeps parents' genes; mutation (1/20 per gene here) redraws a few
    assert np.mean(genes == 7) >= 0.8
    assert np.mean(genes == 2) <= 0.1


def test_optuna_strategies_ask_the_same_policy_for_the_same_log():
    done = [line(e, 3 + e % 4, e % 2 == 0) for e in range(6)]
    for ask in (nsga2_bits, tpe_bits):
        first, again = ask(TABLE, done, CFG, 6), ask(TABLE, done, CFG, 6)
        assert all((x == y).all() for x, y in zip(first, again, strict=True))
