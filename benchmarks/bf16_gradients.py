"""How far bfloat16 autocast moves a training gradient: per-layer cosine similarity between the
weight gradients of one noisy batch under float32 and under bf16 autocast, for an FP checkpoint
and its LSQ copies at uniform bit-widths (calibrated on another batch, train mode).

    python benchmarks/bf16_gradients.py zoo/resnet20_cifar10_sigma0.25_v2.safetensors \\
        --data ../shared/data/cifar10-jpeg.zip [--bits 32 8 4] [--images 128]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from robustq.data import load_dataset
from robustq.models import load_checkpoint
from robustq.quant import quantize
from robustq.quant.policy import uniform_policy
from robustq.quant.quantize import calibrate


def weight_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     bf16: bool) -> dict[str, torch.Tensor]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(x)
    F.cross_entropy(out.float(), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None and p.ndim > 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--bits", type=int, nargs="+", default=[32, 8, 4])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fp, meta = load_checkpoint(args.checkpoint)
    x, y = load_dataset(args.data, "test").tensors()
    x, y = x[:2 * args.images], y[:2 * args.images]
    x = x + meta.get("sigma", 0.0) * torch.randn_like(x)
    calib, batch, labels = x[:args.images], x[args.images:], y[args.images:]
    for bits in args.bits:
        model = fp
        if bits < 32:
            model = quantize(fp, uniform_policy(fp, bits, bits, None, first_input_fp=False), "lsq")
            calibrate(model, calib)
        model.train()
        g32, g16 = (weight_gradients(model, batch, labels, bf16) for bf16 in (False, True))
        cos = [float(F.cosine_similarity(g32[n].flatten(), g16[n].flatten(), dim=0)) for n in g32]
        print(f"{bits} bits: cosine over {len(cos)} layers median {statistics.median(cos):.3f}, "
              f"smallest {min(cos):.3f}")


if __name__ == "__main__":
    main()
