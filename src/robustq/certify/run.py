"""Certify a data set image by image: streamed per-image results, resumable, with an IRS cache.

The directory's files and their validated readers are in ``certify.rundir``; the settings in
``certify.config``; when a recorded run may stand for a new one in ``certify.reuse``; paired
statistics across runs in ``certify.paired`` (all re-exported here). A killed run
resumes at the first image without a complete line (and complete cache row).
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustq.certify.config import CertifyConfig
from robustq.certify.irs import CacheEntry, irs_certify_many
from robustq.certify.metrics import summarize
from robustq.certify.paired import compare_runs, pairwise_differences
from robustq.certify.reuse import (
    SAME_CERTIFICATES,
    check_cache_matches,
    reuse_certification,
    run_mismatches,
)
from robustq.certify.rundir import (
    CACHE,
    COLUMNS,
    IRS_COLUMNS,
    RUN,
    SUMMARY,
    TSV,
    finished_rows,
    load_cache,
    prepare,
    read_rows,
    recorded_summary,
    resolved_source,
    summarize_rows,
)
from robustq.certify.smooth import Certificate, Smooth
from robustq.data.dataset import ImageDataset
from robustq.utils.errors import RobustqError
from robustq.utils.faults import fault_point
from robustq.utils.io import atomic_write_json
from robustq.utils.parallel import SERIAL, Executor
from robustq.utils.provenance import provenance

# re-exported: the workflow's public names, wherever they live
__all__ = ["RUN", "SAME_CERTIFICATES", "SUMMARY", "CertifyConfig", "certify_dataset",
           "check_cache_matches", "compare_runs", "irs_certify_dataset", "pairwise_differences",
           "read_rows", "reuse_certification", "run_mismatches", "samples_to_go",
           "summarize_rows"]


def _row(idx, label, cert: Certificate, seconds, samples, seed, extra=()) -> list:
    return [idx, label, cert.prediction, f"{cert.radius:.6f}", int(cert.prediction == label),
            f"{seconds:.3f}", samples, f"{cert.p_lower:.6f}", cert.count, seed, *extra]


def _finish(out: Path, cfg: CertifyConfig, started: float, earlier: list[dict[str, str]],
            rows: list[dict[str, str]]) -> dict[str, Any]:
    """Write ``summary.json`` from the run's ``rows`` (all of them, as written). Its wall time
    is this call's plus the recorded per-image time of the ``earlier`` rows (certified by a
    killed call), so a resumed run reports the time of the whole run. A finished run is not
    finished again: it is read back (``rundir.finished_rows``), its files untouched."""
    summary = summarize_rows(rows, cfg.radii)
    summary["wall_time_s"] = round(time.perf_counter() - started
                                   + sum(float(r["time"]) for r in earlier), 2)
    atomic_write_json(out / SUMMARY, summary)
    return summary


Progress = Callable[[int, int, dict[str, Any]], None]


def certify_dataset(model: nn.Module, ds: ImageDataset, cfg: CertifyConfig, out_dir: str | Path,
                    cache: bool = False, model_info: dict | None = None,
                    progress: Progress | None = None, device: torch.device | None = None,
                    executor: Executor | None = None) -> dict[str, Any]:
    """CERTIFY the images ``cfg.indices(len(ds))`` of ``ds``; stream results to ``out_dir``.

    With ``cache``, also write f's estimation predictions so the run can serve as an IRS cache.
    ``progress(done, total, running_summary)`` is called after every image. ``device``: where
    the noise is drawn and the model runs (``Smooth``); default the CPU.
    """
    cfg.require_sigma()
    out = Path(out_dir)
    executor = executor or SERIAL
    indices = cfg.indices(len(ds))
    run_meta = {"kind": "certify", "config": cfg.to_json(), "cache": cache,
                "data": {"source": resolved_source(ds.source), "split": ds.split,
                         "indices": indices},
                "model": model_info or {}, "cache_source": None,
                "provenance": provenance(cfg.seed, cfg.to_json())}
    done = finished_rows(out, run_meta, len(indices), cfg.n * 2, cache, ds.num_classes)
    if done is not None:
        return recorded_summary(out, done, cfg.radii)
    rows = prepare(out, run_meta, COLUMNS, cfg.n * 2, cache, ds.num_classes)
    smooth = Smooth(model, ds.num_classes, cfg.sigma, cfg.batch_size, cfg.chunk, device)
    model.eval()
    started, done, earlier = time.perf_counter(), len(rows), list(rows)
    # the unit of work: as many images as fill one batch (the same groups on every executor)
    group = max(1, cfg.batch_size // (cfg.n0 + cfg.n))
    groups = [indices[g:g + group] for g in range(done, len(indices), group)]
    # images travel as uint8 arrays: a torch tensor sent to a process goes through shared memory
    units = ((ds.subset(idx), [cfg.image_seed(i) for i in idx]) for idx in groups)
    with open(out / TSV, "a") as tsv, open(out / CACHE, "ab") if cache else io.BytesIO() as cf, \
            executor.session((smooth, cfg, cache)) as run:
        for idx, (certs, preds, dt) in zip(groups, run.imap(_certify_group, units), strict=True):
            if cache:
                cf.write(preds.astype(np.int16).tobytes())
                cf.flush()
            labels = ds.labels[np.asarray(idx)].tolist()
            new = [dict(zip(COLUMNS, map(str, _row(i, y, c, dt, cfg.n0 + cfg.n,
                                                  cfg.image_seed(i))), strict=True))
                   for i, y, c in zip(idx, labels, certs, strict=True)]
            _append_rows(tsv, COLUMNS, rows, new, len(indices), progress)
    return _finish(out, cfg, started, earlier, rows)


def _certify_group(work: tuple[Smooth, CertifyConfig, bool], unit: tuple[ImageDataset, list[int]]
                   ) -> tuple[list[Certificate], np.ndarray | None, float]:
    """One unit (on any executor): CERTIFY a group of images with their seeds; the certificates,
    f's recorded estimation predictions (with a cache) and the seconds per image."""
    smooth, cfg, record = work
    images, seeds = unit
    xs = images.tensors()[0]
    t0 = time.perf_counter()
    certs, preds = smooth.certify_many(xs, cfg.n0, cfg.n, cfg.alpha, seeds, record=record)
    return certs, preds, (time.perf_counter() - t0) / len(seeds)


def _append_rows(tsv, columns: list[str], rows: list[dict[str, str]],
                 new: list[dict[str, str]], total: int, progress: Progress | None) -> None:
    """Append complete lines for ``new`` rows (flushed: a kill keeps them), then report."""
    rows.extend(new)
    tsv.write("".join("\t".join(r[c] for c in columns) + "\n" for r in new))
    tsv.flush()
    fault_point("+" + TSV)
    if progress:
        progress(len(rows), total, _running(rows))


def _running(rows: list[dict[str, str]]) -> dict[str, Any]:
    return summarize([int(r["predict"]) for r in rows], [int(r["label"]) for r in rows],
                     [float(r["radius"]) for r in rows], ())


def samples_to_go(cfg: CertifyConfig, ds: ImageDataset, out_dir: str | Path,
                  incremental: bool = False) -> int:
    """Forward samples a (possibly resumed) run in ``out_dir`` still has to draw: the images
    without a complete row, times n0 + n (or n_p for IRS)."""
    left = max(0, len(cfg.indices(len(ds))) - len(read_rows(out_dir)))
    return left * ((cfg.n_p or cfg.n) if incremental else cfg.n0 + cfg.n)


def irs_certify_dataset(model_p: nn.Module, ds: ImageDataset, cfg: CertifyConfig,
                        cache_dir: str | Path, out_dir: str | Path,
                        model_info: dict | None = None, progress: Progress | None = None,
                        device: torch.device | None = None, executor: Executor | None = None
                        ) -> dict[str, Any]:
    """IRS-certify an approximate model ``model_p`` against the cache of f's certification.

    The transferred bounds hold at the cache's alpha with the cache's noise (sigma, chunk,
    seed): a cache made with other values is refused, and ``run.json`` records the cache's
    n0 and n (f's samples), so every certificate holds with probability 1 - (alpha + alpha_zeta).
    """
    cfg.require_sigma()
    cache_dir = Path(cache_dir)
    meta, cached_rows, cached_preds = load_cache(cache_dir, ds.num_classes)
    check_cache_matches(meta, ds, cfg, cache_dir)
    drawn_on = str((meta.get("model") or {}).get("device", "cpu")).split(":")[0]
    if drawn_on != (device or torch.device("cpu")).type:
        raise RobustqError(f"{cache_dir}: the cache's noise was drawn on {drawn_on}; IRS replays "
                           f"that very noise, so certify on {drawn_on} too (--device)")
    cfg = dataclasses.replace(cfg, n0=meta["config"]["n0"], n=meta["config"]["n"])
    if cfg.n_p is None or cfg.n_p > cfg.n:
        raise RobustqError(f"--n-p must be set and at most the cache's n={cfg.n}")
    if len(cached_rows) < len(meta["data"]["indices"]):
        raise RobustqError(f"{cache_dir}: the cache is incomplete ({len(cached_rows)} of "
                           f"{len(meta['data']['indices'])} images); finish certifying f first")
    out = Path(out_dir)
    run_meta = {"kind": "irs", "config": cfg.to_json(), "data": meta["data"],
                "model": model_info or {}, "cache_source": str(cache_dir.resolve()),
                "provenance": provenance(cfg.seed, cfg.to_json())}
    done = finished_rows(out, run_meta, len(cached_rows), 1, False, ds.num_classes)
    if done is not None:
        return recorded_summary(out, done, cfg.radii)
    rows = prepare(out, run_meta, IRS_COLUMNS, 1, False, ds.num_classes)
    smooth = Smooth(model_p, ds.num_classes, cfg.sigma, cfg.batch_size, cfg.chunk, device)
    model_p.eval()
    started, earlier = time.perf_counter(), list(rows)
    todo = range(len(rows), len(cached_rows))
    units = (_irs_unit(ds, cfg, cached_rows[k], cached_preds[k]) for k in todo)
    with open(out / TSV, "a") as tsv, (executor or SERIAL).session((smooth, cfg)) as run:
        for k, (cert, dt) in zip(todo, run.imap(_irs_image, units), strict=True):
            new = [_irs_row(cfg, cached_rows[k], cert, dt)]
            _append_rows(tsv, IRS_COLUMNS, rows, new, len(cached_rows), progress)
    return _finish(out, cfg, started, earlier, rows)


def _irs_unit(ds: ImageDataset, cfg: CertifyConfig, r: dict[str, str], predictions: np.ndarray
              ) -> tuple[ImageDataset, CacheEntry] | None:
    """One image's IRS unit from its cached row ``r``: the image and f's cache entry, or None
    where f abstained (nothing to transfer)."""
    if int(r["predict"]) < 0:
        return None
    entry = CacheEntry(int(r["predict"]), float(r["p_lower"]), int(r["seed"]), predictions,
                       chunk=cfg.chunk, alpha=cfg.alpha)
    return ds.subset([int(r["idx"])]), entry


def _irs_image(work: tuple[Smooth, CertifyConfig], unit: tuple[ImageDataset, CacheEntry] | None
               ) -> tuple[Certificate | None, float]:
    """One unit (on any executor): IRS for one image; its certificate and seconds."""
    if unit is None:
        return None, 0.0
    smooth, cfg = work
    t0 = time.perf_counter()
    xs = unit[0].tensors()[0]
    cert = irs_certify_many(smooth, xs, [unit[1]], cfg.n_p, None, cfg.alpha_zeta, cfg.gamma)[0]
    return cert, time.perf_counter() - t0


def _irs_row(cfg: CertifyConfig, r: dict[str, str], cert: Certificate | None, dt: float
             ) -> dict[str, str]:
    """One image's IRS row from its cached row ``r`` and its certificate (None: f abstained)."""
    i, y = int(r["idx"]), int(r["label"])
    if cert is None:
        cert, extra, samples = Certificate(-1, 0.0, float(r["p_lower"]), 0, 0), ("", ""), 0
    else:
        extra = ("" if cert.zeta is None else f"{cert.zeta:.6f}",
                 "" if cert.disagreements is None else cert.disagreements)
        samples = cfg.n_p
    values = _row(i, y, cert, dt, samples, int(r["seed"]), extra)
    return dict(zip(IRS_COLUMNS, map(str, values), strict=True))
