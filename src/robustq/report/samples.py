"""Sample images of a benchmark run: one test image through every corruption (at one severity)
and every systematic pipeline, exactly as the benchmark fed them to the models.

Corrupted images come from the run's own cache (``corrupted/<profile>/<name>-s<k>.npy``) where
it exists, otherwise they are regenerated with the run's seed (the same bytes: corruptions are
seeded per image). Systematic variants are re-run on the image's encoded file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustq.bench.corruptions import corrupt
from robustq.bench.runner import BenchConfig, corrupted_path, corruption_profile, deployed_files
from robustq.bench.systematic import VARIANTS, systematic_images
from robustq.data import load_dataset
from robustq.data.dataset import spread_indices


def bench_samples(run_dir: Path, config: dict[str, Any], severity: int = 3,
                  position: int = 0) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{"clean": [...], "natural": [...], "systematic": [...]}`` of (label, uint8 HWC image)
    for image ``position`` of the run's test images. Raises ``RobustqError``/``OSError`` when
    the run's data cannot be read (the caller reports it)."""
    cfg = BenchConfig.from_json(config)
    test = load_dataset(cfg.data, "test")
    indices = np.asarray(spread_indices(len(test), cfg.images))
    ds = test.subset(indices[position:position + 1])
    img, idx = ds.images, indices[position:position + 1]
    profile = corruption_profile(ds.image_shape)
    out: dict[str, list[tuple[str, np.ndarray]]] = {"clean": [("clean", img[0])]}
    sev = severity if severity in cfg.severities else cfg.severities[-1]
    natural = []
    for name in cfg.corruptions:
        cached = corrupted_path(run_dir, profile, name, sev)
        if cached.is_file():
            arr = np.load(cached, mmap_mode="r", allow_pickle=False)[position]
        else:
            arr = corrupt(img, name, sev, cfg.seed, profile, idx)[0]
        natural.append((f"{name} s{sev}", np.asarray(arr)))
    out["natural"] = natural if "natural" in cfg.families else []
    if "systematic" in cfg.families:
        files = deployed_files(cfg.data, idx, img)
        size = cfg.resize_size if profile == "32" else None
        out["systematic"] = [(v, systematic_images(files, v, img.shape[-1], size)[0])
                             for v in VARIANTS]
    else:
        out["systematic"] = []
    return out
