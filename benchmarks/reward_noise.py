"""How noisy is ARQ's search reward, and where do other policies rank under it?

For an ARQ search directory and a list of policy files, each policy is quantized and fine-tuned
with the search's recipe under ``--seeds`` fine-tuning seeds, and scored with the search's own
reward (IRS against its FP cache on its held-out certification images). Per policy: the mean and
spread of the held-out ACR across seeds (the fine-tuning noise the search sees in one episode);
per seed: the paired ACR difference to the first policy on the same images with its 95% interval
(``compare_runs``: the image-sampling error). A search's ``best_policy.json`` is named after its
strategy, as in ``robustq compare``. Results go to ``--out/reward_noise.json``; Markdown is
printed.

    python benchmarks/reward_noise.py runs/search_arq runs/search_arq/best_policy.json \\
        runs/search_uniform/best_policy.json runs/search_haq/best_policy.json \\
        --seeds 3 --out runs/bench/reward_noise
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from robustq.certify.run import compare_runs
from robustq.quant.cost import model_cost
from robustq.quant.policy import Policy
from robustq.search import Search, SearchConfig
from robustq.search.evaluate import arq_reward, build_quantized
from robustq.search.search import search_origin
from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError

SEED0 = 1000          # fine-tuning seeds the search's episodes (seed + episode < 1000) never used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("search", type=Path, help="an ARQ search directory (its FP cache is reused)")
    ap.add_argument("policies", type=Path, nargs="+", help="policy JSON files")
    ap.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per policy")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/reward_noise"))
    args = ap.parse_args()
    try:
        run(args)
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None


def run(args: argparse.Namespace) -> None:
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    if cfg.strategy != "arq":
        raise SystemExit(f"{args.search}: need an ARQ search (its FP cache and reward)")
    policies = {(search_origin(p) or {"name": p.stem})["name"]: (p, Policy.load(p))
                for p in args.policies}             # checked before the search is set up
    if len(policies) != len(args.policies):
        raise SystemExit(f"policy names must differ: {', '.join(map(str, args.policies))}")
    search = Search(cfg, args.search)
    ctx = search.context()                       # the FP cache exists: nothing is re-certified
    names = list(policies)
    results: dict[str, dict] = {}
    for name, (path, policy) in policies.items():
        runs = []
        for k in range(args.seeds):
            work = args.out / name / f"seed_{k}"
            t0 = time.perf_counter()
            q = build_quantized(search.fp, policy, cfg.method, search.ft_ds, search.sigma,
                                cfg.finetune_lr, cfg.seed + SEED0 + k)
            reward, info = arq_reward(q, ctx, work)
            runs.append({"seed": cfg.seed + SEED0 + k, "reward": reward, "acr": info["acr"],
                         "accuracy": info["accuracy"], "seconds": time.perf_counter() - t0,
                         "irs_dir": str(work / "irs")})
            print(json.dumps({"policy": name, **runs[-1]}), flush=True)
        acr = np.array([r["acr"] for r in runs])
        results[name] = {"policy_file": str(path),
                         "bitops_percent": model_cost(search.fp, policy,
                                                      search.shape).bitops_percent,
                         "runs": runs, "acr_mean": float(acr.mean()),
                         "acr_std_over_seeds": float(acr.std(ddof=1)) if len(acr) > 1 else 0.0}
    first = names[0]
    for name in names[1:]:
        diffs = [compare_runs(a["irs_dir"], b["irs_dir"])["acr"]
                 for a, b in zip(results[name]["runs"], results[first]["runs"], strict=True)]
        results[name]["paired_acr_vs_first"] = [vars(d) for d in diffs]
    out = {"search": str(args.search), "fp_acr": ctx.fp_acr,
           "cert_images": len(ctx.cert_images), "policies": results,
           "provenance": provenance(cfg.seed, {k: str(v) for k, v in vars(args).items()})}
    atomic_write_json(args.out / "reward_noise.json", out)
    print(f"\nHeld-out ACR under the search's reward ({len(ctx.cert_images)} images, FP "
          f"{ctx.fp_acr:.3f}), {args.seeds} fine-tuning seeds each:\n")
    print(f"| policy | BitOPs % | ACR per seed | mean (std over seeds) | {first} minus this, "
          "per seed [95% CI] |\n| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        per = " / ".join(f"{x['acr']:.3f}" for x in r["runs"])
        pairs = "; ".join(f"{-d['mean']:+.3f} [{-d['high']:+.3f}, {-d['low']:+.3f}]"
                          for d in r.get("paired_acr_vs_first", []))
        print(f"| {name} | {r['bitops_percent']:.3f} | {per} | {r['acr_mean']:.3f} "
              f"({r['acr_std_over_seeds']:.3f}) | {pairs or '-'} |")


if __name__ == "__main__":
    main()
