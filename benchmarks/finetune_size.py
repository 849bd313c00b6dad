"""Does the search's fine-tuning recipe gain from more images or a larger learning rate? Uniform
W/A policy (every layer and the input image), quantized and fine-tuned as `robustq search` does
(one epoch, SGD momentum 0.9, noise at the model's sigma; lr 1e-3 there) over growing numbers of
training images and each learning rate of ``--lrs``, scored by clean and noisy (one draw) top-1
on held-out training images (the last of the same seeded permutation).

    python benchmarks/finetune_size.py --sizes 2000,10000 [--lrs 1e-3,1e-2] [--bits 4]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from robustq.data import load_dataset
from robustq.models.evaluate import evaluate
from robustq.quant import uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.search.evaluate import build_quantized
from robustq.utils import atomic_write_json, provenance


def numbers(kind: type) -> Callable[[str], list]:
    """An argparse type: a comma-separated list of ``kind`` (a clear usage error otherwise)."""
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, "
                                             f"got {text!r}") from None
    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default="zoo/resnet20_cifar10_sigma0.25.safetensors")
    ap.add_argument("--data", default="../shared/data/cifar10-jpeg.zip")
    ap.add_argument("--sizes", type=numbers(int), default=[2000, 10000])
    ap.add_argument("--lrs", type=numbers(float), default=[1e-3],
                    help="comma-separated SGD learning rates")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--method", default="lsq")
    ap.add_argument("--holdout", type=int, default=2000)
    ap.add_argument("--out", default="runs/bench/finetune_size.json")
    args = ap.parse_args()
    fp, meta = load_model(args.checkpoint)
    sigma = float(meta["sigma"])
    train = load_dataset(args.data, "train")
    perm = np.random.default_rng(0).permutation(len(train))
    hold = train.subset(np.sort(perm[-args.holdout:]))
    policy = uniform_policy(fp, args.bits, args.bits, first_last_bits=None, first_input_fp=False)
    rows: list[dict] = []

    def record(row: dict) -> None:                 # written after every row: a kill keeps them
        rows.append(row)
        print(json.dumps(row), flush=True)
        atomic_write_json(args.out, {"rows": rows, "provenance": provenance(0, vars(args))})

    record({"images": 0, "model": "FP32", **evaluate(fp, hold, sigma=sigma)})
    for lr in args.lrs:
        for k in args.sizes:
            t0 = time.perf_counter()
            q = build_quantized(fp, policy, args.method, train.subset(np.sort(perm[:k])), sigma,
                                lr, 0)
            record({"images": k, "lr": lr, "model": f"{args.method} {args.bits}/{args.bits}",
                    "finetune_s": round(time.perf_counter() - t0, 1),
                    **evaluate(q, hold, sigma=sigma)})


if __name__ == "__main__":
    main()
