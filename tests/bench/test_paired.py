import json

import numpy as np
import pytest

from robustq.bench.paired import WORST, on_autoattack_images, paired_against, paired_run, per_image_scores
from robustq.bench.runner import CONFIG_FILE, BenchConfig, unit_name
from robustq.bench.systematic import VARIANTS
from robustq.utils.errors import RobustqError


def test_a_model_equal_to_the_reference_differs_by_exactly_zero():
    ref = {"natural": np.array([0.2, 0.8, 1.0, 0.4])}
    rows = paired_against({"fp": ref, "q": {"natural": ref["natural"].copy()}})
    assert [(r["model"], r["score"], r["difference"], r["low"], r["high"]) for r in rows] == \
        [("q", "natural", 0.0, 0.0, 0.0)]


def test_only_scores_both_models_have_are_paired():
    rows = paired_against({"fp": {"a": np.ones(3), "b": np.ones(3)}, "q": {"b": np.zeros(3)}})
    assert [(r["score"], r["difference"]) for r in rows] == [("b", -1.0)]


def test_the_reference_must_be_there():
    with pytest.raises(RobustqError, match="reference"):
        paired_against({"q": {"a": np.ones(3)}})


def test_the_paired_interval_covers_a_planted_difference_at_its_level():
    """Reference correct with p 0.6 per image; the model also gets right a tenth of the images
    the reference gets wrong (expected difference +0.04) and loses a twentieth of the ones it
    gets right (-0.03): +0.01 in all. Over 400 draws of 300 images the 95% interval must cover
    +0.01 in 0.92-0.98 of them (binomial 99.9% bounds around 0.95)."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        ref = rng.random(300) < 0.6
        u = rng.random(300)
        own = np.where(ref, u >= 0.05, u < 0.1)
        r = paired_against({"fp": {"s": ref.astype(float)}, "q": {"s": own.astype(float)}})[0]
        covered += r["low"] <= 0.01 <= r["high"]
    assert 0.92 <= covered / 400 <= 0.98


def _run(tmp_path, cells: dict[tuple[str, str, str], np.ndarray], aa: int = 0) -> BenchConfig:
    cfg = BenchConfig(checkpoint="m.safetensors", data="embedded", methods=("lsq",), bits=(4,),
                      images=4, attack_images=4, autoattack_images=aa, autoattack_eps=(2 / 255,),
                      corruptions=("fog",), severities=(1, 2), linf_eps=(2 / 255,),
                      l2_eps=(0.25,))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"config": cfg.to_json()}))
    for (model, family, name), value in cells.items():
        path = tmp_path / "cells" / model / family / f"{unit_name(name)}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, value)
    return cfg


def test_scores_are_shares_of_units_and_the_worst_case_over_gradient_attacks(tmp_path):
    t, f = np.array([1, 1, 0, 1], bool), np.array([1, 0, 0, 0], bool)
    cells = {("fp", "natural", "fog-s1"): t, ("fp", "natural", "fog-s2"): f,
             ("fp", "adversarial", "pgd-linf-2/255"): t, ("fp", "adversarial", "fgsm-l2-0.25"): f,
             ("fp", "adversarial", "pgd-l2-0.25"): t, ("fp", "adversarial", "fgsm-linf-2/255"): t}
    cells |= {("fp", "systematic", v): t for v in VARIANTS}
    cfg = _run(tmp_path, cells | {("lsq_w4a4", "natural", "fog-s1"): t})
    fp = per_image_scores(tmp_path, cfg, "fp")
    np.testing.assert_allclose(fp["natural"], [1, 0.5, 0, 0.5])
    np.testing.assert_allclose(fp["systematic"], t)
    np.testing.assert_allclose(fp[WORST], f)
    assert per_image_scores(tmp_path, cfg, "lsq_w4a4") == {}    # fog-s2 not run yet: left out


def test_paired_run_needs_a_benchmark_directory(tmp_path):
    with pytest.raises(RobustqError, match="not a benchmark directory"):
        paired_run(tmp_path)


def test_pgd_is_also_scored_on_autoattacks_images_beside_autoattack(tmp_path):
    pgd, aa = np.array([1, 0, 1, 1], bool), np.array([0, 1], bool)
    cfg = _run(tmp_path, {("fp", "adversarial", "pgd-linf-2/255"): pgd,
                          ("fp", "adversarial", "autoattack-linf-2/255"): aa}, aa=2)
    scores = per_image_scores(tmp_path, cfg, "fp")
    # the two AutoAttack images are among the four PGD ones, at these positions
    assert len(cfg.autoattack_positions()) == 2
    within = np.searchsorted(cfg.attack_positions(), cfg.autoattack_positions())
    np.testing.assert_array_equal(scores[on_autoattack_images("pgd-linf-2/255")], pgd[within])
    np.testing.assert_array_equal(scores["autoattack-linf-2/255"], aa)
    (tmp_path / "no_aa").mkdir()
    cfg = _run(tmp_path / "no_aa", {("fp", "adversarial", "pgd-linf-2/255"): pgd}, aa=2)
    assert on_autoattack_images("pgd-linf-2/255") not in per_image_scores(tmp_path / "no_aa",
                                                                           cfg, "fp")
