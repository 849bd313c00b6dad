"""Defensive Quantization versus vanilla quantization under attack (spec 02 and 04).

From one FP checkpoint, for each activation bit-width: a vanilla quantized model (plain
quantization-aware fine-tuning) and a DQ model (the same fine-tuning plus beta * sum ||W^T W - I||^2
and bounded ReLUs), same architecture, method, weight bits, data, epochs and seed; and the FP
model through the same fine-tuning without quantization (the fair FP reference). Each model
(and the FP one) is evaluated on evenly spaced test images (250 by default): clean accuracy, FGSM and PGD
(l_inf, 20 steps) accuracy at each eps, and per-layer error amplification under PGD at the
largest eps. Cells are resumable (finished fine-tunings are reused); results go to
--out/dq.json and a Markdown table is printed.

    python benchmarks/dq_experiment.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip --act-bits 2 3 4 5 --w-bits 8 --epochs 1
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import numpy as np
import torch

from robustq.bench.attacks import FGSM, PGD, attack_correct, predict_batches
from robustq.data import load_dataset
from robustq.models import ModelCard
from robustq.models.base import set_activation_bound
from robustq.quant import uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.defensive import DQ_FILE, error_amplification
from robustq.quant.finetune import finetune_config, quantize_and_finetune
from robustq.quant.policy import FP
from robustq.report.plots import amplification, dq_styles
from robustq.utils import atomic_write_bytes, atomic_write_json, provenance


def evaluate_model(model, x, y, eps_list, batch) -> dict:
    row = {"clean": float((predict_batches(model, x) == y).float().mean())}
    for eps in eps_list:
        tag = f"{eps * 255:g}/255"
        row[f"fgsm {tag}"] = float(attack_correct(model, FGSM("linf", eps), x, y, batch).float()
                                   .mean())
        row[f"pgd {tag}"] = float(attack_correct(model, PGD("linf", eps), x, y, batch).float()
                                  .mean())
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--act-bits", type=int, nargs="+", default=[2, 3, 4, 5])
    ap.add_argument("--w-bits", type=int, default=8)
    ap.add_argument("--method", default="pact")
    ap.add_argument("--beta", type=float, default=3e-4)
    ap.add_argument("--act-bound", type=float, default=6.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--sigma", type=float, default=0.0, help="training noise (0: plain)")
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--test-images", type=int, default=250)
    ap.add_argument("--eps", type=float, nargs="+", default=[2 / 255, 4 / 255, 8 / 255])
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--out", default="runs/bench/dq")
    ap.add_argument("--plot", default=None, help="also write the amplification plot (PNG) here")
    args = ap.parse_args()
    out = Path(args.out)
    fp, meta = load_model(args.checkpoint)
    card = ModelCard.from_json(meta["card"])
    train_ds = load_dataset(args.data, "train").spread(args.train_images)
    test = load_dataset(args.data, "test").spread(args.test_images)
    x, y = test.tensors()

    def evaluated(name: str, model, head: dict) -> dict:
        """One row, computed once: rows are stored as they finish, so a killed run resumes."""
        path, amp_path = out / "rows" / f"{name}.json", out / "rows" / f"{name}.amp.json"
        if path.is_file():
            row = json.loads(path.read_text())
            row.pop("amplification", None)          # older runs kept it in the row
        else:
            torch.manual_seed(0)
            row = {**head, **evaluate_model(model, x, y, args.eps, args.batch)}
            atomic_write_json(path, row)
        print(json.dumps(row), flush=True)
        if not amp_path.is_file():
            torch.manual_seed(0)
            x_adv = PGD("linf", max(args.eps))(model, x, y)
            atomic_write_json(amp_path, error_amplification(model, x, x_adv))
        return {**row, "amplification": json.loads(amp_path.read_text())}

    def trained(name: str, dq: bool, w_bits: int, a_bits: int):
        """The cell's fine-tuned model (trained once, reused after): same data, epochs, lr and
        seed for every cell; DQ adds the bounded ReLU and beta * the Lipschitz penalty."""
        cell = out / name
        base = load_model(args.checkpoint)[0]
        cell_card = card
        if dq:
            set_activation_bound(base, args.act_bound)
            cell_card = ModelCard.from_json({**card.to_json(),
                                             "extra": {"act_bound": args.act_bound}})
        if not (cell / "model.safetensors").is_file():
            first_last = None if w_bits == FP else 8
            cfg = finetune_config(card, args.epochs, args.lr, args.sigma)
            quantize_and_finetune(base, cell_card, uniform_policy(base, w_bits, a_bits, first_last),
                                  args.method, train_ds, test.subset([]), cfg, cell,
                                  resume=True, dq_beta=args.beta if dq else 0.0,
                                  base_meta={"checkpoint": args.checkpoint})
        return load_model(cell / "model.safetensors")[0]

    rows = [evaluated("fp32", fp, {"model": "FP32", "a_bits": 32})]
    for bits in args.act_bits:
        for variant in ("vanilla", "dq"):
            name = f"{variant}_w{args.w_bits}a{bits}"
            rows.append(evaluated(name, trained(name, variant == "dq", args.w_bits, bits),
                                  {"model": variant, "a_bits": bits}))
    # the FP model through the same fine-tuning (no quantization): the fair FP reference when
    # the checkpoint was trained with noise and the cells are fine-tuned without
    rows.append(evaluated("fp32_finetuned", trained("fp32_finetuned", False, FP, FP),
                          {"model": "FP32 fine-tuned", "a_bits": 32}))
    atomic_write_json(out / DQ_FILE, {"rows": rows, "provenance": provenance(0, vars(args))})
    if args.plot:
        uri = amplification({f"{r['model']} a{r['a_bits']}": r["amplification"] for r in rows},
                            dq_styles(rows))
        atomic_write_bytes(args.plot, base64.b64decode(uri.split(",", 1)[1]))
    keys = [k for k in rows[0] if k not in ("model", "a_bits", "amplification")]
    print("| model | A bits | " + " | ".join(keys) + " | mean amplification |")
    print("| --- " * (len(keys) + 3) + "|")
    for r in rows:
        amp = float(np.nanmean(list(r["amplification"].values())))
        print(f"| {r['model']} | {r['a_bits']} | " + " | ".join(f"{r[k]:.3f}" for k in keys)
              + f" | {amp:.3f} |")


if __name__ == "__main__":
    main()
