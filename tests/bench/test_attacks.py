import pytest
import torch

from robustq.bench.attacks import FGSM, PGD, AutoAttack, attack_correct, get_attack, list_attacks
from robustq.quant import quantize, uniform_policy
from robustq.utils.errors import RobustqError
from tests.bench.conftest import prototype_data

BUDGETS = [("linf", 0.06), ("l2", 0.8)]


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("norm,eps", BUDGETS)
@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_attack_lowers_accuracy_within_budget_and_range(tiny_classifier, name, norm, eps):
    x, y = prototype_data(200, seed=2)
    clean = accuracy(tiny_classifier, x, y)
    assert clean > 0.95
    x_adv = get_attack(name, norm, eps)(tiny_classifier, x, y)
    assert accuracy(tiny_classifier, x_adv, y) < clean - 0.2
    delta = (x_adv - x).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("norm,eps", BUDGETS)
def test_pgd_at_least_as_strong_as_fgsm(tiny_classifier, norm, eps):
    x, y = prototype_data(300, seed=3)
    fgsm = attack_correct(tiny_classifier, FGSM(norm, eps), x, y).float().mean()
    pgd = attack_correct(tiny_classifier, PGD(norm, eps), x, y).float().mean()
    assert pgd <= fgsm


@pytest.mark.parametrize("norm,eps", BUDGETS)
def test_agrees_with_torchattacks(tiny_classifier, norm, eps):
    ta = pytest.importorskip("torchattacks")
    x, y = prototype_data(300, seed=4)
    if norm == "linf":
        ref_pgd = ta.PGD(tiny_classifier, eps=eps, alpha=0.075 * eps, steps=20, random_start=False)
        ref_fgsm = ta.FGSM(tiny_classifier, eps=eps)
        ours_fgsm = accuracy(tiny_classifier, FGSM(norm, eps)(tiny_classifier, x, y), y)
        assert abs(ours_fgsm - accuracy(tiny_classifier, ref_fgsm(x, y), y)) <= 0.01
    else:
        ref_pgd = ta.PGDL2(tiny_classifier, eps=eps, alpha=0.075 * eps, steps=20,
                           random_start=False)
    ours = accuracy(tiny_classifier, PGD(norm, eps, random_start=False)(tiny_classifier, x, y), y)
    assert abs(ours - accuracy(tiny_classifier, ref_pgd(x, y), y)) <= 0.01


def test_random_start_is_seeded(tiny_classifier):
    x, y = prototype_data(20, seed=5)
    a = PGD("linf", 0.05, steps=2, seed=7)(tiny_classifier, x, y)
    assert torch.equal(a, PGD("linf", 0.05, steps=2, seed=7)(tiny_classifier, x, y))
    assert not torch.equal(a, PGD("linf", 0.05, steps=2, seed=8)(tiny_classifier, x, y))


def test_attacks_fake_quantized_model_through_straight_through_gradients(tiny_classifier):
    x, y = prototype_data(200, seed=6)
    q = quantize(tiny_classifier, uniform_policy(tiny_classifier, 4, 4, None, False), "minmax",
                 calibration=[x[:100]]).eval()
    clean = accuracy(q, x, y)
    assert clean > 0.9
    assert accuracy(q, PGD("linf", 0.06)(q, x, y), y) < clean - 0.2
    assert q.training is False


def test_autoattack_is_at_least_as_strong_as_pgd(tiny_classifier):
    x, y = prototype_data(10, seed=7)
    aa = AutoAttack("linf", 0.07)
    aa_correct = attack_correct(tiny_classifier, aa, x, y)
    pgd_correct = attack_correct(tiny_classifier, PGD("linf", 0.07), x, y)
    assert 0 < pgd_correct.sum()
    assert aa_correct.sum() <= pgd_correct.sum()
    d = aa.details
    assert d["clean_correct"] - d["white_box_broken"] - d["square_extra"] == aa_correct.sum()


def test_bad_attack_settings_are_refused(tiny_classifier):
    assert {"fgsm", "pgd", "autoattack"} <= set(list_attacks())
    with pytest.raises(RobustqError, match="unknown attack"):
        get_attack("cw", "linf", 0.1)
    with pytest.raises(RobustqError, match="norm must"):
        PGD("l1", 0.1)
    with pytest.raises(RobustqError, match="eps must"):
        FGSM("linf", 0.0)
    with pytest.raises(RobustqError, match=r"\[0, 1\]"):
        FGSM("linf", 0.1)(tiny_classifier, torch.full((2, 3, 8, 8), 2.0), torch.zeros(2).long())
