"""Adversarial attacks with one interface: configure once, call on batches.

    attack = PGD("linf", eps=8 / 255)
    x_adv = attack(model, x, y)          # x, x_adv in [0, 1], NCHW; ||x_adv - x|| <= eps

Every attack runs on the model as given: for a fake-quantized model that is the fake-quant graph,
whose rounding has straight-through gradients (spec 04: attacking a real integer model gives no
gradient). The base class puts the model in eval mode (and restores it), checks the input range,
and seeds its own ``torch.Generator``; nothing prints. Budgets: ``linf`` eps is per pixel in [0, 1]
units; ``l2`` eps is the l2 norm of the perturbation in the same units.

FGSM and PGD are our own (short, and tested against ``torchattacks``); AutoAttack is the packaged
reference implementation (``pyautoattack``), run as its ``standard`` cascade APGD-CE, APGD-T,
FAB-T, then Square, with the white-box stages and the black-box Square stage recorded separately so
that gradient masking (Square finding adversarial examples the white-box attacks missed) is visible.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from pyautoattack import AutoAttack as Reference
from torch import nn

from robustq.utils.device import module_device
from robustq.utils.errors import RobustqError
from robustq.utils.modes import eval_mode

NORMS = ("linf", "l2")
_ATTACKS: dict[str, Callable[..., Attack]] = {}


def register_attack(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        _ATTACKS[name] = cls
        cls.name = name
        return cls
    return deco


def list_attacks() -> list[str]:
    return sorted(_ATTACKS)


def get_attack(name: str, norm: str, eps: float, **kwargs) -> Attack:
    """The attack ``name`` (``fgsm``, ``pgd``, ``autoattack``) with budget ``eps`` under ``norm``."""
    if name not in _ATTACKS:
        raise RobustqError(f"unknown attack {name!r}; known: {', '.join(list_attacks())}")
    return _ATTACKS[name](norm, eps, **kwargs)


@dataclass
class Attack:
    """Base class: ``attack(model, x, y) -> x_adv`` with the budget and range guaranteed."""

    norm: str
    eps: float
    seed: int = 0
    name = "attack"
    details: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise RobustqError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if not self.eps > 0:
            raise RobustqError(f"eps must be > 0, got {self.eps}")

    @property
    def label(self) -> str:
        eps = f"{self.eps * 255:g}/255" if self.norm == "linf" else f"{self.eps:g}"
        return f"{self.name}-{self.norm}-{eps}"

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or len(x) != len(y):
            raise RobustqError(f"expected images (N, C, H, W) and N labels, got {tuple(x.shape)} "
                               f"and {tuple(y.shape)}")
        if x.min() < 0 or x.max() > 1:
            raise RobustqError("attack inputs must be in [0, 1] (normalization belongs in the model)")
        with eval_mode(model):
            gen = torch.Generator(device=x.device).manual_seed(self.seed)
            x_adv = self.perturb(model, x.detach().contiguous(), y, gen)
        return project(x_adv.detach(), x, self.norm, self.eps)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def project(x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then onto [0, 1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / n, max=1.0)
    # clamping into [0, 1] moves every coordinate towards x, so the budget still holds
    return (x + delta).clamp(0, 1)


def _loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit ``norm``: sign for l_inf, normalized gradient for l_2."""
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


@register_attack("fgsm")
@dataclass
class FGSM(Attack):
    """Fast gradient (sign) method: one step of size eps along the steepest-ascent direction."""

    def perturb(self, model, x, y, gen):
        return x + self.eps * _ascent(_loss_grad(model, x, y), self.norm)


@register_attack("pgd")
@dataclass
class PGD(Attack):
    """Projected gradient descent (Madry et al.): random start, ``steps`` steps of
    ``step_ratio * eps`` (spec 04: 20 steps of 0.075 eps), projection after every step."""

    steps: int = 20
    step_ratio: float = 0.075
    random_start: bool = True

    def perturb(self, model, x, y, gen):
        x_adv = x
        if self.random_start:
            if self.norm == "linf":     # uniform in the l_inf ball
                noise = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * self.eps
            else:   # gaussian direction, radius uniform in [0, eps] (as torchattacks' PGDL2)
                g = torch.randn(x.shape, generator=gen, device=x.device)
                r = torch.rand(len(x), generator=gen, device=x.device) * self.eps
                noise = _ascent(g, "l2") * r.view(-1, 1, 1, 1)
            x_adv = project(x + noise, x, self.norm, self.eps)
        # keep, per sample, the first iterate that fools the model (later steps may undo it)
        best, fooled = x_adv.clone(), _fooled(model, x_adv, y)
        for _ in range(self.steps):
            step = self.step_ratio * self.eps * _ascent(_loss_grad(model, x_adv, y), self.norm)
            x_adv = project(x_adv + step, x, self.norm, self.eps)
            live = ~fooled
            best[live] = x_adv[live]
            fooled |= _fooled(model, x_adv, y)
        return best


def _fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) != y


WHITE_BOX = ["apgd-ce", "apgd-t", "fab-t"]


class _StageHandler(logging.Handler):
    """Forwards the reference's per-attack debug lines ("running apgd-t", "apgd-t - 1/2 - ...",
    "robust accuracy after APGD-T: 52.00% ...") to a callback, as short progress labels."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("running "):
            self.say(msg[len("running "):])
        elif " - " in msg and "successfully perturbed" in msg:
            attack, batch = msg.split(" - ")[:2]
            self.say(f"{attack}, batch {batch}")
        elif msg.startswith("robust accuracy after"):
            self.say(msg.split(" (")[0])


@contextlib.contextmanager
def autoattack_stages(say: Callable[[str], None]) -> Iterator[None]:
    """While open, AutoAttack reports each stage and batch of the reference's cascade to
    ``say`` (nothing is printed; the results are unchanged)."""
    log = logging.getLogger("auto-attack")
    handler, level = _StageHandler(say), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    _STAGES.append(say)
    try:
        yield
    finally:
        _STAGES.remove(say)
        log.removeHandler(handler)
        log.setLevel(level)


_STAGES: list[Callable[[str], None]] = []


@register_attack("autoattack")
@dataclass
class AutoAttack(Attack):
    """AutoAttack ``standard`` (Croce & Hein 2020) from ``pyautoattack``.

    Runs the white-box stages (APGD-CE, APGD-T, FAB-T) as a cascade, then Square (5,000 queries)
    on the points they left correct: the same cascade and result as ``standard``. After a call,
    ``details`` holds ``white_box_broken`` and ``square_extra`` (points only Square broke); a
    non-zero ``square_extra`` flags gradient masking.
    """

    batch_size: int = 250

    def perturb(self, model, x, y, gen):
        aa = Reference(model, norm="Linf" if self.norm == "linf" else "L2", eps=self.eps,
                       seed=self.seed, version="standard", device=x.device)
        aa.verbose = bool(_STAGES)        # its debug lines feed autoattack_stages only
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        if classes < 4:
            raise RobustqError(f"AutoAttack standard needs at least 4 classes (its DLR loss); "
                               f"the model has {classes}")
        aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = min(9, classes - 1)
        if not _STAGES:
            logging.getLogger("auto-attack").setLevel(logging.WARNING)
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        x_adv = x.clone()
        # the reference's gradient check crashes on non-contiguous (e.g. permuted) batches
        idx = torch.nonzero(correct).flatten()
        broken_wb = square_extra = 0
        if len(idx):
            aa.attacks_to_run = list(WHITE_BOX)
            adv, _ = aa.run_standard_evaluation(x[idx].contiguous(), y[idx].contiguous(),
                                                batch_size=self.batch_size)
            x_adv[idx] = adv
            with torch.no_grad():
                still = model(adv).argmax(1) == y[idx]
            broken_wb = int((~still).sum())
            left = idx[still]
            if len(left):
                aa.attacks_to_run = ["square"]
                adv_sq, _ = aa.run_standard_evaluation(x[left].contiguous(), y[left].contiguous(),
                                                       batch_size=self.batch_size)
                x_adv[left] = adv_sq
                with torch.no_grad():
                    square_extra = int((model(adv_sq).argmax(1) != y[left]).sum())
        self.details = {"clean_correct": int(correct.sum()), "white_box_broken": broken_wb,
                        "square_extra": square_extra}
        return x_adv


def predict_batches(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Top-1 predictions of ``model`` on ``x`` in inference mode, in batches."""
    device = module_device(model)
    with eval_mode(model), torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size].to(device).contiguous(
            memory_format=torch.channels_last)).argmax(1).cpu()
            for i in range(0, len(x), batch_size)])


def attack_correct(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                   batch_size: int = 200) -> torch.Tensor:
    """Per-sample bool: does ``model`` classify the attacked image correctly?"""
    out = []
    details: dict[str, int] = {}
    device = module_device(model)           # the attack runs where the model is
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        x_adv = attack(model, xb, yb)
        out.append(predict_batches(model, x_adv) == yb.cpu())
        for k, v in attack.details.items():
            details[k] = details.get(k, 0) + v
    attack.details = details
    return torch.cat(out)
