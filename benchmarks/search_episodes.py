"""Per-episode cost and reward precision of one or more searches, as Markdown.

For each search directory: the median seconds of each part of an episode (fine-tuning, or
re-bitting the shared model; reward, of which IRS certification; agent) and episodes per two
hours at that median; for ARQ searches, the paired 95% half-width of the held-out ACR difference
between consecutive episodes with different policies on the first k certification images
(``--images``). Results also go to ``--out`` as JSON.

    python benchmarks/search_episodes.py runs/search_shared runs/search_arq --images 50,100,500 \\
        --out runs/bench/search_episodes.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robustq.search.diagnostics import episode_costs, reward_precision
from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("searches", type=Path, nargs="+", help="search directories")
    ap.add_argument("--images", default="", help="comma-separated image counts (default: all)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/search_episodes.json"))
    args = ap.parse_args()
    counts = tuple(int(k) for k in args.images.split(",") if k)
    try:
        results = {str(d): {"costs": episode_costs(d), "precision": _precision(d, counts)}
                   for d in args.searches}
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None
    atomic_write_json(args.out, {"results": results, "provenance": provenance(0, vars(args))})
    print("| search | episodes | episode s | fine-tune / re-bit s | reward s | of which IRS s "
          "| agent s | episodes per 2 h |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for d, r in results.items():
        c, m = r["costs"], r["costs"]["median_s"]
        print(f"| {Path(d).name} | {c['episodes']} | {m['episode_s']:.1f} | {m['finetune_s']:.1f} "
              f"| {m['reward_s']:.1f} | {m.get('certify_s', 0):.1f} | {m['agent_s']:.2f} "
              f"| {c['episodes_per_2h']} |")
    print("\n| search | images | pairs | median half-width (ACR) | largest |")
    print("| --- | --- | --- | --- | --- |")
    for d, r in results.items():
        for p in r["precision"]:
            print(f"| {Path(d).name} | {p['images']} | {p['pairs']} "
                  f"| {p['median_half_width']:.4f} | {p['max_half_width']:.4f} |")


def _precision(search_dir: Path, counts: tuple[int, ...]) -> list[dict]:
    try:
        return reward_precision(search_dir, counts)
    except RobustqError:
        return []            # no IRS rows (HAQ, random) or no two different policies


if __name__ == "__main__":
    main()
