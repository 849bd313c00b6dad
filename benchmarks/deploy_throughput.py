"""Deployment engines side by side in one run: images/s of an FP checkpoint and a quantized one
through torch (eager; frozen fake-quant eager) and ONNX Runtime (the ``robustq export`` files:
fp32, and QDQ with int8 kernels), medians at one batch size, with the same run's sgemm peak;
then how often each deployed file predicts as its checkpoint on N noisy test images.

    python benchmarks/deploy_throughput.py FP.safetensors Q.safetensors --data DATA \\
        [--batch 400] [--repeats 5] [--agree 10000] [--out runs/bench/deploy.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from robustq.data import load_dataset
from robustq.quant.checkpoint import load_model
from robustq.quant.export import agreement, export_onnx
from robustq.quant.inference import freeze_quantized
from robustq.utils import atomic_write_json, provenance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import matmul_peak, median_time  # noqa: E402


def engines(fp_path: Path, q_path: Path, tmp: Path) -> dict[str, torch.nn.Module]:
    fp, q = load_model(fp_path)[0], load_model(q_path)[0]
    export_onnx(fp_path, tmp / "fp.onnx")
    export_onnx(q_path, tmp / "q.onnx")
    return {"fp32 torch eager": fp.to(memory_format=torch.channels_last),
            "fp32 ONNX Runtime": load_model(tmp / "fp.onnx")[0],
            "fake-quant torch eager": q, "fake-quant frozen eager": freeze_quantized(q),
            "deployed QDQ ONNX Runtime": load_model(tmp / "q.onnx")[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("fp", type=Path)
    ap.add_argument("quantized", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--agree", type=int, default=10_000, help="noisy test images compared")
    ap.add_argument("--out", default="runs/bench/deploy.json")
    args = ap.parse_args()
    test = load_dataset(args.data, "test")
    sigma = float(load_model(args.fp)[1].get("sigma") or 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        models = engines(args.fp, args.quantized, Path(tmp))
        x = torch.rand(args.batch, 3, 32, 32)
        rows = {name: [] for name in models}
        for _ in range(2):                              # two interleaved passes, keep the faster
            for name, m in models.items():
                with torch.inference_mode():
                    rows[name].append(args.batch / median_time(lambda m=m: m(x), args.repeats))
        xs, _ = test.spread(args.agree).tensors()
        xs = xs + sigma * torch.randn(xs.shape, generator=torch.Generator().manual_seed(0))
        agree = {"fp32": agreement(models["fp32 torch eager"], models["fp32 ONNX Runtime"], xs),
                 "quantized": agreement(models["fake-quant frozen eager"],
                                        models["deployed QDQ ONNX Runtime"], xs)}
    peak = matmul_peak(args.repeats)
    best = {n: max(v) for n, v in rows.items()}
    result = {"batch": args.batch, "sgemm_peak_gflops": round(peak, 1), "sigma": sigma,
              "img_s": {n: round(v, 1) for n, v in best.items()},
              "relative_to_fp32_eager": {n: round(v / best["fp32 torch eager"], 3)
                                         for n, v in best.items()},
              "agreement": {"images": len(xs), **agree},
              "provenance": provenance(0, {k: str(v) for k, v in vars(args).items()})}
    atomic_write_json(args.out, result)
    print(f"sgemm peak {peak:.0f} GFLOP/s; batch {args.batch}")
    for name, v in best.items():
        print(f"| {name} | {v:.0f} | {v / best['fp32 torch eager']:.2f} |")
    print(f"agreement on {len(xs)} noisy test images: fp32 {agree['fp32']:.4f}, quantized "
          f"{agree['quantized']:.4f} -> {args.out}")


if __name__ == "__main__":
    main()
