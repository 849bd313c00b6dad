"""Incremental (IRS) versus from-scratch certification of approximate models f_p of f.

Certifies f once with an IRS cache, then for each approximation (``--approx bf16``,
``--approx prune:0.3``, or a quantized checkpoint with ``--approx-checkpoint``) and each n_p:
  - IRS against the cache (alpha, alpha_zeta, gamma);
  - from scratch with n_p samples at alpha + alpha_zeta (same sample budget as IRS);
  - from scratch with the full n at alpha + alpha_zeta (the reference ACR).
Every run is a resumable robustq certification directory under --out; the table (ACR, smoothed
accuracy, wall time) goes to --out/irs_table.json and is printed as Markdown.

    python benchmarks/irs_vs_scratch.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip --max 100 --n 10000 --approx prune:0.3 \
        --full-scratch prune:0.3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustq.certify.run import CertifyConfig, certify_dataset, irs_certify_dataset
from robustq.data import load_dataset
from robustq.models.approx import approximate
from robustq.models.compile import freeze_for_inference
from robustq.quant.checkpoint import load_model
from robustq.utils import atomic_write_json, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--approx", action="append", default=[])
    ap.add_argument("--approx-checkpoint", action="append", default=[])
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    ap.add_argument("--skip", type=int, default=20)
    ap.add_argument("--max", type=int, default=100)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--alpha-zeta", type=float, default=0.001)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--full-scratch", action="append", default=[], metavar="NAME",
                    help="also certify this f_p (an --approx spec or checkpoint folder name) "
                         "from scratch with the full n; repeatable")
    ap.add_argument("--out", default="runs/bench/irs")
    args = ap.parse_args()
    out = Path(args.out)
    f, meta = load_model(args.checkpoint)
    ds = load_dataset(args.data, "test")
    shape = (args.batch, *ds.image_shape)
    base = dict(sigma=meta["sigma"], n0=args.n0, alpha=args.alpha, batch_size=args.batch,
                chunk=100, skip=args.skip, max_images=args.max, alpha_zeta=args.alpha_zeta,
                gamma=args.gamma)
    cfg_f = CertifyConfig(n=args.n, **base)
    info = {"checkpoint": args.checkpoint, "approx": None, "arch": meta["card"]["arch"]}
    # the same record `robustq certify --cache` writes, so a CLI run of f can be reused here
    f_sum = certify_dataset(freeze_for_inference(f, shape), ds, cfg_f, out / "f", cache=True,
                            model_info=info)
    rows = [{"model": "f (FP)", "method": "from scratch", "n": args.n, **pick(f_sum)}]
    approx = [(spec, approximate(f, spec)) for spec in args.approx]
    approx += [(Path(p).parent.name, load_model(p)[0]) for p in args.approx_checkpoint]
    joint = base | {"alpha": args.alpha + args.alpha_zeta}
    for name, fp in approx:
        fp = freeze_for_inference(fp, shape)
        tag = name.replace(":", "")
        if name in args.full_scratch:
            full = certify_dataset(fp, ds, CertifyConfig(n=args.n, **joint),
                                   out / f"{tag}_scratch_n")
            rows.append({"model": name, "method": "from scratch", "n": args.n, **pick(full)})
        for frac in args.fractions:
            n_p = max(1, int(round(frac * args.n)))
            irs = irs_certify_dataset(fp, ds, CertifyConfig(n=args.n, n_p=n_p, **base), out / "f",
                                      out / f"{tag}_irs_{n_p}")
            scratch = certify_dataset(fp, ds, CertifyConfig(n=n_p, **joint),
                                      out / f"{tag}_scratch_{n_p}")
            rows.append({"model": name, "method": "IRS", "n": n_p, **pick(irs)})
            rows.append({"model": name, "method": "from scratch", "n": n_p, **pick(scratch)})
    atomic_write_json(out / "irs_table.json", {"rows": rows, "provenance": provenance(0, vars(args))})
    print("| model | method | samples/image | ACR | smoothed acc. | cert. acc. @0.5 | time (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['n']} | {r['acr']:.3f} | "
              f"{r['smoothed_accuracy']:.3f} | {r['ca_0.5']:.3f} | {r['time_s']:.1f} |")


def pick(summary: dict) -> dict:
    return {"acr": summary["acr"], "smoothed_accuracy": summary["smoothed_accuracy"],
            "ca_0.5": summary["certified_accuracy"]["0.5"], "time_s": summary["certify_time_s"],
            "images": summary["images"]}


if __name__ == "__main__":
    main()
