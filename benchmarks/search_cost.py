"""Where an ARQ search spends its time, and what from-scratch certification would cost instead.

From a finished (or running) ``robustq search`` directory: the per-episode wall time split into
fine-tuning, reward (of which IRS certification) and agent, from ``episodes.jsonl``; then, for
``--episodes`` of its episodes (evenly spaced), the same quantized model is rebuilt (same policy,
same fine-tuning seed) and certified from scratch on the same held-out certification images with
the FP cache's n0 + n samples, timed side by side with a fresh IRS run of that model. Results go
to ``--out/search_cost.json`` and a Markdown table is printed.

    python benchmarks/search_cost.py runs/arq --episodes 3 --out runs/bench/search_cost
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from robustq.certify.run import certify_dataset, irs_certify_dataset
from robustq.quant.policy import Policy
from robustq.search import Search, SearchConfig
from robustq.search.evaluate import build_quantized
from robustq.utils import atomic_write_json, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("search", type=Path, help="an ARQ search directory")
    ap.add_argument("--episodes", type=int, default=3, help="episodes re-certified from scratch")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/search_cost"))
    args = ap.parse_args()
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    lines = [json.loads(ln) for ln in (args.search / "episodes.jsonl").read_text().splitlines()]
    if cfg.strategy != "arq" or not lines:
        raise SystemExit(f"{args.search}: need an ARQ search with finished episodes")
    search = Search(cfg, args.search)          # same settings: resumes, re-creates nothing
    ctx = search.context()                      # the FP cache is complete: nothing is re-run
    split = {k: float(np.mean([ln[k] for ln in lines]))
             for k in ("finetune_s", "reward_s", "agent_s", "episode_s")}
    split["irs_certify_s"] = float(np.mean([ln["certify_s"] for ln in lines]))
    picks = sorted({int(round(x)) for x in np.linspace(0, len(lines) - 1, args.episodes)})
    rows = []
    for ep in picks:
        policy = Policy.from_json(lines[ep]["policy"])
        q = build_quantized(search.fp, policy, cfg.method, search.ft_ds, search.sigma,
                            cfg.finetune_lr, cfg.seed + ep)
        work = args.out / f"episode_{ep:04d}"
        t0 = time.perf_counter()
        irs = irs_certify_dataset(q, ctx.cert_images, ctx.cert_cfg, ctx.cache_dir, work / "irs")
        t1 = time.perf_counter()
        full = certify_dataset(q, ctx.cert_images, search.cert_config(cfg.n, None),
                               work / "scratch")
        t2 = time.perf_counter()
        rows.append({"episode": ep, "bitops_percent": lines[ep]["bitops_percent"],
                     "irs_s": t1 - t0, "irs_acr": irs["acr"], "scratch_s": t2 - t1,
                     "scratch_acr": full["acr"]})
        print(json.dumps(rows[-1]), flush=True)
    scratch = float(np.mean([r["scratch_s"] for r in rows]))
    irs_now = float(np.mean([r["irs_s"] for r in rows]))
    result = {"search": str(args.search), "episodes_logged": len(lines), "split_s": split,
              "rechecked": rows, "scratch_episode_s": split["episode_s"] - irs_now + scratch,
              "provenance": provenance(cfg.seed, vars(args) | {"search": str(args.search)})}
    atomic_write_json(args.out / "search_cost.json", result)
    print("| per episode | seconds |\n| --- | --- |")
    for k, v in split.items():
        print(f"| {k} (search log mean) | {v:.1f} |")
    print(f"| IRS certification, re-run here (mean of {len(rows)}) | {irs_now:.1f} |")
    print(f"| from-scratch certification, n0 + n = {cfg.n0 + cfg.n} (mean of {len(rows)}) | "
          f"{scratch:.1f} |")
    print(f"| episode with from-scratch certification (estimate) | "
          f"{result['scratch_episode_s']:.1f} |")


if __name__ == "__main__":
    main()
