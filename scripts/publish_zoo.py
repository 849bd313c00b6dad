"""Copy a finished training run into the model zoo with a JSON card.

    python scripts/publish_zoo.py RUN_DIR DEST.safetensors --command "robustq train ..." \
        [--extra-eval DATA]...

The card holds the exact command, seed, training time, accuracies (from the checkpoint's own
metadata, measured at the end of training) and any extra evaluations asked for here.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

from robustq.data import load_dataset
from robustq.models import load_checkpoint
from robustq.models.evaluate import evaluate
from robustq.utils import atomic_write_json
from robustq.utils.io import atomic_write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--command", required=True)
    ap.add_argument("--extra-eval", action="append", default=[])
    args = ap.parse_args()
    src = args.run_dir / "model.safetensors"
    model, meta = load_checkpoint(src)
    extra = {}
    for data in args.extra_eval:
        ds = load_dataset(data, "test")
        extra[data] = evaluate(model, ds, meta["sigma"], seed=0)
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    # the model first, then its card: a killed publication leaves no card, which is how
    # scripts/std_pipeline.sh tells a published model, and never a half-copied file
    atomic_write(args.dest, lambda tmp: shutil.copyfile(src, tmp))
    card = {
        "file": args.dest.name,
        "sha256": hashlib.sha256(args.dest.read_bytes()).hexdigest(),
        "size_bytes": args.dest.stat().st_size,
        "command": args.command,
        "arch": meta["card"]["arch"],
        "dataset": meta["dataset"],
        "sigma": meta["sigma"],
        "epochs": meta["epochs"],
        "seed": meta["train_config"]["seed"],
        "train_time_s": meta["train_time_s"],
        "test_accuracy": meta["accuracy"],
        "extra_evaluations": extra,
        "git_commit": meta["provenance"]["git_commit"],
        "versions": meta["provenance"]["versions"],
        "machine": meta["provenance"]["machine"],
    }
    atomic_write_json(args.dest.with_suffix(".json"), card)
    print(f"{args.dest}: {card['test_accuracy']} {extra}")


if __name__ == "__main__":
    main()
