"""Markdown table of certification runs against a reference run (usually FP32) over the images
every run has certified so far: smoothed accuracy, ACR, certified accuracy at 0.25 / 0.5 / 0.75 /
1.0 and how many images each got right, abstained on (the smoothed classifier's -1) and got
wrong, then each run minus the reference, paired per image, with 95% t intervals and the share of
the reference's ACR (and of the interval's ends). ``--outcomes``: also, per run, how each image's
outcome (correct / abstain / wrong) moved from the reference's, and the reference's median
radius on the images it had right and the run lost. Nothing is written.

    python benchmarks/paired_table.py results/certify/resnet20_cifar10_sigma0.25_v2 \\
        lsq44=results/certify/lsq44_v2_kd_e6 lsq88=results/certify/lsq88_v2_kd
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from robustq.certify.metrics import certified_radii, paired_difference
from robustq.certify.reuse import joined_rows
from robustq.certify.rundir import summarize_rows
from robustq.utils.errors import RobustqError

RADII = (0.25, 0.5, 0.75, 1.0)
OUTCOMES = ("correct", "abstain", "wrong")


def parts(run: Path) -> list[Path]:
    """A run named as its parts, ``DIR+DIR_o20+...`` (certify --offset), or one directory."""
    return [Path(p) for p in str(run).split("+")]


def common_rows(runs: dict[str, Path]) -> dict[str, list[dict[str, str]]]:
    """Each run's rows (joined over its ``+`` parts) restricted to the images every run has
    certified, in image order."""
    rows = {k: joined_rows(parts(v)) for k, v in runs.items()}
    shared = set.intersection(*({r["idx"] for r in rs} for rs in rows.values()))
    return {k: sorted((r for r in rs if r["idx"] in shared), key=lambda r: int(r["idx"]))
            for k, rs in rows.items()}


def per_image(rows: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Certified radius (0 where wrong) and 0/1 correctness of each image."""
    preds, labels = [int(r["predict"]) for r in rows], [int(r["label"]) for r in rows]
    radii = certified_radii(preds, labels, [float(r["radius"]) for r in rows])
    return radii, (np.asarray(preds) == np.asarray(labels)).astype(float)


def summary_line(name: str, rows: list[dict[str, str]]) -> str:
    s = summarize_rows(rows, RADII)
    ca = " / ".join(f"{100 * s['certified_accuracy'][str(r)]:.1f}" for r in RADII)
    counts = [sum(outcome(r) == k for r in rows) for k in OUTCOMES]
    return (f"| {name} | {100 * s['smoothed_accuracy']:.1f}% | {s['acr']:.3f} | {ca}% | "
            + " / ".join(map(str, counts)) + " |")


def outcome(row: dict[str, str]) -> str:
    """The smoothed classifier's outcome on one image: one of ``OUTCOMES``."""
    return "abstain" if row["predict"] == "-1" else (
        "correct" if row["predict"] == row["label"] else "wrong")


def print_outcomes(name: str, ref_rows: list[dict[str, str]], rows: list[dict[str, str]]) -> None:
    """Reference outcome (rows) against ``name``'s outcome (columns), image by image."""
    pairs = [(outcome(a), outcome(b)) for a, b in zip(ref_rows, rows, strict=True)]
    lost = [float(a["radius"]) for a, b in zip(ref_rows, rows, strict=True)
            if outcome(a) == "correct" and outcome(b) != "correct"]
    print(f"\n| reference \\ {name} | " + " | ".join(OUTCOMES) + " |")
    print("| --- | --- | --- | --- |")
    for k in OUTCOMES:
        print(f"| {k} | " + " | ".join(str(pairs.count((k, j))) for j in OUTCOMES) + " |")
    if lost:
        print(f"\n{name} lost {len(lost)} of the reference's correct images; their reference "
              f"radius: median {np.median(lost):.3f}, {sum(r < 0.125 for r in lost)} under 0.125")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", type=Path)
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN")
    ap.add_argument("--outcomes", action="store_true",
                    help="also each run's outcome transitions from the reference's")
    args = ap.parse_args()
    runs = {"reference": args.reference} | {k: Path(v) for k, v in
                                            (item.split("=", 1) for item in args.runs)}
    try:
        rows = common_rows(runs)
    except RobustqError as e:
        raise SystemExit(f"error: {e}") from None
    n = len(rows["reference"])
    print(f"| {n} images | smoothed acc. | ACR | CA@0.25 / 0.5 / 0.75 / 1.0 "
          "| correct / abstain / wrong |")
    print("| --- | --- | --- | --- | --- |")
    for name, rs in rows.items():
        print(summary_line(name, rs))
    ref_radii, ref_correct = per_image(rows["reference"])
    for name in list(runs)[1:]:
        radii, correct = per_image(rows[name])
        if [r["label"] for r in rows[name]] != [r["label"] for r in rows["reference"]]:
            raise SystemExit(f"{runs[name]}: other labels than the reference's on the same images")
        acr, acc = paired_difference(radii, ref_radii), paired_difference(correct, ref_correct)
        ref = ref_radii.mean()
        mean, low, high = (f"{100 * (ref + d) / ref:.1f}%" for d in (acr.mean, acr.low, acr.high))
        print(f"| {name} minus reference, paired, 95% t | {100 * acc.mean:+.1f} points "
              f"[{100 * acc.low:+.1f}, {100 * acc.high:+.1f}] | {acr.mean:+.3f} "
              f"[{acr.low:+.3f}, {acr.high:+.3f}] ({mean} [{low}, {high}] of the reference's) | | |")
    if args.outcomes:
        for name in list(runs)[1:]:
            print_outcomes(name, rows["reference"], rows[name])

if __name__ == "__main__":
    main()
