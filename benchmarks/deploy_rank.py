"""Does the search's cheap episode reward rank the *deployed* models like the test protocol?

For each certified final model (``NAME=CERT_DIR``: a ``robustq certify`` run of a quantized
checkpoint, e.g. a search's best policy through the deploy recipe), its policy is read from the
run's record and scored as one search episode would score it: the weight-sharing model re-bitted
to that policy, BatchNorm re-estimated, ARQ's IRS reward on the search's held-out images against
its FP cache (``SEARCH``: a search on a shared model with ARQ's reward gives every setting).
Then Spearman's rho between that episode ACR and the test-protocol ACR of the deployed model
over the images every run certified (a run may be ``DIR+DIR_o20+...``, the parts of one model's
protocol, as in ``paired_table.py``), with a bootstrap 95% interval over policies
(``search.diagnostics.rank_agreement``). Scores are cached in ``--out/rank.jsonl`` by name and
by policy: a policy already scored under another name is not scored again.
``--cert-images 500 --fp-cache DIR`` scores on more held-out images than the search did.
``--adapt-images N`` fine-tunes each re-bitted candidate (a copy) for one epoch over N of the
search's fine-tuning images with the ``deploy-cr`` loss before scoring it
(``search.shared.adapt``): is a proxy closer to the final QAT a better ranker?
``--plugin-samples M`` scores each candidate by its own plug-in ACR estimate from M noisy
samples per held-out image (``Smooth.plugin_acr``, the same noise for every candidate) instead
of ARQ's IRS reward (the rows' ``episode_acr``; ``episode_accuracy`` stays the clean accuracy).

    python benchmarks/deploy_rank.py results/search/arq_b1.5625_e60_c100 \\
        --shared results/models/shared_resnet20_v2_s025/model.safetensors \\
        uniform44=results/certify/lsq44_v2_kd_e6 arq60=results/certify/arq60best_v2_kd_e6 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_table import common_rows, parts  # noqa: E402 - a sibling script

from robustq.certify.rundir import summarize_rows  # noqa: E402
from robustq.certify.smooth import Smooth  # noqa: E402
from robustq.models.evaluate import evaluate  # noqa: E402
from robustq.quant.policy import Policy  # noqa: E402
from robustq.search import Search, SearchConfig  # noqa: E402
from robustq.search.diagnostics import rank_agreement  # noqa: E402
from robustq.search.evaluate import RewardContext, arq_reward  # noqa: E402
from robustq.search.shared import adapt, adapt_config, rebit  # noqa: E402
from robustq.utils import atomic_write_json, provenance  # noqa: E402
from robustq.utils.errors import RobustqError  # noqa: E402
from robustq.utils.io import append_line  # noqa: E402


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("search", type=Path, help="a search on a shared model, with ARQ's reward")
    ap.add_argument("runs", nargs="+", metavar="NAME=CERT_DIR")
    ap.add_argument("--shared", default=None, help="the weight-sharing model, where the "
                    "search's path no longer exists")
    ap.add_argument("--cert-images", type=int, default=None, help="score on this many of the "
                    "search's held-out images instead of its own number (a wider reward)")
    ap.add_argument("--fp-cache", default=None, help="the FP cache for --cert-images (made "
                    "there if missing; the search's own cache covers only its images)")
    ap.add_argument("--adapt-images", type=int, default=0, help="fine-tune each candidate "
                    "over this many fine-tuning images with the deploy-cr loss first (0: no)")
    ap.add_argument("--adapt-lr", type=float, default=0.01)
    ap.add_argument("--plugin-samples", type=int, default=0, help="score by the plug-in ACR "
                    "from this many noisy samples per image instead of IRS (0: IRS)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/deploy_rank"))
    args = ap.parse_args()
    if args.adapt_images < 0 or args.plugin_samples < 0:
        raise SystemExit("error: --adapt-images and --plugin-samples must be >= 0")
    args.specs = {}
    for item in args.runs:
        name, _, cert = item.partition("=")
        if not name or not cert or not all((p / "run.json").is_file() for p in parts(cert)):
            raise SystemExit(f"error: {item!r}: expected NAME=CERT_DIR[+CERT_DIR...] of certify "
                             "runs of one model")
        args.specs[name] = Path(cert)
    return args


def certified_policy(cert: Path) -> Policy:
    """The policy of the model a certify run (or the first of its ``+`` parts) certified."""
    cert_dir = parts(cert)[0]
    cost = json.loads((cert_dir / "run.json").read_text())["model"].get("cost")
    if not cost or "policy" not in cost:
        raise RobustqError(f"{cert_dir}: not a quantized model's certification (no policy)")
    return Policy.from_json(cost["policy"])


def policy_key(policy: Policy) -> str:
    """A policy's identity in the score cache: its JSON, keys sorted."""
    return json.dumps(policy.to_json(), sort_keys=True)


def cached_scores(log: Path, policies: dict[str, Policy]) -> dict[str, dict]:
    """The rows of ``rank.jsonl`` that already score these names: by name, or by an equal
    policy scored under another name (appended under the new name, ``reused_from`` the old)."""
    rows = list(map(json.loads, log.read_text().splitlines())) if log.is_file() else []
    by_name = {r["name"]: r for r in rows}
    by_policy = {r["policy"]: r for r in rows if "policy" in r}
    done = {}
    for name, policy in policies.items():
        if name in by_name:
            done[name] = by_name[name]
        elif policy_key(policy) in by_policy:
            old = by_policy[policy_key(policy)]
            done[name] = old | {"name": name, "reused_from": f"{old['name']} (the same policy)"}
            append_line(log, json.dumps(done[name]))
    return done


def reward_search(args: argparse.Namespace) -> Search:
    """The search whose shared model, held-out images and FP cache score the episodes."""
    cfg = SearchConfig.from_json(json.loads((args.search / "search.json").read_text())["config"])
    if cfg.reward_name != "arq" or cfg.shared is None:
        raise SystemExit(f"error: {args.search}: need a search on a shared model with ARQ's reward")
    if args.shared:
        cfg = dataclasses.replace(cfg, shared=args.shared)
    if args.cert_images:
        if not args.fp_cache:
            raise SystemExit("error: --cert-images needs its own --fp-cache directory")
        cfg = dataclasses.replace(cfg, cert_images=args.cert_images, fp_cache=args.fp_cache)
    return Search(cfg, args.out / "search")        # its own record: the search's stays as is


def candidate(args: argparse.Namespace, search: Search, policy: Policy) -> torch.nn.Module:
    """The shared model re-bitted to ``policy``, adapted with ``--adapt-images`` if asked."""
    q = rebit(search.shared, policy, search.bn_batches)
    if not args.adapt_images:
        return q
    if args.adapt_images > len(search.ft_ds):
        raise SystemExit(f"error: --adapt-images {args.adapt_images}: the search has "
                         f"{len(search.ft_ds)} fine-tuning images")
    ds = search.ft_ds.subset(list(range(args.adapt_images)))
    cfg = adapt_config(search.sigma, seed=search.cfg.seed, lr=args.adapt_lr)
    return adapt(q, ds, cfg, search.fp.eval(), seed=search.cfg.seed)


def plugin_score(q: torch.nn.Module, ctx: RewardContext, m: int) -> dict:
    """The candidate's plug-in ACR on the reward's held-out images (seeds: their positions)."""
    xs, ys = ctx.cert_images.tensors()
    est = Smooth(q, ctx.cert_images.num_classes, ctx.sigma).plugin_acr(xs, ys.tolist(), m,
                                                                       range(len(ys)))
    return {"acr": est["plugin_acr"], "accuracy": evaluate(q, ctx.holdout)["clean_accuracy"],
            "noisy_accuracy": est["noisy_accuracy"], "top_accuracy": est["top_accuracy"]}


def episode_scores(args: argparse.Namespace, names: list[str]) -> dict[str, dict]:
    """Each policy's episode reward, computed once (cached in rank.jsonl by name and policy)."""
    log = args.out / "rank.jsonl"
    policies = {n: certified_policy(args.specs[n]) for n in names}
    done = cached_scores(log, policies)
    todo = [n for n in names if n not in done]
    if not todo:
        return done
    search = reward_search(args)
    ctx = search.context()
    for name in todo:
        key = policy_key(policies[name])
        twin = next((n for n in done if done[n].get("policy") == key), None)
        if twin is None:
            q = candidate(args, search, policies[name])
            cheap = (plugin_score(q, ctx, args.plugin_samples) if args.plugin_samples
                     else arq_reward(q, ctx, args.out / name)[1])
            done[name] = {"name": name, "episode_acr": cheap["acr"],
                          "episode_accuracy": cheap["accuracy"], "policy": key,
                          **{k: cheap[k] for k in ("noisy_accuracy", "top_accuracy")
                             if k in cheap}}
        else:
            done[name] = done[twin] | {"name": name, "reused_from": f"{twin} (the same policy)"}
        append_line(log, json.dumps(done[name]))
        print(json.dumps(done[name]), flush=True)
    return done


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        rows = common_rows(args.specs)
        test = {k: summarize_rows(v, ())["acr"] for k, v in rows.items()}
        scores = episode_scores(args, list(args.specs))
        names = list(args.specs)
        agree = rank_agreement([scores[n]["episode_acr"] for n in names],
                               [test[n] for n in names])
    except (RobustqError, OSError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None
    images = len(next(iter(rows.values())))
    atomic_write_json(args.out / "rank.json", {
        "search": str(args.search), "test_images": images, "agreement": agree,
        "rows": [scores[n] | {"test_acr": test[n], "cert": str(args.specs[n])} for n in names],
        "provenance": provenance(0, {k: str(v) for k, v in vars(args).items() if k != "specs"})})
    print(f"\nSpearman rho {agree['rho']:.3f} (bootstrap 95% [{agree['low']:.3f}, "
          f"{agree['high']:.3f}]) over {agree['n']} policies\n\n| policy | episode ACR (held-out, "
          f"shared model) | episode accuracy | test ACR ({images} protocol images) |\n"
          "| --- | --- | --- | --- |")
    for n in names:
        print(f"| {n} | {scores[n]['episode_acr']:.4f} | {scores[n]['episode_accuracy']:.3f} | "
              f"{test[n]:.3f} |")


if __name__ == "__main__":
    main()
