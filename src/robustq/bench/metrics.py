"""RobustMQ metrics (spec 04), computed from per-sample results.

- ``adversarial_robustness``: AR_a, accuracy under attack a among the clean-correct images.
- ``wcar``: fraction of clean-correct images that stay correct under *every* attack (per sample).
- ``corruption_errors``: CE_c = sum_s E_(s,c)(f) / sum_s E_(s,c)(reference), mCE their mean over
  the corruptions given (the reference is the FP model of the same architecture here).
- ``mnr``: mean accuracy over all (corruption, severity) sets.
- ``systematic``: ACC_s, the mean accuracy over the systematic variants, and its standard deviation.
All accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from robustq.utils.errors import RobustqError


def adversarial_robustness(clean_correct: np.ndarray, attacked_correct: np.ndarray) -> float:
    """AR: accuracy under attack among the clean-correct samples (NaN when there are none)."""
    clean_correct = np.asarray(clean_correct, bool)
    if clean_correct.sum() == 0:
        return float("nan")
    return float(np.asarray(attacked_correct, bool)[clean_correct].mean())


def wcar(clean_correct: np.ndarray, attacked_correct: Mapping[str, np.ndarray]) -> float:
    """Worst-case adversarial robustness: clean-correct samples that survive every attack."""
    if not attacked_correct:
        raise RobustqError("WCAR needs at least one attack")
    survive = np.logical_and.reduce([np.asarray(v, bool) for v in attacked_correct.values()])
    return adversarial_robustness(clean_correct, survive)


def corruption_errors(acc: Mapping[str, Sequence[float]],
                      reference: Mapping[str, Sequence[float]]) -> tuple[dict[str, float], float]:
    """Per-corruption CE and mCE from per-severity accuracies of the model and the reference."""
    ce = {}
    for c, a in acc.items():
        if c not in reference:
            raise RobustqError(f"the reference has no results for corruption {c!r}")
        err, ref = 1 - np.asarray(a, float), 1 - np.asarray(reference[c], float)
        ce[c] = float(err.sum() / ref.sum()) if ref.sum() > 0 else float("nan")
    return ce, float(np.mean(list(ce.values())))


def mnr(acc: Mapping[str, Sequence[float]]) -> float:
    """Mean accuracy over every (corruption, severity) set."""
    return float(np.mean([x for a in acc.values() for x in a]))


def corruption_ranking(acc: Mapping[str, Sequence[float]]) -> list[str]:
    """Corruptions from most to least harmful (lowest mean accuracy over severities first)."""
    return sorted(acc, key=lambda c: float(np.mean(acc[c])))


def systematic(acc: Mapping[str, float]) -> tuple[float, float]:
    """ACC_s (mean accuracy over the systematic variants) and its standard deviation."""
    v = np.asarray(list(acc.values()), float)
    return float(v.mean()), float(v.std())
