"""Markdown tables of a ``robustq bench`` run for docs/benchmarks.md, computed from its cells
(``collect_results``: nothing is written into the run).

    python benchmarks/bench_markdown.py runs/bench/robustmq
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustq.bench.tables import collect_results


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    res = collect_results(args.run)
    models = res["models"]
    attacks = sorted({a for m in models for a in m.get("ar", {})},
                     key=lambda a: (a.startswith("autoattack"), a.split("-")[1], a))
    print(f"{res['units_done']} of {res['units_planned']} units; {res['images']} images, "
          f"attacks on {res['attack_images']}, AutoAttack on {res['autoattack_images']}\n")
    print("| model | clean | WCAR | WCAR (FGSM/PGD) | masking | mCE | mNR | ACC_s (std) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in models:
        std = m.get("acc_s_std")
        print(f"| {m['model']} | {pct(m['clean_accuracy'])} | {pct(m.get('wcar'))} | "
              f"{pct(m.get('wcar_gradient'))} | {'yes' if m.get('masking') else '-'} | "
              f"{pct(m.get('mce'))} | {pct(m.get('mnr'))} | {pct(m.get('acc_s'))} "
              f"({pct(std)}) |")
    if attacks:
        print("\nAdversarial robustness AR (% of clean-correct images still correct):\n")
        print("| model | " + " | ".join(attacks) + " |")
        print("| --- " * (len(attacks) + 1) + "|")
        for m in models:
            print(f"| {m['model']} | " + " | ".join(pct(m.get("ar", {}).get(a))
                                                     for a in attacks) + " |")
    print("\nFindings:\n")
    for f in res["findings"]:
        rest = {k: v for k, v in f.items() if k not in ("claim", "holds")}
        verdict = {True: "holds", False: "does not hold", None: "undecided"}[f["holds"]]
        print(f"- {f['claim']}: **{verdict}** - `{json.dumps(rest, default=str)[:600]}`")
    print("\nThroughput (images/s):", json.dumps(res["throughput_images_per_s"]))


if __name__ == "__main__":
    main()
