"""Certification as a library function: ``run_certify(CertifyJob)`` certifies a checkpoint (FP,
quantized, or an exported ONNX file) on a data set, plainly (optionally writing the IRS cache)
or incrementally against a cache, with the engine that samples it recorded in ``run.json``
(a certificate is for the classifier actually sampled). Everything is checked before anything
is written; the CLI only builds the job and prints the summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustq.certify.config import CertifyConfig
from robustq.certify.run import certify_dataset, irs_certify_dataset, samples_to_go
from robustq.data import load_dataset
from robustq.data.dataset import ImageDataset
from robustq.models.approx import approximate
from robustq.quant.checkpoint import checkpoint_cost, load_model
from robustq.quant.engines import CALIBRATION_IMAGES, build_engine, calibration_images, check_engine
from robustq.quant.workflow import check_fits
from robustq.utils.config import JsonConfig
from robustq.utils.device import resolve_device
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256
from robustq.utils.parallel import Executor
from robustq.utils.progress import Progress, say_nothing, silent


@dataclass(frozen=True)
class CertifyJob(JsonConfig):
    """Certify ``checkpoint`` on ``split`` of ``data`` with ``certify`` (its sigma None: the
    checkpoint's). ``cache``: also write the IRS cache; ``incremental``: IRS against the cache
    in that run directory; ``approx``: certify f_p = bf16 | prune:FRAC of the checkpoint;
    ``engine``: how it is sampled (``quant.engines``); ``device``: auto, cpu, cuda or cuda:N."""

    checkpoint: str
    data: str = "embedded"
    split: str = "test"
    certify: CertifyConfig = field(default_factory=CertifyConfig)
    cache: bool = False
    incremental: str | None = None
    approx: str | None = None
    engine: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise RobustqError(f"--split must be train or test, got {self.split!r}")
        if self.incremental is not None and self.cache:
            raise RobustqError("--cache writes a cache of f; it does not combine with "
                               "--incremental (which certifies f_p against one)")


def sampled_model(model: nn.Module, meta: dict, job: CertifyJob, cfg: CertifyConfig,
                  ds: ImageDataset, out: Path) -> tuple[nn.Module, dict]:
    """The classifier that is sampled, and how. An ``.onnx`` file is always run as it is, in
    ONNX Runtime."""
    if "deployed" in meta:
        return model, {"engine": "onnx", "classifier": "deployed", "runtime": "onnxruntime",
                       "deployed": meta["deployed"], "source": meta.get("source")}

    def calibration():
        images = load_dataset(job.data, "train").spread(CALIBRATION_IMAGES).tensors()[0]
        return calibration_images(images, cfg.sigma)

    samples = samples_to_go(cfg, ds, out, job.incremental is not None)
    return build_engine(job.engine, model, Path(job.checkpoint), (cfg.batch_size, *ds.image_shape),
                        samples, out, calibration)


def place(model: nn.Module, meta: dict, engine: str, name: str) -> torch.device:
    """Resolve the device and move the model there; ONNX Runtime runs here on the CPU."""
    device = resolve_device(name)
    if device.type != "cpu" and ("deployed" in meta or engine.startswith("onnx")):
        if name != "auto":
            raise RobustqError(f"--device {name}: ONNX models run on the CPU here")
        device = torch.device("cpu")
    model.to(device)
    return device


def class_coverage_note(cfg: CertifyConfig, ds: ImageDataset) -> str | None:
    """A note when the selected images miss classes (a class-sorted split, a small max)."""
    chosen = {int(ds.labels[i]) for i in cfg.indices(len(ds))}
    if len(chosen) < ds.num_classes:
        return (f"note: the {len(cfg.indices(len(ds)))} selected images cover {len(chosen)} of "
                f"{ds.num_classes} classes (data sorted by class?); a larger --skip spreads them "
                "over the whole split")
    return None


def _prepared(job: CertifyJob, out: Path) -> tuple[nn.Module, ImageDataset, CertifyConfig, dict,
                                                   torch.device, str | None]:
    """The sampled classifier, the data, the resolved config, what run.json records about the
    model, the device and a coverage note: every check made, nothing written."""
    model, meta = load_model(job.checkpoint)
    cost = checkpoint_cost(model, meta) if job.approx is None else None
    cfg = job.certify.with_sigma(meta.get("sigma"), job.checkpoint)
    ds = load_dataset(job.data, job.split)
    if not cfg.indices(len(ds)):
        raise RobustqError(f"--offset {cfg.offset}: past the last of the {len(ds)} "
                           f"{job.split} images; nothing to certify")
    check_fits(model, ds, job.checkpoint)
    check_engine(job.engine, bool(meta.get("quant")))
    if job.approx is not None and ("deployed" in meta or job.engine.startswith("onnx")):
        raise RobustqError("--approx certifies an approximation of a torch model; it does not "
                           "combine with a deployed model or an onnx engine")
    if job.approx is not None:
        model = approximate(model, job.approx)
    where = place(model, meta, job.engine, job.device)
    model, how = sampled_model(model, meta, job, cfg, ds, out)
    info = {"checkpoint": str(Path(job.checkpoint).resolve()),
            "checkpoint_sha256": file_sha256(job.checkpoint), "approx": job.approx,
            "arch": meta["card"]["arch"], **how, "device": str(where),
            **({"cost": cost} if cost is not None else {})}
    return model, ds, cfg, info, where, class_coverage_note(cfg, ds)


def run_certify(job: CertifyJob, out: str | Path, progress: Progress | None = None,
                executor: Executor | None = None, say: Callable[[str], None] = say_nothing
                ) -> dict[str, Any]:
    """Certify as ``job`` says into ``out`` (run.json, certify.tsv, summary.json; resumes from
    the rows there); returns the summary (smoothed accuracy, ACR, certified accuracy at the
    radii, wall time). Progress: one phase, the running ACR and accuracy per image."""
    out = Path(out)
    model, ds, cfg, info, where, note = _prepared(job, out)
    if note:
        say(note)
    what = "certifying" if job.incremental is None else "IRS-certifying"
    with silent(progress).phase(f"{what} {len(cfg.indices(len(ds)))} images "
                                f"(n={cfg.n if job.incremental is None else cfg.n_p})") as ph:

        def step(done, total, s):
            ph.update(done, total=total, acr=s["acr"], acc=s["smoothed_accuracy"])

        if job.incremental is None:
            return certify_dataset(model, ds, cfg, out, cache=job.cache, model_info=info,
                                   progress=step, device=where, executor=executor)
        return irs_certify_dataset(model, ds, cfg, job.incremental, out, model_info=info,
                                   progress=step, device=where, executor=executor)
