"""``robustq demo``: the main job on the embedded default, with nothing else on disk.

For now: train a small CNN on the embedded MNIST subset with Gaussian noise augmentation,
evaluate it and the shipped zoo model (clean and under noise), and write a summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from robustq.cli.common import console, friendly_errors
from robustq.cli.progress import RichTrainReporter
from robustq.data import load_dataset
from robustq.data.embedded import embedded_dir
from robustq.models import ModelCard, get_model, load_checkpoint
from robustq.models.evaluate import evaluate
from robustq.models.train import STATE_FILE, TrainConfig, train
from robustq.utils import atomic_write_json, provenance, seed_everything

EMBEDDED_MODEL = "small_cnn_mnist_sigma0.25.safetensors"


@friendly_errors
def demo_cmd(
    out: Annotated[Path, typer.Option(help="output directory")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="training epochs of the demo model")] = 4,
    sigma: Annotated[float, typer.Option(help="noise std, [0,1] pixel units")] = 0.25,
    seed: int = 0,
) -> None:
    """Train and evaluate a noise-robust classifier on the embedded MNIST subset."""
    t0 = time.perf_counter()
    train_ds, test_ds = load_dataset("embedded", "train"), load_dataset("embedded", "test")
    console.print(f"[1/3] embedded data: {len(train_ds)} train / {len(test_ds)} test MNIST images")
    c, h, w = train_ds.image_shape
    mean, std = train_ds.channel_stats()
    card = ModelCard("small_cnn", train_ds.num_classes, c, mean, std, train_ds.classes, (h, w))
    cfg = TrainConfig(arch="small_cnn", epochs=epochs, sigma=sigma, crop_padding=2, flip=False,
                      seed=seed, eval_images=len(test_ds))
    seed_everything(seed)
    model = get_model("small_cnn", train_ds.num_classes, c, mean, std)
    console.print(f"[2/3] training small_cnn for {epochs} epochs at sigma={sigma} -> {out}")
    meta = train(model, card, train_ds, test_ds, cfg, out / "train",
                 resume=(out / "train" / STATE_FILE).is_file(), reporter=RichTrainReporter())
    console.print("[3/3] evaluating the trained model and the shipped zoo model")
    zoo_model, zoo_meta = load_checkpoint(embedded_dir() / EMBEDDED_MODEL)
    results = {
        "trained": {"checkpoint": str(out / "train" / "model.safetensors"),
                    "train_time_s": meta["train_time_s"], **meta["accuracy"]},
        "zoo": {"checkpoint": EMBEDDED_MODEL, **evaluate(zoo_model, test_ds, zoo_meta["sigma"])},
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "provenance": provenance(seed, cfg.to_json()),
    }
    atomic_write_json(out / "summary.json", results)
    for name in ("trained", "zoo"):
        r = results[name]
        console.print(f"  {name:8s} clean accuracy {r['clean_accuracy']:.4f}, "
                      f"under sigma={r['sigma']} noise {r['noisy_accuracy']:.4f}")
    console.print(f"wrote {out / 'summary.json'} in {results['wall_time_s']:.0f}s")
