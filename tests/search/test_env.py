import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustq.models import get_model
from robustq.search.env import BitOpsBudget, LayerTable, action_to_bits
from robustq.utils.errors import RobustqError


@pytest.fixture(scope="module")
def table():
    model = get_model("resnet20", num_classes=10, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    return LayerTable(model, (3, 32, 32))


def test_action_to_bits_covers_every_width_equally():
    actions = (np.arange(70_000) + 0.5) / 70_000
    bits = np.array([action_to_bits(a, 2, 8) for a in actions])
    counts = np.bincount(bits, minlength=9)[2:]
    assert set(bits) == set(range(2, 9))
    assert counts.max() - counts.min() <= 1            # each width owns 1/7 of [0, 1]
    assert action_to_bits(0.0) == 2 and action_to_bits(1.0) == 8
    assert np.all(np.diff(bits) >= 0)                    # monotone
    with pytest.raises(RobustqError):
        action_to_bits(1.5)


def test_layer_table_and_uniform_cost(table):
    assert len(table) == 20 and table.names[0] == "conv1" and table.names[-1] == "fc"
    four = np.full(len(table), 4)
    assert table.bitops_percent(four, four) == pytest.approx(1.5625)
    s = table.states()
    assert s.shape == (40, 11) and s.min() >= 0 and s.max() <= 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 8), min_size=40, max_size=40), st.floats(0.3, 30))
def test_budget_enforcement_meets_any_feasible_budget(table, bits, percent):
    w, a = np.array(bits[:20]), np.array(bits[20:])
    budget = BitOpsBudget(percent)
    floor = table.bitops_percent(np.full(20, 2), np.full(20, 2))
    if percent < floor:
        with pytest.raises(RobustqError, match="cannot be met"):
            budget.enforce(table, w, a)
        return
    w2, a2 = budget.enforce(table, w, a)
    assert table.bitops_percent(w2, a2) <= percent + 1e-9
    assert np.all(w2 <= w) and np.all(a2 <= a) and w2.min() >= 2 and a2.min() >= 2
    if table.bitops_percent(w, a) <= percent:
        assert np.array_equal(w2, w) and np.array_equal(a2, a)     # nothing to do


def test_infeasible_budget_is_refused(table):
    with pytest.raises(RobustqError, match="cannot be met"):
        BitOpsBudget(0.2).check(table)                  # all 2/2 bits is 0.39%
    with pytest.raises(RobustqError, match="cannot be met"):
        BitOpsBudget(-1).check(table)


def test_search_config_round_trips_through_json():
    import json

    from robustq.search.search import SearchConfig

    cfg = SearchConfig(checkpoint="c.safetensors", data="embedded", strategy="haq", episodes=7)
    assert SearchConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(RobustqError, match="unknown search option"):
        SearchConfig.from_json(cfg.to_json() | {"temperature": 1})
