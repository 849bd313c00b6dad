"""Does the cheap episode reward rank policies like fully trained ones?

From a search on a weight-sharing model (``robustq search --shared``, ARQ's reward; random or
TPE episodes give the most diverse policies), ``--policies`` K episodes with distinct policies
are taken evenly over the reward ranks. Each policy is then quantized and fine-tuned from FP
with the named QAT recipe (``--recipe deploy``; ``--epochs`` overrides its epochs where the
CPU cannot afford three) and scored with the search's own reward machinery: IRS against the
search's FP cache on the same held-out certification images and noise, with ``--n-p`` samples
per image. Reported: Spearman's rho between the episode ACR and the fine-tuned ACR with a
bootstrap 95% interval over policies, and both values per policy. Resumable: every finished
policy is a line of ``--out/rank.jsonl``; a killed fine-tune resumes at its epoch.

    python benchmarks/shared_rank.py runs/search_shared_random --policies 10 --epochs 1 \\
        --n-p 500 --out runs/bench/shared_rank
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from robustq.quant.checkpoint import load_model
from robustq.quant.policy import Policy
from robustq.quant.workflow import QuantizeJob, run_quantize
from robustq.search import Search, SearchConfig
from robustq.search.evaluate import arq_reward
from robustq.search.search import read_episodes
from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError
from robustq.utils.io import append_line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("search", type=Path, help="a search on a shared model, with ARQ's reward")
    ap.add_argument("--policies", type=int, default=10)
    ap.add_argument("--recipe", default="deploy")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--n-p", type=int, default=500, help="IRS samples per image (reference)")
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


def chosen_episodes(search_dir: Path, k: int) -> list[dict]:
    """``k`` episodes with distinct policies, evenly spaced over the reward ranks."""
    lines, seen = [], set()
    for ln in sorted(read_episodes(search_dir), key=lambda e: e["reward"]):
        key = json.dumps(ln["policy"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            lines.append(ln)
    if len(lines) < k or k < 3:
        raise RobustqError(f"{search_dir}: {len(lines)} distinct policies, asked for {k} (>= 3)")
    return [lines[int(round(i))] for i in np.linspace(0, len(lines) - 1, k)]


def run(args: argparse.Namespace) -> None:
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    if cfg.reward_name != "arq" or cfg.shared is None:
        raise SystemExit(f"{args.search}: need a search on a shared model with ARQ's reward")
    episodes = chosen_episodes(args.search, args.policies)
    search = Search(cfg, args.search)
    ctx = search.context()                        # the FP cache exists: read, not certified
    ctx = dataclasses.replace(ctx, cert_cfg=dataclasses.replace(ctx.cert_cfg, n_p=args.n_p))
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "rank.jsonl"
    done = {r["episode"]: r for r in map(json.loads, log.read_text().splitlines())} \
        if log.is_file() else {}
    for ep in episodes:
        if ep["episode"] not in done:
            done[ep["episode"]] = score(args, cfg, ctx, ep)
            append_line(log, json.dumps(done[ep["episode"]]))
    rows = [done[ep["episode"]] for ep in episodes]
    report(args, cfg, rows)


def score(args: argparse.Namespace, cfg: SearchConfig, ctx, ep: dict) -> dict:
    work = args.out / f"episode_{ep['episode']:04d}"
    policy_file = Policy.from_json(ep["policy"]).save(work / "policy.json")
    options = {} if args.epochs is None else {"epochs": args.epochs}
    job = QuantizeJob.from_recipe(args.recipe, checkpoint=cfg.checkpoint, data=cfg.data,
                                  policy=str(policy_file), method="lsq", seed=cfg.seed,
                                  **options)
    t0 = time.perf_counter()
    if not (work / "qat" / "model.safetensors").is_file():
        run_quantize(job, work / "qat", resume=True)
    qat_s = time.perf_counter() - t0
    model, _ = load_model(work / "qat" / "model.safetensors")
    t1 = time.perf_counter()
    _, info = arq_reward(model, ctx, work)
    row = {"episode": ep["episode"], "bitops_percent": ep["bitops_percent"],
           "episode_acr": ep["acr"], "episode_accuracy": ep["accuracy"],
           "trained_acr": info["acr"], "trained_accuracy": info["accuracy"],
           "qat_s": round(qat_s, 1), "certify_s": round(time.perf_counter() - t1, 1)}
    print(json.dumps(row), flush=True)
    return row


def report(args: argparse.Namespace, cfg: SearchConfig, rows: list[dict]) -> None:
    cheap = np.array([r["episode_acr"] for r in rows])
    dear = np.array([r["trained_acr"] for r in rows])
    if len(set(cheap)) < 2 or len(set(dear)) < 2:
        raise SystemExit("the ACRs are constant over the policies: no ranking to compare")
    rho = float(spearmanr(cheap, dear).statistic)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(2000):
        i = rng.integers(0, len(rows), len(rows))
        if len(set(cheap[i])) > 1 and len(set(dear[i])) > 1:
            boot.append(spearmanr(cheap[i], dear[i]).statistic)
    low, high = (float(q) for q in np.nanquantile(boot, [0.025, 0.975]))
    out = {"search": str(args.search), "recipe": args.recipe, "epochs": args.epochs,
           "n_p": args.n_p, "spearman_rho": rho, "bootstrap_95": [low, high], "rows": rows,
           "provenance": provenance(cfg.seed, {k: str(v) for k, v in vars(args).items()})}
    atomic_write_json(args.out / "rank.json", out)
    print(f"\nSpearman rho {rho:.3f} (bootstrap 95% [{low:.3f}, {high:.3f}]) over {len(rows)} "
          "policies\n\n| episode | BitOPs % | episode ACR | fine-tuned ACR | episode acc | "
          "fine-tuned acc | QAT s |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['episode']} | {r['bitops_percent']:.3f} | {r['episode_acr']:.3f} | "
              f"{r['trained_acr']:.3f} | {r['episode_accuracy']:.3f} | "
              f"{r['trained_accuracy']:.3f} | {r['qat_s']:.0f} |")


if __name__ == "__main__":
    main()
