"""Training speed in float32 against bfloat16 autocast (``robustq train --precision bf16``).

Runs robustq's own training loop (``models.train.fit``: crops, flips, noise, SGD) for one
epoch over a few batches of random images, float32 and bf16 interleaved repeat by repeat so that
both see the same machine load; reports the median seconds per step of each and their ratio, per
architecture. Random images: the speed of a step does not depend on the pixels. ``--bits 4``:
QAT instead (the model LSQ-quantized at 4/4 everywhere, as `robustq quantize` fine-tunes it,
without the distillation teacher's forward pass); ``--consistency 3``: with the noise-consistency
regularizer (two noisy copies per image); ``--variants fp32/eager fp32/compiled bf16/compiled``:
precisions and quantizer kernels (``quant.kernels``) to compare, the first the reference.

    python benchmarks/train_precision.py [--archs resnet20 resnet56 mobilenetv2] [--repeats 5]
        [--steps 4] [--batch-size 128] [--bits 4] [--consistency 3] [--variants ...] [--threads 1]
        [--out runs/bench/train_precision.json]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from robustq.data import ImageDataset
from robustq.models import get_model
from robustq.models.train import TrainConfig, fit
from robustq.quant import quantize
from robustq.quant.kernels import quant_kernels
from robustq.quant.policy import uniform_policy
from robustq.quant.quantize import calibrate
from robustq.utils import atomic_write_json, provenance


def random_dataset(images: int) -> ImageDataset:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(images) % 10).astype(np.int64)
    return ImageDataset(pixels, labels, tuple(f"c{i}" for i in range(10)), "random", "train")


def build(arch: str, bits: int | None, ds: ImageDataset, method: str = "lsq") -> torch.nn.Module:
    """The FP model, or (``bits``) its fake-quantized copy calibrated on a batch."""
    model = get_model(arch)
    if bits is None:
        return model
    qmodel = quantize(model, uniform_policy(model, bits, bits, None, first_input_fp=False), method)
    calibrate(qmodel, ds.tensors()[0][:64])
    return qmodel


def seconds_per_step(arch: str, ds: ImageDataset, cfg: TrainConfig, steps: int,
                     bits: int | None, kernels: str, method: str) -> float:
    torch.manual_seed(0)
    model = build(arch, bits, ds, method)
    t0 = time.perf_counter()
    with quant_kernels(kernels):
        fit(model, ds, cfg)
    return (time.perf_counter() - t0) / steps


def measure(arch: str, args: argparse.Namespace) -> dict:
    """Median seconds per step of each variant ("precision/kernels"), interleaved."""
    ds = random_dataset(args.steps * args.batch_size)
    variants = {v: v.split("/") for v in args.variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for repeat in range(args.repeats + 1):            # the first round warms up, uncounted
        for v, (precision, kernels) in variants.items():
            cfg = TrainConfig(arch=arch, epochs=1, batch_size=args.batch_size, sigma=0.25,
                              consistency=args.consistency, precision=precision)
            t = seconds_per_step(arch, ds, cfg, args.steps, args.bits, kernels, args.method)
            if repeat:
                times[v].append(t)
    med = {v: statistics.median(t) for v, t in times.items()}
    base = args.variants[0]
    row = {"arch": arch, "bits": args.bits, "method": args.method,
           "consistency": args.consistency,
           "s_per_step": {v: round(m, 4) for v, m in med.items()},
           f"speedup_vs_{base}": {v: round(med[base] / m, 2) for v, m in med.items()},
           "epoch_s_50k": {v: round(m * 50_000 / args.batch_size) for v, m in med.items()}}
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--archs", nargs="+", default=["resnet20", "resnet56", "mobilenetv2"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--bits", type=int, default=None, help="QAT at W/A = bits/bits (LSQ)")
    ap.add_argument("--method", default="lsq", help="quantization method with --bits")
    ap.add_argument("--consistency", type=float, default=0.0)
    ap.add_argument("--variants", nargs="+", default=["fp32/eager", "bf16/eager"],
                    help="precision/kernels, the first the reference (compiled: --bits only)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench/train_precision.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(arch, args) for arch in args.archs]
    atomic_write_json(args.out, {"rows": rows, "provenance": provenance(0, vars(args))})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
