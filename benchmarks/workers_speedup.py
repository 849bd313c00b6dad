"""Certification on 1 and 2 workers (process pool, Ray) against this process, side by side.

One process, the same images, seeds and frozen model for every executor, rounds interleaved,
medians. Besides the wall time of a realistic run (``--n`` samples per image) it measures the
driver's cost per row: the same run with one sample per image, where nearly all the time is
the driver's (building units, shipping them, writing the TSV row) and the workers' fixed cost.
From the per-image compute of one single-thread worker (c) and the driver's per-row cost (d)
it projects W workers: throughput min(W / c, 1 / d), i.e. a speed-up of min(W, c / d), before
any limit of the network or the file system.

    python benchmarks/workers_speedup.py --checkpoint zoo/resnet20_cifar10_sigma0.25.safetensors \
        --data ../shared/data/cifar10-jpeg.zip --images 24 --n 2000 --out runs/workers.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from robustq.certify.run import CertifyConfig, certify_dataset
from robustq.data import load_dataset
from robustq.models.compile import freeze_for_inference
from robustq.quant.checkpoint import load_model
from robustq.utils import atomic_write_json, provenance
from robustq.utils.parallel import SERIAL, PoolExecutor, RayExecutor


def executors(with_ray: bool) -> dict:
    """Name -> a factory of a fresh executor (a pool's processes start inside the timing)."""
    out = {"this process (2 threads)": lambda: SERIAL,
           "pool, 1 worker x 2 threads": lambda: PoolExecutor(1, threads=2),
           "pool, 2 workers x 1 thread": lambda: PoolExecutor(2, threads=1)}
    if with_ray:
        out["ray, 2 workers x 1 thread"] = lambda: RayExecutor("auto")
    return out


def timed_run(model, ds, cfg: CertifyConfig, make) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        certify_dataset(model, ds, cfg, Path(tmp) / "run", executor=make())
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=200, help="images of the per-row cost run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, meta = load_model(args.checkpoint)
    test = load_dataset(args.data, "test")
    real = CertifyConfig(sigma=meta["sigma"], n0=100, n=args.n, alpha=0.001, batch_size=400,
                         chunk=100, skip=len(test) // args.images, max_images=args.images)
    tiny = CertifyConfig(sigma=meta["sigma"], n0=1, n=1, alpha=0.001, batch_size=2, chunk=1,
                         skip=len(test) // args.rows, max_images=args.rows)
    frozen = freeze_for_inference(model, (400, *test.image_shape))
    tiny_model = model.eval()     # eager: a frozen trace re-specializes for batches of 1
    if not args.no_ray:
        import ray
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray_start = time.perf_counter() - t0
    one_row = CertifyConfig(**{**tiny.to_json(), "max_images": 1})
    runs = {name: {"real": [], "tiny": [], "start": []} for name in executors(not args.no_ray)}
    for _ in range(args.rounds):
        for name, make in executors(not args.no_ray).items():
            runs[name]["start"].append(timed_run(tiny_model, test, one_row, make))
            runs[name]["real"].append(timed_run(frozen, test, real, make))
            runs[name]["tiny"].append(timed_run(tiny_model, test, tiny, make))
            print(name, {k: round(v[-1], 2) for k, v in runs[name].items()}, flush=True)
    table = summarize(runs, args.images, args.rows)
    record = {"images": args.images, "n": args.n, "rows": args.rows, "rounds": args.rounds,
              "runs": runs, "table": table,
              "ray_init_s": None if args.no_ray else round(ray_start, 2),
              "provenance": provenance(0, vars(args))}
    atomic_write_json(args.out, record)
    for name, r in table.items():
        print(f"{name:>30}: {r['images_per_s']:.2f} img/s ({r['speedup']:.2f}x), start "
              f"{r['start_s']:.1f} s, per-row cost {r['row_ms']:.1f} ms")


def summarize(runs: dict, images: int, rows: int) -> dict:
    base = statistics.median(runs["this process (2 threads)"]["real"])
    table = {}
    for name, r in runs.items():
        wall = statistics.median(r["real"])
        start = statistics.median(r["start"])
        table[name] = {"wall_s": round(wall, 2), "images_per_s": round(images / wall, 3),
                       "speedup": round(base / wall, 3), "start_s": round(start, 2),
                       "row_ms": round(1000 * (statistics.median(r["tiny"]) - start)
                                       / (rows - 1), 2)}
    return table


if __name__ == "__main__":
    main()
