"""When a recorded certification run may stand for a new one: the settings and data that must
agree to resume it, to use it as an IRS cache, or to reuse its certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustq.certify.config import CertifyConfig
from robustq.certify.rundir import (
    RUN,
    SUMMARY,
    checkpoint_identity,
    read_rows,
    recorded_summary,
    resolved_source,
)
from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError
from robustq.utils.records import read_record


def data_identity(data: dict[str, Any]) -> tuple[Any, Any]:
    """What must agree of two runs' data records: the resolved source and the split."""
    return resolved_source(data.get("source")), data.get("split")


def run_mismatches(meta: dict[str, Any], ds: ImageDataset, cfg: CertifyConfig,
                   keys: tuple[str, ...]) -> list[str]:
    """How the run recorded in ``meta`` differs from certifying ``cfg.indices`` of ``ds`` with
    ``cfg``, in the config ``keys`` and the data (source, split, image list); empty if not."""
    old = meta.get("config", {})
    problems = [f"{k} {old.get(k)} (asked {getattr(cfg, k)})" for k in keys
                if old.get(k) != getattr(cfg, k)]
    data = meta.get("data", {})
    if data_identity(data) != data_identity({"source": ds.source, "split": ds.split}):
        problems.append(f"data {data.get('source')}:{data.get('split')} "
                        f"(asked {ds.source}:{ds.split})")
    if data.get("indices") != cfg.indices(len(ds)):
        problems.append(f"another image list ({len(data.get('indices') or [])} images recorded, "
                        f"{len(cfg.indices(len(ds)))} asked: certify --skip/--max, compare "
                        "--test-images)")
    return problems


def check_cache_matches(meta: dict[str, Any], ds: ImageDataset, cfg: CertifyConfig,
                        cache_dir: Path) -> None:
    """The cache's bounds transfer only with its own noise and confidence: sigma, chunk, seed
    and alpha must be the run's (a bound at alpha 0.2 is no bound at 1e-4)."""
    problems = run_mismatches(meta, ds, cfg, ("sigma", "chunk", "seed", "alpha"))
    if problems:
        raise RobustqError(f"{cache_dir}: the cache was made with " + "; ".join(problems)
                           + "; certify against a cache made with the same settings")


# settings that decide which certificates a run computes (radii only summarize them)
SAME_CERTIFICATES = ("sigma", "n0", "n", "alpha", "batch_size", "chunk", "seed")


def reuse_certification(run_dir: Path, ds: ImageDataset, cfg: CertifyConfig,
                        checkpoint: str) -> dict[str, Any]:
    """The summary (at ``cfg.radii``) of a finished ``certify_dataset`` run in ``run_dir`` of
    the ``checkpoint`` file that certified the images ``cfg`` selects from ``ds`` with the same
    sigma, n0, n, alpha, batch, chunk and seed: the same noise, so the same certificates up to
    the float rounding of how the model was run. Anything that differs is refused with the
    reason."""
    if not (run_dir / RUN).is_file() or not (run_dir / SUMMARY).is_file():
        raise RobustqError(f"{run_dir}: not a finished certification run (needs {RUN} and "
                           f"{SUMMARY})")
    meta = read_record(run_dir / RUN, ("config", "data"))
    problems = run_mismatches(meta, ds, cfg, SAME_CERTIFICATES)
    if meta.get("kind") != "certify":
        problems.append(f"kind {meta.get('kind')} (an IRS run is not a full certification)")
    ran = Path((meta.get("model") or {}).get("checkpoint", ""))   # resolved when recorded
    if not (ran.is_file() and ran.samefile(checkpoint)):
        problems.append(f"checkpoint {ran} (asked {checkpoint})")
    rows = read_rows(run_dir)
    if len(rows) != len(cfg.indices(len(ds))):
        problems.append(f"{len(rows)} certified images (need {len(cfg.indices(len(ds)))})")
    if problems:
        raise RobustqError(f"{run_dir}: cannot reuse this certification: " + "; ".join(problems))
    return recorded_summary(run_dir, rows, cfg.radii)


def joined_rows(run_dirs: list[Path]) -> list[dict[str, str]]:
    """The per-image rows of runs that certify parts of one image list (``offset``s): the same
    classifier, data and certificate settings, no image twice, in image order. Their noise
    depends on the image only, so the union is the one run over those images. Anything that
    differs is refused with the run that differs, and so is a part that is not a run."""
    absent = [str(d) for d in run_dirs if not (Path(d) / RUN).is_file()]
    if absent:
        raise RobustqError(f"{', '.join(absent)}: not a certification run (no {RUN})")
    first = read_record(Path(run_dirs[0]) / RUN, ("config", "data", "model"))
    rows = read_rows(run_dirs[0])
    for run_dir in run_dirs[1:]:
        meta = read_record(Path(run_dir) / RUN, ("config", "data", "model"))
        problems = [k for k in SAME_CERTIFICATES if meta["config"].get(k) != first["config"].get(k)]
        if checkpoint_identity(meta["model"]) != checkpoint_identity(first["model"]):
            problems.append("checkpoint")
        if data_identity(meta["data"]) != data_identity(first["data"]):
            problems.append("data")
        if meta.get("kind") != first.get("kind"):
            problems.append("kind")
        if problems:
            raise RobustqError(f"{run_dir}: not a part of {run_dirs[0]}'s run (another "
                               + ", ".join(problems) + ")")
        rows += read_rows(run_dir)
    idx = [int(r["idx"]) for r in rows]
    if len(set(idx)) != len(idx):
        raise RobustqError(f"{' + '.join(map(str, run_dirs))}: an image certified twice")
    return sorted(rows, key=lambda r: int(r["idx"]))
