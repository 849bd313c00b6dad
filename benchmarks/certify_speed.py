"""Certification speed: robustq's sampler versus the straightforward reference, side by side.

The reference is the original smoothing code's loop (Cohen et al.): per batch, repeat the image,
add ``randn_like`` noise, run the eager model, and count predictions one by one in Python.
robustq: ``Smooth`` (seeded chunked noise drawn channels_last, scatter-add counts) on the model
frozen for inference. Same model, images, n0, n, batch size, threads, in one process; the fp32
matmul peak is measured in the same run and inference is reported as a fraction of it.

    python benchmarks/certify_speed.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip --images 4 --n 2000
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from robustq.certify import Smooth
from robustq.data import load_dataset
from robustq.models import load_checkpoint
from robustq.models.compile import freeze_for_inference
from robustq.models.flops import layer_macs
from robustq.utils import atomic_write_json, provenance

try:
    from benchmarks.throughput import matmul_peak
except ImportError:  # run as a script from the repository root
    import sys
    from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="runs/bench/certify_speed.json")
    args = ap.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    sigma = meta["sigma"]
    ds = load_dataset(args.data, "test")
    xs, _ = ds.tensors(np.arange(0, 20 * args.images, 20))
    flops = 2 * sum(layer_macs(model, ds.image_shape).values())
    frozen = freeze_for_inference(model, (args.batch, *ds.image_shape))
    ref = ReferenceSmooth(model.eval(), ds.num_classes, sigma)
    fast = Smooth(frozen, ds.num_classes, sigma, batch_size=args.batch, chunk=100)
    samples = args.images * (args.n0 + args.n)

    def run_ref():
        for x in xs:
            ref.sample_noise(x, args.n0, args.batch)
            ref.sample_noise(x, args.n, args.batch)

    def run_fast():
        fast.certify_many(xs, args.n0, args.n, 0.001, seeds=range(len(xs)))

    peak = matmul_peak(3)
    times = {"reference": [], "robustq": []}
    run_fast(), run_ref()                                          # warm-up
    for _ in range(args.rounds):                                   # interleaved rounds
        for name, fn in (("reference", run_ref), ("robustq", run_fast)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "samples_per_run": samples, "flops_per_sample": flops,
        "matmul_peak_gflops": round(peak, 1),
        "samples_per_s": {k: round(samples / v, 1) for k, v in med.items()},
        "speedup": round(med["reference"] / med["robustq"], 3),
        "roofline_fraction": {k: round(samples / v * flops / (peak * 1e9), 3)
                              for k, v in med.items()},
        "times_s": times, "provenance": provenance(0, vars(args)),
    }
    atomic_write_json(args.out, result)
    print({k: result[k] for k in ("samples_per_s", "speedup", "roofline_fraction",
                                  "matmul_peak_gflops")})


if __name__ == "__main__":
    main()
