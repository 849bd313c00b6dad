"""Search strategies at equal evaluations, as Markdown: each search's best episode (held-out
ACR, accuracy, BitOPs), its best reward after k episodes, and the paired 95% interval of its
best ACR minus the reference search's best (the first directory). The searches must share the
FP cache and certification settings (``scripts/search_v2.sh`` with the same CERT).

    python benchmarks/strategy_table.py runs/search_v2/arq_b1.5625_e30_c100 \\
        runs/search_v2/random_arq_b1.5625_e30_c100 ... --at 10,20,30
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustq.search.diagnostics import best_so_far, compare_best, episode_costs
from robustq.search.search import read_episodes
from robustq.utils.errors import RobustqError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("searches", type=Path, nargs="+", help="search directories (first: reference)")
    ap.add_argument("--at", default="10,20,30", help="episode counts for the best-so-far reward")
    args = ap.parse_args()
    at = [int(k) for k in args.at.split(",") if k]
    try:
        rows = compare_best(args.searches, args.searches[0])
        curves = {str(d): best_so_far(read_episodes(d), [min(k, len(read_episodes(d)))
                                                         for k in at]) for d in args.searches}
        costs = {str(d): episode_costs(d)["median_s"]["episode_s"] for d in args.searches}
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None
    ref = args.searches[0].name
    print("| search | episodes | median episode s | best reward after " + " / ".join(map(str, at))
          + f" | best: held-out ACR | accuracy | BitOPs % | ACR minus {ref}'s best, paired 95% |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        curve = " / ".join(f"{v:.3f}" for v in curves[r["search"]])
        print(f"| {Path(r['search']).name} | {r['episodes']} | {costs[r['search']]:.1f} | {curve} "
              f"| {r['acr']:.4f} | {r['accuracy']:.3f} | {r['bitops_percent']:.3f} "
              f"| {r['acr_minus_reference']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] |")


if __name__ == "__main__":
    main()
