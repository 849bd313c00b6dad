"""Fake quantizers with straight-through gradients, one interface for every method.

A quantizer is an ``nn.Module`` with a mutable ``bits`` attribute: ``q(x)`` returns x rounded to
at most 2^bits levels (32 bits = identity), differentiable through a straight-through estimator
(STE) for ``round``. Weight quantizers are signed; activation quantizers find on their first
calibration batch whether their input is signed (e.g. a linear bottleneck) or not (after ReLU).

Methods (spec 02-quantization.md): ``minmax`` (calibrated ranges), ``dorefa`` (Zhou et al. 2016),
``pact`` (Choi et al. 2018, learnable clip alpha), ``lsq`` (Esser et al. 2020, learnable step);
``lsq_shared``: LSQ with a step per bit-width, for weight-sharing models (``quant.shared``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from robustq.quant.kernels import fused_grid, fused_lsq, fused_pact
from robustq.utils.errors import RobustqError

FP_BITS = 32


@dataclass(frozen=True)
class Grid:
    """A fixed uniform grid: q(x) = (clamp(round(x / scale + zero), lo, hi) - zero) * scale.

    What a quantizer computes once its parameters are frozen (inference); see
    ``robustq.quant.inference``.
    """

    scale: float
    lo: float
    hi: float
    zero: float = 0.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """q(x), with a straight-through gradient (identity inside [lo, hi])."""
        fused = fused_grid(x, self.scale, self.lo, self.hi, self.zero)   # None but in training
        if fused is not None:                                            # on compiled kernels
            return fused
        if self.zero:
            return (torch.clamp(round_ste(x / self.scale + self.zero), self.lo, self.hi)
                    - self.zero) * self.scale
        return torch.clamp(round_ste(x / self.scale), self.lo, self.hi) * self.scale


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward. Without autograd (inference, certification) it is
    plain ``round``: the same values (round(x) - x is exact in floating point, so x + (round(x)
    - x) == round(x)) in one pass instead of three."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return torch.round(x)
    return x + (torch.round(x) - x).detach()


HALF_DTYPES = (torch.bfloat16, torch.float16)


class Quantizer(nn.Module):
    """Base class: ``bits`` in [2, 8] or 32 (FP); ``calibrating`` collects ranges."""

    def __init__(self, bits: int = FP_BITS) -> None:
        super().__init__()
        self.bits = bits
        self.calibrating = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in HALF_DTYPES:      # under autocast: round on the grid in float32, since
            x = x.float()               # bfloat16's 8 significant bits would blur 8-bit levels
        if self.calibrating:
            self.observe(x.detach())
        if self.bits >= FP_BITS:
            return x
        return self.quantize(x)

    def observe(self, x: torch.Tensor) -> None:
        """Record statistics of a calibration batch (default: nothing to learn)."""

    def bits_changed(self) -> None:
        """Called when ``bits`` is changed in place (default: nothing to redo)."""

    def fit(self, weight: torch.Tensor) -> None:
        """Shape the parameters to the weight this quantizer will quantize; the layer that owns
        a weight quantizer calls it once, before calibration (default: nothing to shape)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def grid(self) -> Grid:
        """The fixed grid this quantizer rounds to (inference; ``bits`` < 32). Weight
        quantizers whose grid depends on the weight itself need not have one."""
        raise NotImplementedError(f"{type(self).__name__} has no fixed grid")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


HIST_BINS = 2048      # calibration histogram of |x| per activation quantizer
CLIPS = ("mse", "max")


class ActivationRange(Quantizer):
    """Shared by activation quantizers: whether the input is signed, its observed range, and a
    calibrated clipping range ``clip`` for a fixed-range grid.

    ``clip="mse"`` (DoReFa's and PACT's default): the range r, among 128 evenly spaced in
    (0, max], whose grid ``grid_at(r)`` has the least mean squared error over a histogram of the
    calibration batches' |x| (HIST_BINS bins over the first batch's max; larger values count in
    the top bin). At 2-4 bits the max wastes the few levels on a rare tail: a ResNet-20's ReLU
    outputs reach 5-10 while most lie below 1, so at 2 bits nearly every activation rounds to 0.
    ``clip="max"``: the largest |x| observed (the grids are symmetric, so |x| decides the
    error). The histogram is not saved with the model; ``clip`` is, and is recomputed from the
    histogram when ``bits`` changes after calibration in the same process."""

    def __init__(self, bits: int = FP_BITS, clip: str = "max") -> None:
        super().__init__(bits)
        if clip not in CLIPS:
            raise RobustqError(f"unknown clipping range {clip!r} (known: {', '.join(CLIPS)})")
        self.clip_by = clip
        self.register_buffer("signed", torch.tensor(False))
        self.register_buffer("observed_max", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("clip", torch.tensor(0.0))
        self.register_buffer("hist", torch.zeros(HIST_BINS), persistent=False)
        self.register_buffer("hist_max", torch.tensor(0.0), persistent=False)

    def observe(self, x: torch.Tensor) -> None:
        self.signed |= bool((x < 0).any())
        a = x.abs().float()
        self.observed_max.copy_(torch.maximum(self.observed_max, a.max()))
        if not bool(self.initialized):
            self.hist_max.copy_(a.max().clamp(min=1e-6))
        self.hist += torch.histc(a.clamp(max=float(self.hist_max)), HIST_BINS, 0.0,
                                 float(self.hist_max))
        self.initialized.fill_(True)
        self._update_clip()

    def bits_changed(self) -> None:
        if bool(self.hist.sum() > 0):       # calibrated in this process (else keep the saved clip)
            self._update_clip()

    def _update_clip(self) -> None:
        use_mse = self.clip_by == "mse" and self.bits < FP_BITS and bool(self.hist.sum() > 0)
        self.clip.copy_(self.mse_range() if use_mse else self.observed_max)

    def grid_at(self, r: float) -> Grid:
        """The grid of this quantizer when its range is ``r`` (``bits`` < 32)."""
        levels = 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1
        return Grid(r / levels, -levels if self.signed else 0, levels)

    @torch.no_grad()
    def mse_range(self) -> torch.Tensor:
        """The range of least squared rounding-and-clipping error over the histogram."""
        width = float(self.hist_max) / HIST_BINS
        centers = (torch.arange(HIST_BINS, device=self.hist.device) + 0.5) * width
        top = float(self.observed_max.clamp(min=1e-6))
        candidates = torch.linspace(top / 128, top, 128).tolist()
        errors = torch.stack([(self.hist * (self.grid_at(r).apply(centers) - centers) ** 2).sum()
                              for r in candidates])
        return torch.tensor(candidates[int(errors.argmin())])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # checkpoints written before ``clip`` existed used the observed max
        if prefix + "clip" not in state_dict and prefix + "observed_max" in state_dict:
            state_dict[prefix + "clip"] = state_dict[prefix + "observed_max"].clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ------------------------------------------------------------------------------- min-max
class MinMaxWeight(Quantizer):
    """Symmetric uniform: scale = max|w| / (2^(b-1) - 1), per tensor or per output channel."""

    def __init__(self, bits: int = FP_BITS, per_channel: bool = False) -> None:
        super().__init__(bits)
        self.per_channel = per_channel

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        q_max = 2 ** (self.bits - 1) - 1
        if self.per_channel:
            m = w.detach().abs().flatten(1).amax(1).view(-1, *([1] * (w.ndim - 1)))
        else:
            m = w.detach().abs().max()
        scale = torch.clamp(m, min=1e-12) / q_max
        return torch.clamp(round_ste(w / scale), -q_max, q_max) * scale


class MinMaxActivation(ActivationRange):
    """Uniform over [0, max] (or [-max, max] if signed), max from calibration batches."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid().apply(x)

    def grid(self) -> Grid:
        if not bool(self.initialized):
            raise RobustqError("min-max activation quantizer used before calibration")
        return self.grid_at(float(torch.clamp(self.observed_max, min=1e-12)))


# -------------------------------------------------------------------------------- DoReFa
def quantize_k(r: torch.Tensor, k: int) -> torch.Tensor:
    """DoReFa's q_k: round((2^k - 1) r) / (2^k - 1) for r in [0, 1], STE."""
    n = 2**k - 1
    return round_ste(r * n) / n


class DoReFaWeight(Quantizer):
    """w_q = 2 q_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1, values in [-1, 1].

    With ``keep_scale`` (default) the result is multiplied by the constant (detached) max|w|:
    the same 2^k levels, but a pretrained layer keeps its magnitude, so fine-tuning starts from
    the FP model's function instead of one whose layers are all rescaled (which, with BatchNorm
    in eval mode, compounds layer after layer). ``keep_scale=False`` is the paper's formula.
    """

    def __init__(self, bits: int = FP_BITS, keep_scale: bool = True) -> None:
        super().__init__(bits)
        self.keep_scale = keep_scale

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(w)
        wq = 2 * quantize_k(t / (2 * t.abs().max().clamp(min=1e-12)) + 0.5, self.bits) - 1
        return wq * w.detach().abs().max() if self.keep_scale else wq


class DoReFaActivation(ActivationRange):
    """q_k(clip(a, 0, 1)) (signed input: 2 q_k((clip(a, -1, 1) + 1) / 2) - 1).

    The paper trains from scratch, so its activations learn to live in [0, 1]. A pretrained FP
    model's do not (ReLU outputs reach 3-10), and clipping them at 1 costs 10+ points before any
    fine-tuning. With ``calibrated_range`` (default) a constant range r from calibration
    (``clip``: MSE-optimal by default, or the largest value observed) rescales first:
    r q_k(clip(a / r, 0, 1)); without calibration, or with ``calibrated_range=False``, r = 1:
    the paper's formula.
    """

    def __init__(self, bits: int = FP_BITS, calibrated_range: bool = True,
                 clip: str = "mse") -> None:
        super().__init__(bits, clip)
        self.calibrated_range = calibrated_range

    def range(self) -> torch.Tensor:
        return (self.clip.clamp(min=1e-6) if self.calibrated_range
                and bool(self.initialized) else torch.ones(()))

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        # computed on the grid below: the same values, and the frozen model (quant.inference)
        # then computes exactly what this does
        return self.grid().apply(x)

    def grid(self) -> Grid:
        # unsigned: r q_k(clip(x / r, 0, 1)) = clamp(round(x n / r), 0, n) r / n; signed:
        # r (2 q_k((clip(x / r, -1, 1) + 1) / 2) - 1) takes the n + 1 levels r (2j/n - 1),
        # j = 0..n, i.e. (clamp(round(x / s + n/2), 0, n) - n/2) s with s = 2r/n
        return self.grid_at(float(self.range()))

    def grid_at(self, r: float) -> Grid:
        n = 2**self.bits - 1
        if bool(self.signed):
            return Grid(2 * r / n, 0, n, n / 2)
        return Grid(r / n, 0, n)


# ---------------------------------------------------------------------------------- PACT
class _PACTFunction(torch.autograd.Function):
    """y_q = round(clip(x, 0, a) (2^b-1)/a) a/(2^b-1); dy/dx = 1 on [0, a), dy/da = 1 where x >= a."""

    @staticmethod
    def forward(ctx, x, alpha, levels, signed):
        lo = -alpha if signed else torch.zeros_like(alpha)
        y = torch.minimum(torch.maximum(x, lo), alpha)
        scale = alpha / levels
        ctx.save_for_backward(x, alpha)
        ctx.signed = signed
        return torch.round(y / scale) * scale

    @staticmethod
    def backward(ctx, grad):
        x, alpha = ctx.saved_tensors
        upper = x >= alpha
        if ctx.signed:
            lower = x <= -alpha
            inside = ~(upper | lower)
            g_alpha = (grad * upper).sum() - (grad * lower).sum()
        else:
            inside = (x >= 0) & ~upper
            g_alpha = (grad * upper).sum()
        return grad * inside, g_alpha.reshape(alpha.shape), None, None


class PACTActivation(ActivationRange):
    """Learnable clipping level alpha per layer, initialized from calibration (``clip``:
    MSE-optimal by default, or the max observed). From the max, alpha hardly moves in a short
    fine-tune: its gradient counts only the inputs above it, and there are almost none."""

    def __init__(self, bits: int = FP_BITS, init_alpha: float = 6.0, clip: str = "mse") -> None:
        super().__init__(bits, clip)
        self.alpha = nn.Parameter(torch.tensor(float(init_alpha)))

    def observe(self, x: torch.Tensor) -> None:
        super().observe(x)
        with torch.no_grad():
            self.alpha.copy_(self.clip.clamp(min=1e-3))

    def bits_changed(self) -> None:
        """Nothing to redo: alpha is learned (a re-bitted layer keeps it until recalibrated)."""

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1
        fused = fused_pact(x, self.alpha, levels, bool(self.signed))   # None unless compiled
        return _PACTFunction.apply(x, self.alpha, levels, bool(self.signed)) if fused is None \
            else fused

    def grid(self) -> Grid:
        # clip to [0 (or -alpha), alpha], then steps of alpha / levels: the same grid
        return self.grid_at(float(self.alpha.detach()))


def pact_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """PACT's L2 regularizer lambda * sum(alpha^2) over the model's PACT quantizers."""
    alphas = [m.alpha for m in model.modules() if isinstance(m, PACTActivation)]
    return lam * sum((a**2 for a in alphas), torch.tensor(0.0))


# ----------------------------------------------------------------------------------- LSQ
def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """x forward, gradient multiplied by g backward."""
    return (x - x * g).detach() + x * g


def lsq_initial_step(x: torch.Tensor, q_p: int) -> torch.Tensor:
    """LSQ's initial step (Esser et al.): 2 mean|x| / sqrt(Q_P), at least 1e-8."""
    return (2 * x.detach().abs().mean() / math.sqrt(q_p)).clamp(min=1e-8)


class LSQQuantizer(Quantizer):
    """v_q = round(clip(v/s, -Q_N, Q_P)) s with learnable step s, gradient scaled by
    1/sqrt(N Q_P); s initialized to 2 mean|v| / sqrt(Q_P) on the first batch seen."""

    def __init__(self, bits: int = FP_BITS, signed: bool | None = None) -> None:
        super().__init__(bits)
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("signed", torch.tensor(bool(signed)))
        self.register_buffer("initialized", torch.tensor(False))
        self.fixed_sign = signed is not None

    def bits_changed(self) -> None:
        self.initialized.fill_(False)     # the step of b bits is no step for b' bits

    def q_range(self) -> tuple[int, int]:
        if bool(self.signed):
            return 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1
        return 0, 2**self.bits - 1

    def observe(self, x: torch.Tensor) -> None:
        if not self.fixed_sign:
            self.signed |= bool((x < 0).any())
        self.init_step(x)

    def init_step(self, x: torch.Tensor) -> None:
        self.set_step(lsq_initial_step(x, self.q_range()[1]))

    # the step of the current bit-width: one learned step here, one per width in SharedLSQ
    def current_step(self) -> torch.Tensor:
        return self.step

    def step_ready(self) -> bool:
        return bool(self.initialized)

    @torch.no_grad()
    def set_step(self, value: torch.Tensor) -> None:
        self.step.copy_(value)
        self.initialized.fill_(True)

    def quantize(self, v: torch.Tensor) -> torch.Tensor:
        if not self.step_ready():
            self.observe(v.detach())
        q_n, q_p = self.q_range()
        s, count = self.step_for(v)
        if s.requires_grad and torch.is_grad_enabled():
            s = grad_scale(s, 1.0 / math.sqrt(count * q_p))
        fused = fused_lsq(v, s, -q_n, q_p)          # None unless training on compiled kernels
        return round_ste(torch.clamp(v / s, -q_n, q_p)) * s if fused is None else fused

    def step_for(self, v: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The step broadcast against ``v`` and how many values share each step."""
        return self.current_step(), v.numel()

    def grid(self) -> Grid:
        # round(clamp(v / s)) == clamp(round(v / s)) for integer bounds
        if not self.step_ready():
            raise RobustqError("LSQ quantizer used before its step was initialized")
        q_n, q_p = self.q_range()
        return Grid(float(self.current_step().detach()), -q_n, q_p)


def mse_step(x: torch.Tensor, q_n: int, q_p: int, candidates: int = 59,
             sample: int = 200_000) -> torch.Tensor:
    """The step of least mean squared quantization error round(clamp(x/s, -q_n, q_p)) s - x,
    among ``candidates`` multiples (0.1 to 3.0) of LSQ's initial 2 mean|x| / sqrt(q_p), on at
    most ``sample`` of x's values (a seeded subsample)."""
    x = x.detach().flatten().float()
    if x.numel() > sample:
        x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:sample]]
    base = lsq_initial_step(x, q_p)
    steps = [base * f for f in torch.linspace(0.1, 3.0, candidates)]
    with torch.no_grad():
        errors = torch.stack([((Grid(float(s), -q_n, q_p).apply(x) - x) ** 2).mean()
                              for s in steps])
    return steps[int(errors.argmin())]


class MSEStepLSQ(LSQQuantizer):
    """LSQ whose step starts at the least squared quantization error (``mse_step``) for
    unsigned inputs (activations after ReLU); signed inputs (weights) keep the paper's init.
    At 2 bits the paper's init from the mean of mostly small ReLU outputs leaves a step that
    training shrinks until most inputs clip: W2/A2 ResNet-20 reaches 28.6% after one epoch with
    it and 66.5% with this (docs/benchmarks.md, "LSQ at 2 bits"); the MSE init for 2-bit
    weights does not help, so they keep the paper's."""

    def init_step(self, x: torch.Tensor) -> None:
        if bool(self.signed):
            super().init_step(x)
        else:
            self.set_step(mse_step(x, *self.q_range()))


class PerChannelLSQ(LSQQuantizer):
    """LSQ for weights with one learned step per output channel (dim 0), each initialized to
    2 mean|w_c| / sqrt(Q_P) and its gradient scaled by 1/sqrt(N_c Q_P), N_c the channel's weight
    count. Esser et al. learn one step per tensor; at 4 bits a ResNet-20 layer's output channels
    differ several-fold in scale, and one step either clips the large channels or wastes levels on
    the small ones. Integer kernels take per-channel weight scales at no cost (ONNX QDQ, export).
    The step's shape is set by ``fit`` (the layer that owns the quantizer calls it)."""

    def __init__(self, bits: int = FP_BITS) -> None:
        super().__init__(bits, signed=True)

    def init_step(self, x: torch.Tensor) -> None:
        _, q_p = self.q_range()
        per_channel = x.detach().abs().flatten(1).mean(1)
        self.set_step((2 * per_channel / math.sqrt(q_p)).clamp(min=1e-8))

    def step_for(self, v: torch.Tensor) -> tuple[torch.Tensor, int]:
        s = self.current_step()
        return s.view((-1,) + (1,) * (v.ndim - 1)), v[0].numel()

    def grid(self) -> Grid:
        raise RobustqError("per-channel LSQ weight steps have no single grid (weights only)")

    def fit(self, weight: torch.Tensor) -> None:
        self.step = nn.Parameter(torch.ones(weight.shape[0]))


MAX_BITS = 8


class SharedLSQ(LSQQuantizer):
    """LSQ with one learned step per bit-width 2..8 over the same weights: a model re-bits in
    place and keeps every width's step (a weight-sharing model trained with random per-layer
    widths, ``quant.shared``). At one fixed width it computes exactly what ``LSQQuantizer``
    computes; calibration initializes every width's step from the same batch."""

    def __init__(self, bits: int = FP_BITS, signed: bool | None = None) -> None:
        super().__init__(bits, signed)
        del self.step
        self.steps = nn.Parameter(torch.ones(MAX_BITS + 1))
        self.initialized = torch.zeros(MAX_BITS + 1, dtype=torch.bool)   # the buffer, per width

    def bits_changed(self) -> None:
        """Nothing to redo: each width has its own step."""

    def current_step(self) -> torch.Tensor:
        return self.steps[self.bits]

    def step_ready(self) -> bool:
        return bool(self.initialized[self.bits])

    @torch.no_grad()
    def set_step(self, value: torch.Tensor) -> None:
        self.steps[self.bits] = value
        self.initialized[self.bits] = True

    def observe(self, x: torch.Tensor) -> None:
        if not self.fixed_sign:
            self.signed |= bool((x < 0).any())
        if self.calibrating:                    # every width from the calibration batch
            bits = self.bits
            try:
                for self.bits in range(2, MAX_BITS + 1):
                    self.init_step(x)
            finally:
                self.bits = bits
        elif self.bits < FP_BITS:
            self.init_step(x)


# ------------------------------------------------------------------------------ registry
# method -> (weight quantizer factory, activation quantizer factory)
_METHODS: dict[str, tuple[Callable[[], Quantizer], Callable[[], Quantizer]]] = {
    "minmax": (MinMaxWeight, MinMaxActivation),
    "dorefa": (DoReFaWeight, DoReFaActivation),
    "pact": (DoReFaWeight, PACTActivation),
    "lsq": (lambda: LSQQuantizer(signed=True), LSQQuantizer),
    "lsq_pc": (PerChannelLSQ, LSQQuantizer),
    "lsq_mse": (lambda: LSQQuantizer(signed=True), MSEStepLSQ),
    "lsq_shared": (lambda: SharedLSQ(signed=True), SharedLSQ),
}


def list_methods() -> list[str]:
    return sorted(_METHODS)


def check_method(method: str | None) -> None:
    """Raise ``RobustqError`` naming the known methods unless ``method`` is one (or None)."""
    if method is not None and method not in _METHODS:
        raise RobustqError(f"unknown quantization method {method!r}; choose one of: "
                           f"{', '.join(list_methods())}")


def get_quantizers(method: str) -> tuple[Quantizer, Quantizer]:
    """A fresh (weight, activation) quantizer pair for ``method``."""
    check_method(method)
    w, a = _METHODS[method]
    return w(), a()
