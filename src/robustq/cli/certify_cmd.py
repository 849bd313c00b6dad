"""``robustq certify``: randomized-smoothing certification of a checkpoint on a data set,
optionally writing an IRS cache, or certifying incrementally against one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.certify.config import CertifyConfig
from robustq.certify.workflow import CertifyJob, run_certify
from robustq.cli.common import Machine, SeedOpt, console, friendly_errors, on_machine
from robustq.cli.progress import console_progress
from robustq.cli.train_cmd import DataOpt
from robustq.quant.engines import ENGINES


@friendly_errors
@on_machine
def certify_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="robustq .safetensors checkpoint (f)")],
    out: Annotated[Path, typer.Option(help="output directory (per-image TSV, summary JSON)")],
    data: DataOpt = "embedded",
    split: Annotated[str, typer.Option(help="train | test")] = "test",
    sigma: Annotated[float | None, typer.Option(help="noise std (default: checkpoint's)")] = None,
    n0: Annotated[int, typer.Option(help="samples that select the top class")] = CertifyConfig.n0,
    n: Annotated[int, typer.Option(help="samples that bound its probability (radius)")] = CertifyConfig.n,
    alpha: Annotated[float, typer.Option(help="failure probability of each certificate")] \
    = CertifyConfig.alpha,
    batch: Annotated[int, typer.Option(help="noisy samples per forward pass")] = CertifyConfig.batch_size,
    chunk: Annotated[int, typer.Option(help="samples per recorded noise seed")] = CertifyConfig.chunk,
    skip: Annotated[int, typer.Option(help="certify every SKIP-th image")] = CertifyConfig.skip,
    max_images: Annotated[int | None, typer.Option("--max", help="at most this many")] \
    = CertifyConfig.max_images,
    offset: Annotated[int, typer.Option(help="the first image certified (then every SKIP-th)")] \
    = CertifyConfig.offset,
    seed: SeedOpt = CertifyConfig.seed,
    cache: Annotated[bool, typer.Option(help="also write the IRS cache")] = False,
    incremental: Annotated[Path | None, typer.Option(help="IRS: certify against this cache "
                                                     "(a run made with --cache)")] = None,
    approx: Annotated[str | None, typer.Option(help="certify f_p = bf16 | prune:FRAC of the "
                                               "checkpoint instead of f")] = None,
    n_p: Annotated[int | None, typer.Option("--n-p", help="IRS samples per image")] = None,
    alpha_zeta: Annotated[float, typer.Option(help="IRS: failure probability of the "
                                              "disagreement bound zeta")] = CertifyConfig.alpha_zeta,
    gamma: Annotated[float, typer.Option(help="IRS: reuse the cache where its pA exceeds gamma")] \
    = CertifyConfig.gamma,
    engine: Annotated[str, typer.Option(help="how the classifier is sampled: " + "; ".join(
        f"{e.name}: {e.help}" for e in ENGINES.values()))] = "auto",
    machine: Machine = None,
) -> None:
    """Certify l2 robustness of the smoothed classifier (Cohen et al.), or IRS against a cache."""
    executor = machine.executor
    cfg = CertifyConfig(sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch, chunk=chunk,
                        skip=skip, max_images=max_images, offset=offset, seed=seed, n_p=n_p,
                        alpha_zeta=alpha_zeta, gamma=gamma)
    job = CertifyJob(checkpoint=str(checkpoint), data=data, split=split, certify=cfg,
                     cache=cache, incremental=None if incremental is None else str(incremental),
                     approx=approx, engine=engine, device=machine.device_name)
    summary = run_certify(job, out, console_progress(), executor,
                          say=lambda line: console.print(f"[yellow]{line}[/]", highlight=False))
    ca = ", ".join(f"{r}: {v:.3f}" for r, v in summary["certified_accuracy"].items())
    console.print(f"{summary['images']} images: smoothed accuracy "
                  f"{summary['smoothed_accuracy']:.3f}, ACR {summary['acr']:.3f}, certified "
                  f"accuracy {{{ca}}}, {summary['wall_time_s']:.0f}s -> {out}")
