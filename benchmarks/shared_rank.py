"""Does the cheap episode reward rank policies like fully trained ones?

The search directory (``robustq search --shared``, ARQ's reward) gives the setup: FP model,
weight-sharing model, held-out certification images, FP cache, n_p. ``--policies`` K policies
are drawn as the shared model was trained (``sample_bits``, seeded, at the search's budget;
uniform 4/4 and 3/3 first where they fit) and each is scored twice with the search's reward
(IRS against the FP cache on the same held-out images and noise):
cheap, the shared model re-bitted with BatchNorm re-estimated (one episode), and dear, the
policy quantized and fine-tuned from FP with the named QAT recipe (``--recipe deploy``;
``--epochs`` overrides its epochs where the CPU cannot afford three), certified with ``--n-p``
samples per image. Reported: Spearman's rho between the two ACRs with a bootstrap 95% interval
over policies. Resumable: the fine-tunes resume at their epoch, scores are lines of
``--out/rank.jsonl``; ``--train-only`` runs the fine-tunes alone (no FP cache needed yet).

    python benchmarks/shared_rank.py runs/search_shared --policies 10 --epochs 1 \
        --n-p 100 --out runs/bench/shared_rank
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from robustq.quant.checkpoint import load_model
from robustq.quant.policy import Policy
from robustq.quant.workflow import QuantizeJob, run_quantize
from robustq.search import Search, SearchConfig
from robustq.search.diagnostics import rank_agreement
from robustq.search.evaluate import arq_reward
from robustq.search.shared import rebit, sample_bits
from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError
from robustq.utils.io import append_line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("search", type=Path, help="a search on a shared model, with ARQ's reward")
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--recipe", default="deploy")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--n-p", type=int, default=None, help="IRS samples per image for the "
                    "fine-tuned models (default: the search's)")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/shared_rank"))
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        run(args)
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None


def draw_policies(search: Search, k: int) -> list[Policy]:
    """Uniform 4/4 and 3/3 where they meet the budget, then random policies drawn as the
    shared model was trained, at the search's budget (seeded by the search's seed)."""
    table, budget = search.table, search.cfg.budget
    out = [table.policy(np.full(len(table), b), np.full(len(table), b)) for b in (4, 3)
           if table.bitops_percent(np.full(len(table), b), np.full(len(table), b)) <= budget]
    rng = np.random.default_rng((search.cfg.seed, 7))
    while len(out) < k:
        out.append(table.policy(*sample_bits(table, rng, (budget, budget), search.cfg.b_min,
                                             search.cfg.b_max, 0.0)))
    return out[:k]


def run(args: argparse.Namespace) -> None:
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    if cfg.reward_name != "arq" or cfg.shared is None:
        raise SystemExit(f"{args.search}: need a search on a shared model with ARQ's reward")
    search = Search(cfg, args.search)
    policies = draw_policies(search, args.policies)
    for i, policy in enumerate(policies):
        finetuned(args, cfg, i, policy)
    if args.train_only:
        return
    ctx = search.context()                        # the FP cache exists: read, not certified
    dear_ctx = dataclasses.replace(ctx, cert_cfg=dataclasses.replace(
        ctx.cert_cfg, n_p=args.n_p or cfg.n_p))
    log = args.out / "rank.jsonl"
    done = {r["policy_index"]: r for r in map(json.loads, log.read_text().splitlines())} \
        if log.is_file() else {}
    for i, policy in enumerate(policies):
        if i not in done:
            done[i] = score(args, search, ctx, dear_ctx, i, policy)
            append_line(log, json.dumps(done[i]))
    report(args, cfg, [done[i] for i in range(len(policies))])


def finetuned(args: argparse.Namespace, cfg: SearchConfig, i: int, policy: Policy) -> Path:
    """Policy ``i`` quantized and fine-tuned from FP with the recipe (resumed if killed)."""
    work = args.out / f"policy_{i:02d}"
    model_file = work / "qat" / "model.safetensors"
    if not model_file.is_file():
        policy_file = policy.save(work / "policy.json")
        options = {} if args.epochs is None else {"epochs": args.epochs}
        job = QuantizeJob.from_recipe(args.recipe, checkpoint=cfg.checkpoint, data=cfg.data,
                                      policy=str(policy_file), method="lsq", seed=cfg.seed,
                                      **options)
        t0 = time.perf_counter()
        run_quantize(job, work / "qat", resume=True)
        print(json.dumps({"policy_index": i, "qat_s": round(time.perf_counter() - t0, 1)}),
              flush=True)
    return model_file


def score(args: argparse.Namespace, search: Search, ctx, dear_ctx, i: int, policy: Policy
          ) -> dict:
    work = args.out / f"policy_{i:02d}"
    t0 = time.perf_counter()
    _, cheap = arq_reward(rebit(search.shared, policy, search.bn_batches), ctx, work / "cheap")
    t1 = time.perf_counter()
    model, meta = load_model(finetuned(args, search.cfg, i, policy))
    _, dear = arq_reward(model, dear_ctx, work / "dear")
    w = np.array([b.w for b in policy.values()])
    a = np.array([b.a for b in policy.values()])
    row = {"policy_index": i, "bitops_percent": search.table.bitops_percent(w, a),
           "episode_acr": cheap["acr"], "episode_accuracy": cheap["accuracy"],
           "trained_acr": dear["acr"], "trained_accuracy": dear["accuracy"],
           "episode_s": round(t1 - t0, 1), "qat_s": meta.get("train_time_s"),
           "policy": policy.to_json()}
    print(json.dumps({k: v for k, v in row.items() if k != "policy"}), flush=True)
    return row


def report(args: argparse.Namespace, cfg: SearchConfig, rows: list[dict]) -> None:
    try:
        agree = rank_agreement([r["episode_acr"] for r in rows], [r["trained_acr"] for r in rows])
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None
    rho, low, high = agree["rho"], agree["low"], agree["high"]
    out = {"search": str(args.search), "recipe": args.recipe, "epochs": args.epochs,
           "n_p": args.n_p, "spearman_rho": rho, "bootstrap_95": [low, high], "rows": rows,
           "provenance": provenance(cfg.seed, {k: str(v) for k, v in vars(args).items()})}
    atomic_write_json(args.out / "rank.json", out)
    print(f"\nSpearman rho {rho:.3f} (bootstrap 95% [{low:.3f}, {high:.3f}]) over {len(rows)} "
          "policies\n\n| policy | BitOPs % | episode ACR | fine-tuned ACR | episode acc | "
          "fine-tuned acc | QAT s |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['policy_index']} | {r['bitops_percent']:.3f} | {r['episode_acr']:.3f} | "
              f"{r['trained_acr']:.3f} | {r['episode_accuracy']:.3f} | "
              f"{r['trained_accuracy']:.3f} | {r['qat_s'] or 0:.0f} |")


if __name__ == "__main__":
    main()
