"""``robustq certify``: randomized-smoothing certification of a checkpoint on a data set,
optionally writing an IRS cache, or certifying incrementally against one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from torch import nn

from robustq.certify.run import (
    CertifyConfig,
    certify_dataset,
    irs_certify_dataset,
    samples_to_go,
)
from robustq.cli.common import (
    DeviceOpt,
    RayOpt,
    SeedOpt,
    WorkersOpt,
    check_model_fits,
    console,
    friendly_errors,
)
from robustq.cli.progress import console_progress
from robustq.cli.train_cmd import DataOpt, set_threads
from robustq.data import load_dataset
from robustq.models.approx import approximate
from robustq.quant.checkpoint import checkpoint_cost, load_model
from robustq.quant.engines import (
    CALIBRATION_IMAGES,
    ENGINES,
    build_engine,
    calibration_images,
    check_engine,
)
from robustq.utils.device import resolve_device
from robustq.utils.errors import RobustqError
from robustq.utils.parallel import Executor, get_executor


def sampled_model(model: nn.Module, meta: dict, checkpoint: Path, engine: str,
                  cfg: CertifyConfig, ds, data: str, out: Path, incremental: bool
                  ) -> tuple[nn.Module, dict]:
    """The classifier that is sampled, and how (recorded in run.json: a certificate is for the
    classifier actually sampled). An ``.onnx`` file is always run as it is, in ONNX Runtime."""
    if "deployed" in meta:
        return model, {"engine": "onnx", "classifier": "deployed", "runtime": "onnxruntime",
                       "deployed": meta["deployed"], "source": meta.get("source")}

    def calibration():
        images = load_dataset(data, "train").spread(CALIBRATION_IMAGES).tensors()[0]
        return calibration_images(images, cfg.sigma)

    samples = samples_to_go(cfg, ds, out, incremental)
    return build_engine(engine, model, checkpoint, (cfg.batch_size, *ds.image_shape), samples,
                        out, calibration)


def place(model: nn.Module, meta: dict, engine: str, name: str) -> torch.device:
    """Resolve ``--device`` and move the model there; ONNX Runtime runs here on the CPU."""
    device = resolve_device(name)
    if device.type != "cpu" and ("deployed" in meta or engine.startswith("onnx")):
        if name != "auto":
            raise RobustqError(f"--device {name}: ONNX models run on the CPU here")
        device = torch.device("cpu")
    model.to(device)
    return device


def note_class_coverage(cfg: CertifyConfig, ds) -> None:
    """Say so when the selected images miss classes (a class-sorted split, a small --max)."""
    chosen = {int(ds.labels[i]) for i in cfg.indices(len(ds))}
    if len(chosen) < ds.num_classes:
        console.print(f"[yellow]note:[/] the {len(cfg.indices(len(ds)))} selected images cover "
                      f"{len(chosen)} of {ds.num_classes} classes (data sorted by class?); a "
                      "larger --skip spreads them over the whole split")


def certify_with_progress(model: nn.Module, ds, cfg: CertifyConfig, out: Path, cache: bool,
                          incremental: Path | None, info: dict, device: torch.device,
                          executor: Executor) -> dict:
    """Plain or IRS certification, progress showing the running ACR and accuracy."""
    what = "certifying" if incremental is None else "IRS-certifying"
    with console_progress().phase(f"{what} {len(cfg.indices(len(ds)))} images "
                                  f"(n={cfg.n if incremental is None else cfg.n_p})") as ph:

        def progress(done, total, s):
            ph.update(done, total=total, acr=s["acr"], acc=s["smoothed_accuracy"])

        if incremental is None:
            return certify_dataset(model, ds, cfg, out, cache=cache, model_info=info,
                                   progress=progress, device=device, executor=executor)
        return irs_certify_dataset(model, ds, cfg, incremental, out, model_info=info,
                                   progress=progress, device=device, executor=executor)


@friendly_errors
def certify_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="robustq .safetensors checkpoint (f)")],
    out: Annotated[Path, typer.Option(help="output directory (per-image TSV, summary JSON)")],
    data: DataOpt = "embedded",
    split: Annotated[str, typer.Option(help="train | test")] = "test",
    sigma: Annotated[float | None, typer.Option(help="noise std (default: checkpoint's)")] = None,
    n0: Annotated[int, typer.Option(help="samples that select the top class")] = 100,
    n: Annotated[int, typer.Option(help="samples that bound its probability (radius)")] = 10_000,
    alpha: Annotated[float, typer.Option(help="failure probability of each certificate")] = 0.001,
    batch: Annotated[int, typer.Option(help="noisy samples per forward pass")] = 400,
    chunk: Annotated[int, typer.Option(help="samples per recorded noise seed")] = 100,
    skip: Annotated[int, typer.Option(help="certify every SKIP-th image")] = 20,
    max_images: Annotated[int | None, typer.Option("--max", help="at most this many")] = 500,
    seed: SeedOpt = 0,
    cache: Annotated[bool, typer.Option(help="also write the IRS cache")] = False,
    incremental: Annotated[Path | None, typer.Option(help="IRS: certify against this cache "
                                                     "(a run made with --cache)")] = None,
    approx: Annotated[str | None, typer.Option(help="certify f_p = bf16 | prune:FRAC of the "
                                               "checkpoint instead of f")] = None,
    n_p: Annotated[int | None, typer.Option("--n-p", help="IRS samples per image")] = None,
    alpha_zeta: Annotated[float, typer.Option(help="IRS: failure probability of the "
                                              "disagreement bound zeta")] = 0.001,
    gamma: Annotated[float, typer.Option(help="IRS: reuse the cache where its pA exceeds gamma")] = 0.99,
    engine: Annotated[str, typer.Option(help="how the classifier is sampled: " + "; ".join(
        f"{e.name}: {e.help}" for e in ENGINES.values()))] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 1,
    ray: RayOpt = None,
) -> None:
    """Certify l2 robustness of the smoothed classifier (Cohen et al.), or IRS against a cache."""
    set_threads(threads)
    executor = get_executor(workers, ray)
    model, meta = load_model(checkpoint)
    cost = checkpoint_cost(model, meta) if approx is None else None
    sigma = meta.get("sigma") if sigma is None else sigma
    if sigma is None:
        raise RobustqError(f"{checkpoint}: no sigma recorded; pass --sigma")
    cfg = CertifyConfig(sigma=sigma, n0=n0, n=n, alpha=alpha, batch_size=batch, chunk=chunk,
                        skip=skip, max_images=max_images, seed=seed, n_p=n_p,
                        alpha_zeta=alpha_zeta, gamma=gamma)
    ds = load_dataset(data, split)
    check_model_fits(model, ds, checkpoint)
    check_engine(engine, bool(meta.get("quant")))
    if approx is not None and ("deployed" in meta or engine.startswith("onnx")):
        raise RobustqError("--approx certifies an approximation of a torch model; it does not "
                           "combine with a deployed model or an onnx engine")
    if approx is not None:
        model = approximate(model, approx)
    note_class_coverage(cfg, ds)
    where = place(model, meta, engine, device)
    model, how = sampled_model(model, meta, checkpoint, engine, cfg, ds, data, out,
                               incremental is not None)
    info = {"checkpoint": str(checkpoint.resolve()), "approx": approx, "arch": meta["card"]["arch"],
            **how, "device": str(where), **({"cost": cost} if cost is not None else {})}
    summary = certify_with_progress(model, ds, cfg, out, cache, incremental, info, where, executor)
    ca = ", ".join(f"{r}: {v:.3f}" for r, v in summary["certified_accuracy"].items())
    console.print(f"{summary['images']} images: smoothed accuracy "
                  f"{summary['smoothed_accuracy']:.3f}, ACR {summary['acr']:.3f}, certified "
                  f"accuracy {{{ca}}}, {summary['wall_time_s']:.0f}s -> {out}")
