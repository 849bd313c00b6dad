"""Clean and noisy top-1 accuracy of several checkpoints on the same images under the same noise
(``models.evaluate.correct_per_image``, ``--draws`` seeded draws per image), each against a
reference, paired per image with 95% t intervals. A cheap proxy (base-classifier accuracy under
noise, not a certificate) for ranking QAT recipes before certifying the best. Nothing is written.

    python benchmarks/noisy_paired.py zoo/resnet20_cifar10_sigma0.25_v2.safetensors \\
        base=runs/levers/base/model.safetensors kd0=runs/levers/kd0/model.safetensors
"""

from __future__ import annotations

import argparse
import time

import torch

from robustq.certify.metrics import paired_difference
from robustq.data import load_dataset
from robustq.models.evaluate import correct_per_image
from robustq.quant.checkpoint import load_model


def per_image(path: str, ds, sigma: float, draws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean correctness and the mean noisy correctness over ``draws`` seeds, per image."""
    model, _ = load_model(path)
    noisy = []
    for seed in range(draws):
        clean, n = correct_per_image(model, ds, sigma, seed=seed)
        noisy.append(n.float())
    return clean.float(), torch.stack(noisy).mean(0)


def interval(a: torch.Tensor, b: torch.Tensor) -> str:
    d = paired_difference(a.numpy(), b.numpy())
    return f"{100 * d.mean:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference")
    ap.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT")
    ap.add_argument("--data", default="../shared/data/cifar10-jpeg.zip")
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--draws", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data, "test")
    t0 = time.time()
    ref_clean, ref_noisy = per_image(args.reference, ds, args.sigma, args.draws)
    print(f"{len(ds)} test images, {args.draws} noise draws each at sigma {args.sigma}\n")
    print("| model | clean | noisy | clean minus reference | noisy minus reference |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| reference | {100 * ref_clean.mean():.2f} | {100 * ref_noisy.mean():.2f} | | |")
    for name, path in (item.split("=", 1) for item in args.models):
        clean, noisy = per_image(path, ds, args.sigma, args.draws)
        print(f"| {name} | {100 * clean.mean():.2f} | {100 * noisy.mean():.2f} | "
              f"{interval(clean, ref_clean)} | {interval(noisy, ref_noisy)} |")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
