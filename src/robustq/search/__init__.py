"""Mixed-precision policy search: ARQ (certified-robustness reward via IRS), HAQ, random and
uniform baselines (spec 03)."""

from robustq.search.compare import CompareConfig, run_compare
from robustq.search.env import BitOpsBudget, LayerTable, action_to_bits
from robustq.search.search import Search, SearchConfig, evaluate_on_test

__all__ = ["BitOpsBudget", "CompareConfig", "LayerTable", "Search", "SearchConfig",
           "action_to_bits", "evaluate_on_test", "run_compare"]
