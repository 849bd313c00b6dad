"""ARQ's reward through each sampling engine: seconds per episode and the rewards they give.

For an ARQ search on a weight-sharing model: ``--policies`` of its episodes (evenly spaced) are
re-bitted from the shared model and scored with the search's own reward (IRS against its FP
cache on its held-out certification images) through every ``--engines`` entry, the engines
interleaved policy by policy so that a busy machine slows them alike. Compiling engines are
warmed up before the clock starts (once per process, not per candidate). Per engine: the median
IRS seconds per episode and its ratio to eager, and the ACRs against eager's (largest
difference, Spearman rho). Results go to ``--out/reward_engines.json``; Markdown is printed.

    python benchmarks/reward_engines.py results/search/arq_b1.5625_e60_c100 \\
        --shared results/models/shared_resnet20_v2_s025/model.safetensors \\
        --fp-cache results/search/fp_cache_v2_h500_c100 --policies 6 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from robustq.quant.policy import Policy
from robustq.search import Search, SearchConfig
from robustq.search.evaluate import REWARD_ENGINES, arq_reward, sampled_candidate
from robustq.search.search import read_episodes
from robustq.search.shared import rebit
from robustq.utils import atomic_write_json, provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("search", type=Path, help="an ARQ search directory on a shared model")
    ap.add_argument("--shared", type=Path, help="the shared model (default: the search's)")
    ap.add_argument("--fp-cache", type=Path, help="the FP IRS cache (default: the search's)")
    ap.add_argument("--policies", type=int, default=6)
    ap.add_argument("--engines", default=",".join(REWARD_ENGINES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/reward_engines"))
    args = ap.parse_args()
    engines = args.engines.split(",")
    if "eager" not in engines or not set(engines) <= set(REWARD_ENGINES):
        raise SystemExit(f"--engines: eager and any of {', '.join(REWARD_ENGINES)}")
    torch.set_num_threads(args.threads)
    report(measure(args, engines), args.out)


def setup(args: argparse.Namespace) -> tuple[Search, list[Policy]]:
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    over = {k: str(v) for k, v in (("shared", args.shared), ("fp_cache", args.fp_cache)) if v}
    cfg = dataclasses.replace(cfg, **over)
    if cfg.reward_name != "arq" or cfg.shared is None:
        raise SystemExit(f"{args.search}: need an ARQ-rewarded search on a shared model")
    lines = read_episodes(args.search)
    pick = np.linspace(0, len(lines) - 1, args.policies).round().astype(int)
    return Search(cfg, args.out / "search"), [Policy.from_json(lines[i]["policy"]) for i in pick]


def measure(args: argparse.Namespace, engines: list[str]) -> dict:
    search, policies = setup(args)
    ctx = search.context()                     # the FP cache exists: nothing is re-certified
    contexts = {e: dataclasses.replace(ctx, engine=e) for e in engines}
    shape = (search.cfg.n_p, *search.shape)
    warm = {}
    for e in engines:                          # compile once per process, off the clock
        t0 = time.perf_counter()
        with torch.inference_mode():
            sampled_candidate(rebit(search.shared, policies[0], search.bn_batches),
                              contexts[e], args.out / "warm")(torch.rand(shape))
        warm[e] = time.perf_counter() - t0
    rows = []
    for k, policy in enumerate(policies):
        q = rebit(search.shared, policy, search.bn_batches)
        for e in engines[k % len(engines):] + engines[:k % len(engines)]:   # rotate the order
            _, info = arq_reward(q, contexts[e], args.out / f"p{k}_{e}")
            rows.append({"policy": k, "engine": e, "acr": info["acr"],
                         "certify_s": info["certify_s"]})
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows, "warmup_s": warm, "engines": engines,
            "cert_images": len(ctx.cert_images), "n_p": search.cfg.n_p,
            "threads": args.threads, "provenance": provenance(0, vars_json(args))}


def vars_json(args: argparse.Namespace) -> dict:
    return {k: str(v) for k, v in vars(args).items()}


def report(result: dict, out: Path) -> None:
    rows, engines = result["rows"], result["engines"]
    acr = {e: np.array([r["acr"] for r in rows if r["engine"] == e]) for e in engines}
    sec = {e: np.median([r["certify_s"] for r in rows if r["engine"] == e]) for e in engines}
    summary = {e: {"median_certify_s": float(sec[e]), "speedup_vs_eager": sec["eager"] / sec[e],
                   "max_abs_acr_diff": float(np.abs(acr[e] - acr["eager"]).max()),
                   "spearman_vs_eager": float(spearmanr(acr[e], acr["eager"])[0])}
               for e in engines}
    atomic_write_json(out / "reward_engines.json", {**result, "summary": summary})
    print(f"\n{result['cert_images']} images x n_p = {result['n_p']}, "
          f"{len(acr['eager'])} policies, {result['threads']} thread(s)\n")
    print("| engine | IRS s / episode (median) | vs eager | warm-up s | max abs ACR diff "
          "| Spearman rho vs eager |")
    print("| --- | --- | --- | --- | --- | --- |")
    for e in engines:
        s = summary[e]
        print(f"| {e} | {s['median_certify_s']:.1f} | {s['speedup_vs_eager']:.2f}x | "
              f"{result['warmup_s'][e]:.1f} | {s['max_abs_acr_diff']:.4f} | "
              f"{s['spearman_vs_eager']:.3f} |")


if __name__ == "__main__":
    main()
