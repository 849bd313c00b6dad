"""Defensive Quantization (Lin, Gan & Han, ICLR 2019): the Lipschitz (orthogonality) regularizer
and the error-amplification measurement."""

from __future__ import annotations

import torch
from torch import nn

from robustq.quant.layers import quantizable_layers


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
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: outputs.setdefault(n, []).append(
        out.detach().flatten(1))) for n, m in quantizable_layers(model).items()]
    was_training = model.training
    model.eval()
    try:
        model(x)
        model(x_perturbed)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    result = {}
    for name, (clean, pert) in outputs.items():
        norm = clean.norm(dim=1)
        ratio = (pert - clean).norm(dim=1)[norm > 0] / norm[norm > 0]
        result[name] = float(ratio.mean()) if len(ratio) else float("nan")
    return result
