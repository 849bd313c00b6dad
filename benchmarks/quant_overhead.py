"""Inference overhead of fake quantization: images/s of the FP model versus the same model
fake-quantized (each method, uniform 4/4 and 8/8), eager, side by side in one run; then the
inference-only copies used for certification: ``freeze_quantized`` (eager), and FP32 / LSQ 4/4 /
min-max 4/4 through ``compile_for_inference`` (torch.compile; ~30-60 s to compile each).

    python benchmarks/quant_overhead.py [--batch 400] [--repeats 5] [--no-compile]
"""

from __future__ import annotations

import argparse

import torch

from robustq.models import get_model
from robustq.models.compile import compile_for_inference
from robustq.quant import quantize, uniform_policy
from robustq.quant.inference import freeze_quantized
from robustq.utils import atomic_write_json, provenance

try:
    from benchmarks.throughput import median_time
except ImportError:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import median_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile rows")
    ap.add_argument("--out", default="runs/bench/quant_overhead.json")
    args = ap.parse_args()
    fp = get_model("resnet20").eval().to(memory_format=torch.channels_last)
    x = torch.rand(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    models = {"fp32": fp}
    for method in ("minmax", "dorefa", "pact", "lsq"):
        for bits in (8, 4):
            models[f"{method} {bits}/{bits}"] = quantize(fp, uniform_policy(fp, bits, bits),
                                                         method, calibration=x[:64]).eval()
    for name in [n for n in models if n.endswith("4/4")]:
        models[f"{name} frozen"] = freeze_quantized(models[name])
    if not args.no_compile:
        shape = tuple(x.shape)
        for name in ("fp32", "lsq 4/4", "minmax 4/4"):
            models[f"{name} compiled"] = compile_for_inference(
                freeze_quantized(models[name]), shape)

    def infer(m):
        with torch.inference_mode():
            m(x)

    rows = []
    for _ in range(2):                       # two interleaved passes, keep the faster
        for name, m in models.items():
            ips = args.batch / median_time(lambda m=m: infer(m), args.repeats)
            rows.append((name, ips))
    best = {name: max(v for n, v in rows if n == name) for name in models}
    result = {name: {"img_s": round(v, 1), "relative_to_fp32": round(v / best["fp32"], 3)}
              for name, v in best.items()}
    atomic_write_json(args.out, {"batch": args.batch, "results": result,
                                 "provenance": provenance(0, vars(args))})
    for name, r in result.items():
        print(f"| {name} | {r['img_s']:.0f} | {r['relative_to_fp32']:.2f} |")


if __name__ == "__main__":
    main()
