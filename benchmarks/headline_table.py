"""Issue 18's headline table, as Markdown: certified test-protocol runs of FP32 and of each
policy's final model, side by side with BitOPs, weight size, clean accuracy (the model's full
test split), smoothed accuracy, ACR and certified accuracy at 0.25 / 0.5 / 0.75 / 1.0 over the
images every run has certified; where a row names its search, that search's episodes and wall
time (the sum of its episodes; the one-off FP cache and weight-sharing model are not in it);
then the paired 95% interval of the ``--minus`` row's ACR (and smoothed accuracy) minus each
other row's. A run certified in parts (``certify --offset``) is named by its parts,
``NAME=DIR+DIR_o20+DIR_o40,SEARCH_DIR``. Nothing is written.

    python benchmarks/headline_table.py fp32=results/certify/resnet20_cifar10_sigma0.25_v2 \\
        uniform44=results/certify/lsq44_v2_kd_e6,results/search/uniform_arq_b1.5625_e1_c100 \\
        arq=results/certify/arq60best_v2_kd_e6,results/search/arq_b1.5625_e60_c100 --minus arq
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_table import RADII, common_rows, parts, per_image  # noqa: E402 - a sibling script

from robustq.certify.metrics import paired_difference  # noqa: E402
from robustq.certify.rundir import summarize_rows  # noqa: E402
from robustq.search.search import read_episodes  # noqa: E402
from robustq.utils.errors import RobustqError  # noqa: E402


def clean_accuracy(cert_dir: Path) -> float | None:
    """Full-test clean accuracy of the certified checkpoint: its quantize run's record (beside
    it, or kept under results/models/<run name>), else its zoo card."""
    ckpt = Path(json.loads((cert_dir / "run.json").read_text())["model"]["checkpoint"])
    for run in (ckpt.parent / "run.json", Path("results/models") / cert_dir.name / "run.json",
                Path("results/models") / ckpt.parent.name / "run.json"):
        if run.is_file():
            acc = json.loads(run.read_text()).get("results", {}).get("accuracy", {})
            if acc.get("n") and "clean_accuracy" in acc:
                return float(acc["clean_accuracy"])
    card = ckpt.with_suffix(".json")
    if card.is_file():
        return float(json.loads(card.read_text())["test_accuracy"]["clean_accuracy"])
    return None


def model_cost(cert_dir: Path) -> tuple[float, float | None]:
    """(BitOPs % of FP32, weight size in KiB) as the certification run recorded them."""
    cost = json.loads((cert_dir / "run.json").read_text())["model"].get("cost")
    return (100.0, None) if cost is None else (cost["bitops_percent"], cost["size_kib"])


def search_cost(search_dir: Path | None) -> str:
    if search_dir is None:
        return "- | -"
    lines = read_episodes(search_dir)
    return f"{len(lines)} | {sum(e['episode_s'] for e in lines) / 60:.1f} min"


def parse_rows(items: list[str]) -> dict[str, tuple[Path, Path | None]]:
    rows: dict[str, tuple[Path, Path | None]] = {}
    for item in items:
        name, _, spec = item.partition("=")
        cert, _, search = spec.partition(",")
        if not name or not cert:
            raise SystemExit(f"error: {item!r}: expected NAME=CERT_DIR[,SEARCH_DIR]")
        rows[name] = (Path(cert), Path(search) if search else None)   # cert: DIR[+DIR_o20...]
    return rows


def row_line(name: str, spec: tuple[Path, Path | None], rows: list[dict[str, Any]]) -> str:
    s = summarize_rows(rows, RADII)
    first = parts(spec[0])[0]                       # every part certifies the same model
    bitops, kib = model_cost(first)
    clean = clean_accuracy(first)
    ca = " / ".join(f"{100 * s['certified_accuracy'][str(r)]:.1f}" for r in RADII)
    return (f"| {name} | {bitops:.3f}% | {'-' if kib is None else f'{kib:.0f} KiB'} | "
            f"{'-' if clean is None else f'{100 * clean:.2f}%'} | "
            f"{100 * s['smoothed_accuracy']:.1f}% | {s['acr']:.3f} | {ca}% | "
            f"{search_cost(spec[1])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", nargs="+", metavar="NAME=CERT_DIR[,SEARCH_DIR]")
    ap.add_argument("--minus", default=None, help="the row compared with every other "
                    "(default: the last)")
    args = ap.parse_args()
    specs = parse_rows(args.rows)
    minus = args.minus or list(specs)[-1]
    if minus not in specs:
        raise SystemExit(f"error: --minus {minus!r}: not one of the rows {list(specs)}")
    try:
        rows = common_rows({k: v[0] for k, v in specs.items()})
        lines = [row_line(k, specs[k], rows[k]) for k in specs]
    except (RobustqError, OSError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"| {len(rows[minus])} test images | BitOPs | size | clean (full test) | smoothed | ACR "
          "| CA@0.25 / 0.5 / 0.75 / 1.0 | episodes | search wall |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(lines))
    print(f"\n| {minus} minus | smoothed, paired 95% t | ACR, paired 95% t |\n| --- | --- | --- |")
    radii, correct = per_image(rows[minus])
    for name in (k for k in specs if k != minus):
        if [r["label"] for r in rows[name]] != [r["label"] for r in rows[minus]]:
            raise SystemExit(f"error: {specs[name][0]}: other labels than {minus}'s on the same "
                             "images")
        other_radii, other_correct = per_image(rows[name])
        acr, acc = paired_difference(radii, other_radii), paired_difference(correct, other_correct)
        print(f"| {name} | {100 * acc.mean:+.1f} points [{100 * acc.low:+.1f}, "
              f"{100 * acc.high:+.1f}] | {acr.mean:+.4f} [{acr.low:+.4f}, {acr.high:+.4f}] |")


if __name__ == "__main__":
    main()
