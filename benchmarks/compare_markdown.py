"""Markdown tables of a ``robustq compare`` run for docs: the result table (one row per model)
the paired differences between models (same images: ACR and smoothed accuracy, 95% t
intervals, ``robustq.certify.run.compare_runs``) and the per-layer weight/activation bits of
every policy, read from ``compare.json`` (a half-finished compare gives the rows it has).

    python benchmarks/compare_markdown.py runs/compare_s025
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_markdown import pct  # noqa: E402 - a sibling script, run from anywhere

from robustq.certify.run import pairwise_differences  # noqa: E402


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def interval(d: dict, scale: float = 1.0, digits: int = 3) -> str:
    mark = " *" if d["significant"] else ""
    return (f"{scale * d['mean']:+.{digits}f} [{scale * d['low']:+.{digits}f}, "
            f"{scale * d['high']:+.{digits}f}]{mark}")


def print_pairs(table: dict) -> None:
    """Every later row against every earlier one (FP32 first), from ``compare.json`` (older
    compares without it: recomputed from the rows' certification runs)."""
    paired = table.get("paired")
    if paired is None:
        paired = pairwise_differences([(r["name"], r["certification_dir"])
                                       for r in table["rows"]])
    if not paired:
        return
    print("\nPaired differences on the same images, a minus b, with 95% t intervals "
          "(* = interval excludes 0):\n")
    print("| a - b | ACR | smoothed acc. (points) |\n| --- | --- | --- |")
    for d in paired:
        print(f"| {d['a']} - {d['b']} | {interval(d['acr'])} | "
              f"{interval(d['smoothed_accuracy'], 100, 1)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    table = json.loads((args.run / "compare.json").read_text())
    rows = table["rows"]
    left = [c for c in table.get("candidates", []) if c not in {r["name"] for r in rows}]
    print(f"{len(rows)} of {len(table.get('candidates', rows))} models"
          + (f" (not yet: {', '.join(left)})" if left else "") + "\n")
    print("| model | BitOPs % | size KiB | clean acc. | smoothed acc. | ACR | cert. acc. @0.25 / "
          "0.5 / 0.75 / 1.0 | images x n | search (episodes) | certify |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ca = " / ".join(pct(r.get(f"ca_{k}")) for k in ("0.25", "0.5", "0.75", "1.0"))
        search = ("-" if "search_wall_s" not in r
                  else f"{minutes(r['search_wall_s'])} ({r['search_episodes']})")
        print(f"| {r['name']} | {r['bitops_percent']:.3f} | {r['size_kib']:.1f} | "
              f"{pct(r['clean_accuracy'])} | {pct(r['smoothed_accuracy'])} | {r['acr']:.3f} | "
              f"{ca} | {r['images']} x {r['n']:,} | {search} | "
              f"{minutes(r.get('certify_wall_s'))} |")
    print_pairs(table)
    policies = {r["name"]: r["policy"] for r in rows if r.get("policy")}
    if policies:
        layers = list(next(iter(policies.values())))
        print("\nPer-layer bits, weight / activation (the activation is the layer's input):\n")
        print("| layer | " + " | ".join(policies) + " |")
        print("| --- |" + " --- |" * len(policies))
        for layer in layers:
            cells = [f"{p[layer]['w']} / {p[layer]['a']}" for p in policies.values()]
            print(f"| {layer} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
