"""``robustq demo``: the main job on the embedded default (the shipped MNIST subset and zoo
model), from nothing to an HTML report in a few minutes on 2 CPU cores.

Steps, each resumable in ``--out`` (a killed demo re-run with the same options continues):
1. certify the FP model on the test images (full certification, writing the IRS cache);
2. a short ARQ search at the BitOPs budget (reward: ACR via IRS on a held-out split), then the
   best policy fine-tuned and fully certified on the test images;
3. uniform 4/4 through the same path (fine-tuning, full certification);
4. both quantized models certified incrementally (IRS) against the FP cache;
5. a small robustness benchmark (attacks, corruptions, systematic noise);
6. the report (``report.html``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from robustq.bench.runner import BenchConfig, BenchRun
from robustq.bench.tables import summarize_run
from robustq.certify.run import CertifyConfig, certify_dataset, irs_certify_dataset
from robustq.cli.common import SeedOpt, console, friendly_errors
from robustq.cli.progress import console_progress
from robustq.cli.train_cmd import set_threads
from robustq.data import load_dataset
from robustq.data.embedded import embedded_dir
from robustq.quant.checkpoint import checkpoint_cost, load_model
from robustq.report import build_report
from robustq.search.search import Search, SearchConfig
from robustq.utils import atomic_write_json, provenance
from robustq.utils.progress import Progress

EMBEDDED_MODEL = "small_cnn_mnist_sigma0.25.safetensors"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (defaults: about 4 minutes on 2 cores). n: noise samples per image."""

    budget: float = 1.5625
    episodes: int = 8
    warmup: int = 4
    finetune_images: int = 1000
    holdout_images: int = 200
    search_cert_images: int = 20
    search_n: int = 1000
    n_p: int = 200
    test_images: int = 100
    n0: int = 100
    n: int = 1000
    bench_images: int = 200
    attack_images: int = 100
    autoattack_images: int = 0          # AutoAttack: ~15 s per image here; see robustq bench
    corruptions: tuple[str, ...] = ("gaussian_noise", "impulse_noise", "defocus_blur",
                                    "motion_blur", "fog", "brightness", "contrast", "pixelate",
                                    "jpeg_compression")
    seed: int = 0


def search_configs(cfg: DemoConfig, ckpt: str) -> list[tuple[str, str, SearchConfig]]:
    """(name, progress label, config) of the demo's two searches: ARQ and uniform 4/4."""
    return [(name, label, SearchConfig(
        checkpoint=ckpt, data="embedded", strategy=name, budget=cfg.budget,
        episodes=cfg.episodes, warmup=cfg.warmup, finetune_images=cfg.finetune_images,
        holdout_images=cfg.holdout_images, cert_images=cfg.search_cert_images, n0=cfg.n0,
        n=cfg.search_n, n_p=min(cfg.n_p, cfg.search_n), seed=cfg.seed))
        for name, label in (
            ("arq", f"ARQ search, {cfg.episodes} episodes at {cfg.budget}% BitOPs"),
            ("uniform", "uniform 4/4, fine-tuned and certified the same way"))]


def certify_irs(names: list[str], ic: CertifyConfig, test, out: Path,
                say: Callable[[str], None]) -> None:
    """IRS-certify each search's best model against the FP model's cache."""
    for name in names:
        path = out / "search" / name / "best_model.safetensors"
        q, qmeta = load_model(path)
        r = irs_certify_dataset(q, test, ic, out / "certify" / "fp", out / "certify" / f"{name}_irs",
                                model_info={"checkpoint": str(path),
                                            "cost": checkpoint_cost(q, qmeta)})
        say(f"      {name} (IRS, n_p = {ic.n_p}): ACR {r['acr']:.3f}")


def bench_config(cfg: DemoConfig, ckpt: str) -> BenchConfig:
    """The demo's small benchmark: FP, LSQ and min-max at 4 and 8 bits."""
    return BenchConfig(checkpoint=ckpt, data="embedded", methods=("lsq", "minmax"), bits=(4, 8),
                       images=cfg.bench_images, attack_images=cfg.attack_images,
                       autoattack_images=cfg.autoattack_images, corruptions=cfg.corruptions,
                       severities=(1, 3, 5), finetune_images=cfg.finetune_images, seed=cfg.seed)


def run_bench(cfg: DemoConfig, ckpt: str, out: Path, progress: Progress | None) -> None:
    BenchRun(bench_config(cfg, ckpt), out / "bench").run(progress)
    summarize_run(out / "bench")


def run_demo(cfg: DemoConfig, out: Path, say: Callable[[str], None] = print,
             progress: Progress | None = None) -> dict[str, Any]:
    """Run the demo's steps into ``out``; returns what ``demo.json`` records. ``progress``
    follows the search and benchmark steps within."""
    ckpt = str(embedded_dir() / EMBEDDED_MODEL)
    record: dict[str, Any] = {"config": dataclasses.asdict(cfg), "steps": {}, "finished": False,
                              "provenance": provenance(cfg.seed, dataclasses.asdict(cfg))}
    started = time.perf_counter()

    def step(name: str, label: str, fn: Callable[[], Any]) -> Any:
        say(f"[{len(record['steps']) + 1}/6] {label}")
        record["step"] = name
        atomic_write_json(out / "demo.json", record)
        t0 = time.perf_counter()
        result = fn()
        record["steps"][name] = round(time.perf_counter() - t0, 1)
        return result

    fp, meta = load_model(ckpt)
    sigma = float(meta["sigma"])
    test = load_dataset("embedded", "test")
    skip = max(1, len(test) // cfg.test_images)
    cc = CertifyConfig(sigma=sigma, n0=cfg.n0, n=cfg.n, skip=skip, max_images=cfg.test_images,
                       seed=cfg.seed, radii=(0.0, 0.25, 0.5, 0.75, 1.0))
    info = {"checkpoint": EMBEDDED_MODEL, "cost": checkpoint_cost(fp, meta)}
    fp_dir = out / "certify" / "fp"
    s = step("certify_fp", f"certifying the FP model on {cfg.test_images} test images "
             f"(n = {cfg.n}, sigma = {sigma})",
             lambda: certify_dataset(fp, test, cc, fp_dir, cache=True, model_info=info))
    say(f"      FP: smoothed accuracy {s['smoothed_accuracy']:.3f}, ACR {s['acr']:.3f}")

    searches = {}
    for name, label, sc in search_configs(cfg, ckpt):

        def go(sc: SearchConfig = sc, name: str = name) -> dict[str, Any]:
            search = Search(sc, out / "search" / name)
            search.run(progress)
            return search.finish(cfg.test_images, cfg.n, skip, progress)

        f = step(f"search_{name}", label, go)
        searches[name] = f
        say(f"      {name}: {f['bitops_percent']:.3f}% BitOPs, smoothed accuracy "
            f"{f['smoothed_accuracy']:.3f}, ACR {f['acr']:.3f} (full certification)")

    ic = dataclasses.replace(cc, n_p=min(cfg.n_p, cfg.n))
    step("certify_irs", "incremental certification (IRS) of both against the FP cache",
         lambda: certify_irs(list(searches), ic, test, out, say))

    step("bench", f"robustness benchmark: FP, LSQ and min-max at 4 and 8 bits, "
         f"{cfg.bench_images} images", lambda: run_bench(cfg, ckpt, out, progress))
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    record["finished"] = True
    atomic_write_json(out / "demo.json", record)
    step("report", "writing the report", lambda: build_report([out], out / "report.html",
                                                             "robustq demo report"))
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / "demo.json", record)
    return record


@friendly_errors
def demo_cmd(
    out: Annotated[Path, typer.Option(help="output directory (resumable)")] = Path("runs/demo"),
    episodes: Annotated[int, typer.Option(help="ARQ search episodes")] = DemoConfig.episodes,
    test_images: Annotated[int, typer.Option(help="test images certified")]
    = DemoConfig.test_images,
    n: Annotated[int, typer.Option(help="noise samples per test image")] = DemoConfig.n,
    bench_images: Annotated[int, typer.Option(help="test images per robustness-benchmark "
                                              "unit")] = DemoConfig.bench_images,
    seed: SeedOpt = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Search, certify, benchmark and report on the embedded MNIST default (a few minutes)."""
    set_threads(threads)
    cfg = DemoConfig(episodes=episodes, warmup=min(DemoConfig.warmup, episodes // 2),
                     test_images=test_images, n=n, bench_images=bench_images,
                     attack_images=min(DemoConfig.attack_images, bench_images),
                     autoattack_images=min(DemoConfig.autoattack_images, bench_images),
                     seed=seed)
    rec = run_demo(cfg, out, lambda m: console.print(m, highlight=False), console_progress())
    console.print(f"done in {rec['wall_time_s']:.0f}s: open {out / 'report.html'}")
