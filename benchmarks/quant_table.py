"""Quantization methods x uniform bit-widths on a zoo model, all with the same short fine-tuning.

For each method (minmax: post-training, no fine-tuning; dorefa, pact, lsq: quantization-aware
fine-tuning with the checkpoint's Gaussian noise) and each uniform W/A bit-width, with the
first and last layers at 8 bits and the image input in FP: test accuracy clean and under
sigma noise, BitOPs % of FP32, size, fine-tuning wall time. Each cell is a resumable
``robustq quantize`` output directory under --out; finished cells are reused.

    python benchmarks/quant_table.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip --train-images 10000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustq.data import load_dataset
from robustq.models import ModelCard
from robustq.models.evaluate import evaluate
from robustq.quant import model_cost, uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.finetune import finetune_config, quantize_and_finetune
from robustq.utils import atomic_write_json, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--methods", nargs="+", default=["minmax", "dorefa", "pact", "lsq"])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 3, 2])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--test-images", type=int, default=10_000)
    ap.add_argument("--out", default="runs/bench/quant_table")
    args = ap.parse_args()
    out = Path(args.out)
    fp, meta = load_model(args.checkpoint)
    card = ModelCard.from_json(meta["card"])
    sigma = meta["sigma"]
    train_ds = load_dataset(args.data, "train").spread(args.train_images)
    test_ds = load_dataset(args.data, "test")
    test_ds = test_ds.spread(args.test_images)
    shape = (card.in_channels, *card.input_size)
    fp_acc = evaluate(fp, test_ds, sigma)
    fp_cost = model_cost(fp, uniform_policy(fp, 32, 32, None, False), shape)
    rows = [{"method": "FP32", "bits": 32, **fp_acc, "bitops_percent": 100.0,
             "size_kib": fp_cost.size_bytes / 1024, "finetune_s": 0.0}]
    for method in args.methods:
        for bits in args.bits:
            cell = out / f"{method}_w{bits}a{bits}"
            policy = uniform_policy(fp, bits, bits)
            if not (cell / "model.safetensors").is_file():
                cfg = finetune_config(card, args.epochs, args.lr, sigma)
                quantize_and_finetune(fp, card, policy, method, train_ds, test_ds, cfg, cell,
                                      resume=True, finetune=method != "minmax",
                                      base_meta={"checkpoint": args.checkpoint})
            q, qmeta = load_model(cell / "model.safetensors")
            cost = model_cost(q, policy, shape)
            rows.append({"method": method, "bits": bits, **evaluate(q, test_ds, sigma),
                         "bitops_percent": cost.bitops_percent, "size_kib": cost.size_bytes / 1024,
                         "finetune_s": qmeta.get("train_time_s", 0.0)})
            print(json.dumps(rows[-1]), flush=True)
    atomic_write_json(out / "quant_table.json", {"rows": rows, "sigma": sigma,
                                                  "provenance": provenance(0, vars(args))})
    print(f"| method | W/A bits | clean acc. | acc. under sigma={sigma} | BitOPs % | size KiB | "
          "fine-tune s |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['method']} | {r['bits']} | {r['clean_accuracy']:.4f} | "
              f"{r['noisy_accuracy']:.4f} | {r['bitops_percent']:.2f} | {r['size_kib']:.1f} | "
              f"{r['finetune_s']:.0f} |")


if __name__ == "__main__":
    main()
