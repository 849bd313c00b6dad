"""The demo (``robustq demo``) as a library function, ``run_demo(DemoConfig, out)``: the main
job on the embedded default (the shipped CIFAR-10 subset and the zoo's ResNet-20 at sigma 0.25;
``data="embedded"`` for the faster MNIST one), from nothing to an HTML report and the "What we
found" sentences in a few minutes on 2 CPU cores.

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
from typing import Any

from robustq.bench.runner import BenchConfig, BenchRun
from robustq.bench.tables import summarize_run
from robustq.certify.run import CertifyConfig, certify_dataset, irs_certify_dataset, pairwise_differences
from robustq.data import load_dataset
from robustq.data.embedded import embedded_dir, embedded_set
from robustq.models.compile import freeze_for_inference
from robustq.quant.checkpoint import checkpoint_cost, load_model
from robustq.search.search import Search, SearchConfig
from robustq.utils import atomic_write_json, provenance
from robustq.utils.config import JsonConfig
from robustq.utils.progress import Progress, silent


@dataclass(frozen=True)
class DemoConfig(JsonConfig):
    """Sizes of the demo (defaults: about 4 minutes on 2 cores). n: noise samples per image;
    ``data`` names a packaged subset (``embedded-cifar10`` or ``embedded``, MNIST) and with it
    the packaged model trained for it."""

    data: str = "embedded-cifar10"
    budget: float = 1.5625
    episodes: int = 6
    warmup: int = 3
    finetune_images: int = 500
    holdout_images: int = 100
    search_cert_images: int = 10
    search_n: int = 400
    n_p: int = 100
    test_images: int = 40
    n0: int = 100
    n: int = 400
    bench_images: int = 60
    attack_images: int = 20
    autoattack_images: int = 0          # AutoAttack: ~6 s per image here; see robustq bench
    bench_methods: tuple[str, ...] = ("lsq",)
    bench_bits: tuple[int, ...] = (4, 8)
    corruptions: tuple[str, ...] = ("gaussian_noise", "defocus_blur", "fog", "brightness",
                                    "contrast", "jpeg_compression")
    seed: int = 0

    def __post_init__(self) -> None:
        embedded_set(self.data)          # an unknown name raises, listing the packaged ones


def search_configs(cfg: DemoConfig, ckpt: str) -> list[tuple[str, str, SearchConfig]]:
    """(name, progress label, config) of the demo's two searches: ARQ and uniform 4/4."""
    return [(name, label, SearchConfig(
        checkpoint=ckpt, data=cfg.data, strategy=name, budget=cfg.budget,
        episodes=cfg.episodes, warmup=cfg.warmup, finetune_images=cfg.finetune_images,
        holdout_images=cfg.holdout_images, cert_images=cfg.search_cert_images, n0=cfg.n0,
        n=cfg.search_n, n_p=min(cfg.n_p, cfg.search_n), seed=cfg.seed))
        for name, label in (
            ("arq", f"ARQ search, {cfg.episodes} episodes at {cfg.budget}% BitOPs"),
            ("uniform", "uniform 4/4, fine-tuned and certified the same way"))]


def certify_irs(names: list[str], ic: CertifyConfig, test, out: Path,
                say: Callable[[str], None], progress: Progress | None = None) -> None:
    """IRS-certify each search's best model against the FP model's cache."""
    for name in names:
        path = out / "search" / name / "best_model.safetensors"
        q, qmeta = load_model(path)
        with silent(progress).phase(f"{name}: IRS certification (n_p = {ic.n_p})",
                                    ic.max_images) as ph:
            r = irs_certify_dataset(
                q, test, ic, out / "certify" / "fp", out / "certify" / f"{name}_irs",
                model_info={"checkpoint": str(path), "cost": checkpoint_cost(q, qmeta)},
                progress=lambda done, total, r: ph.update(done, acr=r["acr"]))
        say(f"      {name} (IRS, n_p = {ic.n_p}): ACR {r['acr']:.3f}")


def bench_config(cfg: DemoConfig, ckpt: str) -> BenchConfig:
    """The demo's small benchmark (by default FP and LSQ at 4 and 8 bits; FGSM/PGD at one
    l_inf budget below and one at the spec's largest, one l2 budget)."""
    return BenchConfig(checkpoint=ckpt, data=cfg.data, methods=cfg.bench_methods,
                       bits=cfg.bench_bits, linf_eps=(2 / 255, 8 / 255), l2_eps=(0.25,),
                       images=cfg.bench_images, attack_images=cfg.attack_images,
                       autoattack_images=cfg.autoattack_images, corruptions=cfg.corruptions,
                       severities=(1, 3, 5), finetune_images=cfg.finetune_images, seed=cfg.seed)


DEMO_FILE = "demo.json"
DISPLAY_NAMES = {"arq": "ARQ", "uniform": "uniform 4/4"}


def demo_comparison(out: Path, fp: dict[str, Any], finals: dict[str, dict[str, Any]]
                    ) -> dict[str, Any]:
    """FP32 and each search's final model as compare.json's ``rows`` and ``paired`` (paired
    differences over the same test images, with 95% intervals), for the "What we found"
    sentences."""
    runs = [("FP32", out / "certify" / "fp")] + [
        (DISPLAY_NAMES.get(k, k), out / "search" / k / "final") for k in finals]
    rows = [{"name": "FP32", "bitops_percent": 100.0, **_scores(fp)}] + [
        {"name": DISPLAY_NAMES.get(k, k), "bitops_percent": f["bitops_percent"], **_scores(f)}
        for k, f in finals.items()]
    return {"rows": rows, "paired": pairwise_differences(runs)}


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in ("smoothed_accuracy", "acr", "images")}


def run_bench(cfg: DemoConfig, ckpt: str, out: Path, progress: Progress | None) -> None:
    BenchRun(bench_config(cfg, ckpt), out / "bench").run(progress)
    summarize_run(out / "bench")


def run_searches(cfg: DemoConfig, ckpt: str, out: Path, test_skip: int, step: Callable,
                 say: Callable[[str], None], progress: Progress | None
                 ) -> dict[str, dict[str, Any]]:
    """The demo's two searches (each a ``step``), every best model certified on the test
    images; returns each one's ``final`` numbers by strategy name."""
    searches = {}
    for name, label, sc in search_configs(cfg, ckpt):

        def go(sc: SearchConfig = sc, name: str = name) -> dict[str, Any]:
            search = Search(sc, out / "search" / name)
            search.run(progress)
            return search.finish(cfg.test_images, cfg.n, test_skip, progress)

        f = step(f"search_{name}", label, go)
        searches[name] = f
        say(f"      {name}: {f['bitops_percent']:.3f}% BitOPs, smoothed accuracy "
            f"{f['smoothed_accuracy']:.3f}, ACR {f['acr']:.3f} (full certification)")
    return searches


def _write_report(out: Path) -> None:
    # imported here: the report's reader (report.collect) imports this module for DEMO_FILE
    from robustq.report.build import build_report

    build_report([out], out / "report.html", "robustq demo report")


def run_demo(cfg: DemoConfig, out: Path, say: Callable[[str], None] = print,
             progress: Progress | None = None) -> dict[str, Any]:
    """Run the demo's steps into ``out``; returns what ``demo.json`` records. ``progress``
    follows the search and benchmark steps within."""
    model_file = embedded_set(cfg.data).model
    ckpt = str(embedded_dir() / model_file)
    record: dict[str, Any] = {"config": cfg.to_json(), "steps": {}, "finished": False,
                              "provenance": provenance(cfg.seed, cfg.to_json())}
    started = time.perf_counter()

    def step(name: str, label: str, fn: Callable[[], Any]) -> Any:
        say(f"[{len(record['steps']) + 1}/6] {label}")
        record["step"] = name
        atomic_write_json(out / DEMO_FILE, record)
        t0 = time.perf_counter()
        result = fn()
        record["steps"][name] = round(time.perf_counter() - t0, 1)
        return result

    fp, meta = load_model(ckpt)
    sigma = float(meta["sigma"])
    test = load_dataset(cfg.data, "test")
    skip = max(1, len(test) // cfg.test_images)
    cc = CertifyConfig(sigma=sigma, n0=cfg.n0, n=cfg.n, skip=skip, max_images=cfg.test_images,
                       seed=cfg.seed, radii=(0.0, 0.25, 0.5, 0.75, 1.0))
    info = {"checkpoint": model_file, "cost": checkpoint_cost(fp, meta)}
    fp_dir = out / "certify" / "fp"
    def certify_fp() -> dict[str, Any]:
        with silent(progress).phase("FP32: certifying test images", cfg.test_images) as ph:
            return certify_dataset(freeze_for_inference(fp, (cc.batch_size, *test.image_shape)),
                                   test, cc, fp_dir, cache=True, model_info=info,
                                   progress=lambda done, total, r: ph.update(done, acr=r["acr"]))

    s = step("certify_fp", f"certifying the FP model on {cfg.test_images} test images "
             f"(n = {cfg.n}, sigma = {sigma})", certify_fp)
    say(f"      FP: smoothed accuracy {s['smoothed_accuracy']:.3f}, ACR {s['acr']:.3f}")

    searches = run_searches(cfg, ckpt, out, skip, step, say, progress)
    record["comparison"] = demo_comparison(out, s, searches)
    ic = dataclasses.replace(cc, n_p=min(cfg.n_p, cfg.n))
    step("certify_irs", "incremental certification (IRS) of both against the FP cache",
         lambda: certify_irs(list(searches), ic, test, out, say, progress))

    step("bench", f"robustness benchmark: FP and {', '.join(cfg.bench_methods)} at "
         f"{'/'.join(map(str, cfg.bench_bits))} bits, {cfg.bench_images} images",
         lambda: run_bench(cfg, ckpt, out, progress))
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    record["finished"] = True
    atomic_write_json(out / DEMO_FILE, record)
    step("report", "writing the report", lambda: _write_report(out))
    record["wall_time_s"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / DEMO_FILE, record)
    return record
