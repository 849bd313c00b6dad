"""Does the activation range decide whether DoReFa and PACT survive low bits? Each method at each
bit-width (W = A, first and last layers 8-bit) quantized from an FP checkpoint twice, its
activation ranges calibrated by the max observed (the earlier default) or by least squared
error (``clip="mse"``, the default now), then fine-tuned with the grid's recipe (``robustq
bench``: one epoch, cosine from lr 0.01, at the model's sigma; PACT without its small alpha
penalty here) and scored by clean and noisy (one seeded draw) top-1 on evenly spaced test images.

    python benchmarks/act_clip.py zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip [--methods dorefa,pact] [--bits 2,4] [--out F]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from robustq.data import load_dataset
from robustq.models import ModelCard
from robustq.models.evaluate import evaluate
from robustq.models.train import fit
from robustq.quant import uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.finetune import calibration_batches, finetune_config
from robustq.quant.quantize import calibrate, quantize
from robustq.quant.quantizers import ActivationRange
from robustq.utils import atomic_write_json, provenance


def one_row(fp, card, method: str, bits: int, clip: str, train_ds, test_ds, sigma: float,
            seed: int) -> dict:
    """Quantize with ``clip``-calibrated activation ranges, fine-tune, evaluate."""
    q = quantize(fp, uniform_policy(fp, bits, bits), method)
    for m in q.modules():
        if isinstance(m, ActivationRange):
            m.clip_by = clip
    calibrate(q, calibration_batches(train_ds, sigma=sigma, seed=seed))
    t0 = time.perf_counter()
    fit(q, train_ds, finetune_config(card, 1, 0.01, sigma, seed))
    res = evaluate(q.eval(), test_ds, sigma, seed=seed)
    return {"method": method, "bits": bits, "clip": clip, "finetune_s": time.perf_counter() - t0,
            "clean_accuracy": res["clean_accuracy"], "noisy_accuracy": res["noisy_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--methods", default="dorefa,pact")
    ap.add_argument("--bits", default="2,4")
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/act_clip.json")
    args = ap.parse_args()
    fp, meta = load_model(args.checkpoint)
    card, sigma = ModelCard.from_json(meta["card"]), float(meta.get("sigma", 0.0))
    train_ds = load_dataset(args.data, "train").spread(args.train_images)
    test_ds = load_dataset(args.data, "test").spread(args.test_images)
    print(f"FP: {evaluate(fp, test_ds, sigma, seed=args.seed)}", flush=True)
    rows = []
    for method in args.methods.split(","):
        for bits in [int(b) for b in args.bits.split(",")]:
            for clip in ("max", "mse"):           # side by side, same seed and images
                torch.manual_seed(args.seed)
                rows.append(one_row(fp, card, method, bits, clip, train_ds, test_ds, sigma,
                                    args.seed))
                print(json.dumps(rows[-1]), flush=True)
    atomic_write_json(args.out, {"rows": rows, "checkpoint": args.checkpoint, "sigma": sigma,
                                 "provenance": provenance(args.seed, vars(args))})


if __name__ == "__main__":
    main()
