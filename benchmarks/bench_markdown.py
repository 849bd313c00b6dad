"""Markdown tables of a ``robustq bench`` run for docs/benchmarks.md, computed from its cells
(``collect_results``: nothing is written into the run).

    python benchmarks/bench_markdown.py runs/bench/robustmq
    # the findings over two runs, each model against the FP model of its own run:
    python benchmarks/bench_markdown.py --pool r20=runs/bench/std_resnet20 r56=runs/bench/std_resnet56
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustq.bench.findings import check_findings, pool_results
from robustq.bench.paired import WORST, on_autoattack_images, paired_run
from robustq.bench.tables import collect_results

MASKING = {True: "yes", False: "no", None: "-"}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def print_findings(findings: list[dict]) -> None:
    for f in findings:
        rest = {k: v for k, v in f.items() if k not in ("claim", "holds")}
        verdict = {True: "holds", False: "does not hold", None: "undecided"}[f["holds"]]
        print(f"- {f['claim']}: **{verdict}** - `{json.dumps(rest, default=str)[:600]}`")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="*")
    ap.add_argument("--pool", nargs="+", metavar="LABEL=RUN", default=[],
                    help="print the findings pooled over these runs instead")
    args = ap.parse_args()
    if args.pool:
        runs = dict(item.split("=", 1) for item in args.pool)
        print("Findings pooled over " + ", ".join(runs) + ":\n")
        print_findings(check_findings(pool_results({k: collect_results(v)
                                                    for k, v in runs.items()})))
        return
    for run in args.run:
        print_run(run)


def print_run(run: Path) -> None:
    res = collect_results(run)
    models = res["models"]
    attacks = sorted({a for m in models for a in m.get("ar", {})},
                     key=lambda a: (a.startswith("autoattack"), a.split("-")[1], a))
    print(f"{res['units_done']} of {res['units_planned']} units; {res['images']} images, "
          f"attacks on {res['attack_images']}, AutoAttack on {res['autoattack_images']}\n")
    # masking: whether Square broke points every white-box stage left ("-": AutoAttack not run)
    print("| model | clean | WCAR | WCAR (FGSM/PGD) | masking | mCE | mNR | ACC_s (std) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in models:
        std = m.get("acc_s_std")
        print(f"| {m['model']} | {pct(m['clean_accuracy'])} | {pct(m.get('wcar'))} | "
              f"{pct(m.get('wcar_gradient'))} | {MASKING[m.get('masking')]} | "
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
    print_findings(res["findings"])
    print_paired(run)
    print("\nThroughput (images/s):", json.dumps(res["throughput_images_per_s"]))
    print("Seconds per family (summed unit times):", json.dumps(res["seconds_per_family"]))


PAIRED = ("natural", "systematic", "pgd-linf-2/255", "pgd-l2-0.25",
          on_autoattack_images("pgd-linf-2/255"), "autoattack-linf-2/255", WORST)


def print_paired(run: Path, scores: tuple[str, ...] = PAIRED) -> None:
    """Finding 1 image by image: each quantized model minus FP, points with paired 95% t
    intervals (``bench.paired``), for the scores every model of the run has so far."""
    rows = paired_run(run)
    have = [s for s in scores if any(r["score"] == s for r in rows)]
    if not have:
        return
    cell = {(r["model"], r["score"]): r for r in rows}
    print("\nQuantized minus FP, same images (points; paired 95% t; robust accuracy, not AR):\n")
    print("| model | " + " | ".join(have) + " |\n" + "| --- " * (len(have) + 1) + "|")
    for model in dict.fromkeys(r["model"] for r in rows):
        print(f"| {model} | " + " | ".join(
            f"{100 * c['difference']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"
            if (c := cell.get((model, s))) else "-" for s in have) + " |")


if __name__ == "__main__":
    main()
