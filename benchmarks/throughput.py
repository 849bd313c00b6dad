"""Training and inference throughput of ResNet-20 (CIFAR), versus this machine's fp32 roofline.

Measures, side by side in one run: the fp32 matmul peak (sgemm GFLOP/s, large square matmuls),
inference images/s for default vs channels_last memory format at several batch sizes, and
training images/s (forward + backward + SGD step) likewise. Inference is reported as a fraction
of the roofline: images/s x FLOPs per image / peak FLOP/s.

    python benchmarks/throughput.py [--repeats 5] [--out runs/bench/throughput.json]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from robustq.models import get_model
from robustq.models.flops import layer_macs
from robustq.utils import atomic_write_json, provenance


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_peak(repeats: int, n: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Median GFLOP/s of an n x n x n matmul (2 n^3 FLOPs) in ``dtype`` (default fp32)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    # F.linear, not a @ b: torch 2.13's CPU bf16 ``mm`` takes a slow generic path (0.2 GFLOP/s
    # here), ``linear`` goes to oneDNN's AVX512-BF16 kernels as bf16 convolutions do
    return 2 * n**3 / median_time(lambda: torch.nn.functional.linear(a, b), repeats) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 400])
    ap.add_argument("--out", default="runs/bench/throughput.json")
    args = ap.parse_args()
    model = get_model("resnet20")
    flops = 2 * sum(layer_macs(model, (3, 32, 32)).values())
    peak = matmul_peak(args.repeats)
    rows = []
    for fmt_name, fmt in (("default", torch.contiguous_format), ("channels_last",
                                                                   torch.channels_last)):
        model = get_model("resnet20").to(memory_format=fmt)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for bs in args.batches:
            x = torch.rand(bs, 3, 32, 32).contiguous(memory_format=fmt)
            y = torch.randint(0, 10, (bs,))

            def infer(model=model, x=x):
                with torch.inference_mode():
                    model(x)

            def step(model=model, opt=opt, x=x, y=y):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()

            model.eval()
            t_inf = median_time(infer, args.repeats)
            model.train()
            t_train = median_time(step, args.repeats)
            ips = bs / t_inf
            rows.append({"memory_format": fmt_name, "batch": bs, "inference_img_s": round(ips, 1),
                         "train_img_s": round(bs / t_train, 1),
                         "inference_roofline_fraction": round(ips * flops / (peak * 1e9), 3)})
            print(rows[-1], flush=True)
    result = {"model": "resnet20", "flops_per_image": flops, "matmul_peak_gflops": round(peak, 1),
              "rows": rows, "provenance": provenance(0, vars(args))}
    atomic_write_json(args.out, result)
    print(f"peak {peak:.1f} GFLOP/s, {flops / 1e6:.1f} MFLOPs/image -> {args.out}")


if __name__ == "__main__":
    main()
