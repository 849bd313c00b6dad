"""Certification speed per sampling engine, side by side with the reference loop.

The reference is the original smoothing code's loop (Cohen et al.): per batch, repeat the image,
add ``randn_like`` noise, run the eager FP model, and count predictions one by one in Python.
robustq: ``Smooth`` (seeded chunked noise, scatter-add counts) through each ``--engine`` of
``robustq certify`` (``robustq.quant.engines``), for the FP checkpoint and, with ``--quantized``,
a quantized one. Same images, n0, n, batch size and threads, in one process, rounds
interleaved, medians; the same run's fp32 and bf16 matmul peaks; the resident memory each
engine adds when built and the process's peak RSS while it samples.

    python benchmarks/certify_speed.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --quantized runs/r20_lsq44/model.safetensors --data ../shared/data/cifar10-jpeg.zip \
        --images 2 --n 2000
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from robustq.certify import Smooth
from robustq.data import load_dataset
from robustq.models.flops import layer_macs
from robustq.quant.checkpoint import load_model
from robustq.quant.engines import CALIBRATION_IMAGES, ENGINES, build_engine, calibration_images
from robustq.utils import atomic_write_json, provenance

try:
    from benchmarks.throughput import matmul_peak
except ImportError:  # run as a script from the repository root
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import matmul_peak


class ReferenceSmooth:
    """The straightforward implementation, as in the original randomized smoothing code."""

    def __init__(self, model, num_classes, sigma):
        self.model, self.num_classes, self.sigma = model, num_classes, sigma

    def sample_noise(self, x, num, batch_size):
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            for _ in range(math.ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * self.sigma
                predictions = self.model(batch + noise).argmax(1)
                counts += self.count_arr(predictions.cpu().numpy(), self.num_classes)
            return counts

    @staticmethod
    def count_arr(arr, length):
        counts = np.zeros(length, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """Peak resident memory sampled every 10 ms while the block runs."""

    def __enter__(self):
        self.peak, self.running = rss_mib(), True
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()
        return self

    def watch(self):
        while self.running:
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def build_samplers(args, ds, tmp: Path) -> tuple[dict, dict]:
    """name -> (function certifying the images, forward samples it runs); built RSS per name."""
    xs, _ = ds.tensors(np.arange(0, 20 * args.images, 20))
    shape, samples = (args.batch, *ds.image_shape), args.images * (args.n0 + args.n)
    fp, meta = load_model(args.checkpoint)
    sigma = meta["sigma"]
    ref = ReferenceSmooth(fp.eval(), ds.num_classes, sigma)
    runs = {"reference (eager FP)": lambda: [(ref.sample_noise(x, args.n0, args.batch),
                                              ref.sample_noise(x, args.n, args.batch))
                                             for x in xs]}
    built = {}
    calibration = calibration_images(load_dataset(args.data, "train").spread(
        CALIBRATION_IMAGES).tensors()[0], sigma)
    for label, path in (("FP", args.checkpoint), ("quantized", args.quantized)):
        if path is None:
            continue
        model, meta = load_model(path)
        for name in args.engines:
            if name == "onnx-int8" and meta.get("quant"):
                continue
            before = rss_mib()
            f, _ = build_engine(name, model, Path(path), shape, 10**7, tmp / f"{label}-{name}",
                                lambda: calibration)
            built[f"{label} {name}"] = rss_mib() - before
            smooth = Smooth(f, ds.num_classes, sigma, batch_size=args.batch, chunk=100)
            runs[f"{label} {name}"] = (lambda s=smooth: s.certify_many(
                xs, args.n0, args.n, 0.001, seeds=range(len(xs))))
    return {k: (v, samples) for k, v in runs.items()}, built


def time_rounds(runs: dict, rounds: int) -> tuple[dict, dict]:
    times, peaks = {k: [] for k in runs}, {}
    for fn, _ in runs.values():                                   # warm-up
        fn()
    for _ in range(rounds):                                       # interleaved rounds
        for name, (fn, _) in runs.items():
            with PeakRss() as peak:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
            peaks[name] = max(peaks.get(name, 0.0), peak.peak)
    return times, peaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--quantized", default=None)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", nargs="+", default=[e for e in ENGINES if e != "auto"])
    ap.add_argument("--out", default="runs/bench/certify_speed.json")
    args = ap.parse_args()
    ds = load_dataset(args.data, "test")
    flops = 2 * sum(layer_macs(load_model(args.checkpoint)[0], ds.image_shape).values())
    with tempfile.TemporaryDirectory() as tmp:
        runs, built = build_samplers(args, ds, Path(tmp))
        peak, peak_bf16 = matmul_peak(3), matmul_peak(3, dtype=torch.bfloat16)
        times, peaks = time_rounds(runs, args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: runs[k][1] / v for k, v in med.items()}
    ref = rate["reference (eager FP)"]
    result = {
        "samples_per_run": runs["reference (eager FP)"][1], "flops_per_sample": flops,
        "threads": torch.get_num_threads(), "matmul_peak_gflops": round(peak, 1),
        "bf16_matmul_peak_gflops": round(peak_bf16, 1),
        "fp32_roofline_samples_per_s": round(peak * 1e9 / flops, 1),
        "samples_per_s": {k: round(v, 1) for k, v in rate.items()},
        "vs_reference": {k: round(v / ref, 3) for k, v in rate.items()},
        "built_rss_mib": {k: round(v, 1) for k, v in built.items()},
        "peak_rss_mib": {k: round(v, 1) for k, v in peaks.items()},
        "times_s": times, "provenance": provenance(0, vars(args)),
    }
    atomic_write_json(args.out, result)
    print(f"fp32 sgemm {peak:.0f} GFLOP/s (roofline {result['fp32_roofline_samples_per_s']:.0f}"
          f" samples/s), bf16 {peak_bf16:.0f} GFLOP/s, {torch.get_num_threads()} threads")
    print("| engine | samples/s | vs reference | built RSS MiB | peak RSS MiB |")
    for k, v in rate.items():
        print(f"| {k} | {v:,.0f} | {v / ref:.2f}x | {built.get(k, 0):.0f} | {peaks[k]:,.0f} |")


if __name__ == "__main__":
    main()
