"""``robustq demo``: parses its options into a ``DemoConfig`` and prints what
``robustq.report.demo.run_demo`` did (the steps are listed there)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.cli.common import OutDirOpt, SeedOpt, ThreadsOpt, console, friendly_errors, set_threads
from robustq.cli.progress import console_progress
from robustq.report.demo import DemoConfig, run_demo
from robustq.report.headline import compare_sentences


@friendly_errors
def demo_cmd(
    out: OutDirOpt = Path("runs/demo"),
    episodes: Annotated[int, typer.Option(help="ARQ search episodes")] = DemoConfig.episodes,
    test_images: Annotated[int, typer.Option(help="test images certified")]
    = DemoConfig.test_images,
    n: Annotated[int, typer.Option(help="noise samples per test image")] = DemoConfig.n,
    bench_images: Annotated[int, typer.Option(help="test images per robustness-benchmark "
                                              "unit")] = DemoConfig.bench_images,
    data: Annotated[str, typer.Option(help="packaged subset: embedded-cifar10 (ResNet-20) or "
                                      "embedded (MNIST, small CNN; faster)")] = DemoConfig.data,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = None,
) -> None:
    """Search, certify, benchmark and report on the embedded CIFAR-10 default (a few minutes)."""
    set_threads(threads)
    cfg = DemoConfig(data=data, episodes=episodes, warmup=min(DemoConfig.warmup, episodes // 2),
                     test_images=test_images, n=n, bench_images=bench_images,
                     attack_images=min(DemoConfig.attack_images, bench_images),
                     autoattack_images=min(DemoConfig.autoattack_images, bench_images),
                     seed=seed)
    rec = run_demo(cfg, out, lambda m: console.print(m, highlight=False), console_progress())
    console.print("What we found:", style="bold")
    for sentence in compare_sentences("the demo", rec["comparison"]):
        console.print(f"- {sentence}", highlight=False)
    console.print(f"done in {rec['wall_time_s']:.0f}s: open {out / 'report.html'}")
