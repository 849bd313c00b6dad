"""Defensive Quantization (Lin, Gan & Han, ICLR 2019): the Lipschitz (orthogonality) regularizer
and the error-amplification measurement."""

from __future__ import annotations

import torch
from torch import nn

from robustq.quant.layers import quantizable_layers
from robustq.utils.modes import eval_mode, forward_hooks

DQ_FILE = "dq.json"        # benchmarks/dq_experiment.py: DQ against vanilla quantization


def orthogonality_matrix(weight: torch.Tensor) -> torch.Tensor:
    """W reshaped to (C_out, C_in k k); returns W W^T if C_out < C_in k k, else W^T W."""
    w = weight.reshape(weight.shape[0], -1)
    return w @ w.T if w.shape[0] < w.shape[1] else w.T @ w


def lipschitz_penalty(model: nn.Module, beta: float) -> torch.Tensor:
    """beta * sum over Conv2d/Linear layers of ||W^T W - I||_F^2 (the smaller Gram matrix)."""
    total = torch.zeros(())
    for layer in quantizable_layers(model).values():
        gram = orthogonality_matrix(layer.weight)
        total = total + ((gram - torch.eye(gram.shape[0], dtype=gram.dtype)) ** 2).sum()
    return beta * total


@torch.no_grad()
def error_amplification(model: nn.Module, x: torch.Tensor, x_perturbed: torch.Tensor
                        ) -> dict[str, float]:
    """Per layer (Conv2d/Linear, by name, in order): mean over the batch of
    ||a(x') - a(x)||_2 / ||a(x)||_2, where a is the layer's output. Zero when x' = x.

    Samples whose clean output is exactly zero at a layer (a low-bit activation quantizer can
    zero a whole input) have no defined ratio and are left out of that layer's mean; a layer
    with no such sample gets NaN."""
    outputs: dict[str, list[torch.Tensor]] = {}

    def keep(name: str, mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        outputs.setdefault(name, []).append(out.detach().flatten(1))

    with forward_hooks(quantizable_layers(model), keep), eval_mode(model):
        model(x)
        model(x_perturbed)
    result = {}
    for name, (clean, pert) in outputs.items():
        norm = clean.norm(dim=1)
        ratio = (pert - clean).norm(dim=1)[norm > 0] / norm[norm > 0]
        result[name] = float(ratio.mean()) if len(ratio) else float("nan")
    return result
