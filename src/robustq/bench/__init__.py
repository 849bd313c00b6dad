"""Empirical robustness benchmark of quantized models (RobustMQ, spec 04)."""

from robustq.bench.attacks import FGSM, PGD, AutoAttack, get_attack, list_attacks
from robustq.bench.corruptions import corrupt
from robustq.bench.runner import BenchConfig, BenchRun
from robustq.bench.tables import collect_results, summarize_run

__all__ = ["FGSM", "PGD", "AutoAttack", "BenchConfig", "BenchRun", "collect_results", "corrupt",
           "get_attack", "list_attacks", "summarize_run"]
