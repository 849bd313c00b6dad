"""Certify a data set image by image: streamed per-image results, resumable, with an IRS cache.

The directory's files and their validated readers are in ``certify.rundir``. A killed run
resumes at the first image without a complete line (and complete cache row).
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustq.certify.irs import CacheEntry, irs_certify_many
from robustq.certify.metrics import (
    PairedDifference,
    accuracy_curve,
    certified_radii,
    paired_difference,
    summarize,
)
from robustq.certify.rundir import (
    CACHE,
    COLUMNS,
    IRS_COLUMNS,
    RUN,
    SUMMARY,
    TSV,
    load_cache,
    prepare,
    read_tsv,
    resolved_source,
)
from robustq.certify.smooth import Certificate, Smooth, check_alpha
from robustq.data.dataset import ImageDataset
from robustq.utils.config import JsonConfig
from robustq.utils.errors import RobustqError
from robustq.utils.faults import fault_point
from robustq.utils.io import atomic_write_json
from robustq.utils.provenance import provenance
from robustq.utils.records import read_record
from robustq.utils.validate import check_sigma


@dataclass(frozen=True)
class CertifyConfig(JsonConfig):
    """One certification run. sigma in [0, 1] pixel units; images ``skip*k`` for k < ``max``."""

    sigma: float
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    batch_size: int = 400
    chunk: int = 100
    skip: int = 20
    max_images: int | None = 500
    seed: int = 0
    radii: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    # incremental (IRS) settings, used only against a cache
    n_p: int | None = None
    alpha_zeta: float = 0.001
    gamma: float = 0.99
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_sigma(self.sigma)
        if not 0.5 < self.gamma <= 1:
            raise RobustqError(f"gamma must lie in (0.5, 1], got {self.gamma}")
        if self.n0 < 1 or self.n < 1:
            raise RobustqError(f"n0 and n must be >= 1, got n0={self.n0}, n={self.n}")
        check_alpha(self.alpha)
        check_alpha(self.alpha_zeta, "alpha_zeta")
        if self.batch_size < 1:
            raise RobustqError(f"batch size must be >= 1, got {self.batch_size}")
        if not 1 <= self.chunk <= self.batch_size:
            raise RobustqError(f"chunk must lie in [1, batch size], got {self.chunk}")
        if self.skip < 1:
            raise RobustqError(f"skip must be >= 1, got {self.skip}")
        if self.max_images is not None and self.max_images < 1:
            raise RobustqError(f"max images must be >= 1, got {self.max_images}")
        if self.n_p is not None and self.n_p < 1:
            raise RobustqError(f"n_p must be >= 1, got {self.n_p}")

    def indices(self, size: int) -> list[int]:
        idx = list(range(0, size, self.skip))
        return idx[: self.max_images] if self.max_images is not None else idx

    def image_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index


def _row(idx, label, cert: Certificate, seconds, samples, seed, extra=()) -> list:
    return [idx, label, cert.prediction, f"{cert.radius:.6f}", int(cert.prediction == label),
            f"{seconds:.3f}", samples, f"{cert.p_lower:.6f}", cert.count, seed, *extra]


def summarize_rows(rows: list[dict[str, str]], radii: tuple[float, ...]) -> dict[str, Any]:
    """ACR, certified accuracy at ``radii``, the certified-accuracy curve (51 radii), time and
    samples of per-image rows as read from ``certify.tsv`` (a run's or a partial run's)."""
    preds = [int(r["predict"]) for r in rows]
    labels = [int(r["label"]) for r in rows]
    rads = [float(r["radius"]) for r in rows]
    summary = summarize(preds, labels, rads, radii)
    grid, curve = accuracy_curve(preds, labels, rads, points=51)
    summary.update(curve={"radius": grid.round(4).tolist(), "certified_accuracy": curve.tolist()},
                   certify_time_s=round(sum(float(r["time"]) for r in rows), 2),
                   samples=int(sum(int(r["samples"]) for r in rows)))
    return summary


def read_rows(out_dir: str | Path) -> list[dict[str, str]]:
    """The complete per-image rows of a (possibly unfinished) run in ``out_dir``, validated."""
    return read_tsv(Path(out_dir) / TSV)


def compare_runs(run_a: str | Path, run_b: str | Path, confidence: float = 0.95,
                 common: bool = False) -> dict[str, PairedDifference]:
    """Paired differences a - b of two certification runs over the same images: ``acr`` (per-image
    certified radius, 0 where wrong) and ``smoothed_accuracy`` (per-image correctness), each with
    a ``confidence`` t interval (``paired_difference``). Raises ``RobustqError`` when the runs
    did not certify the same images with the same labels; with ``common``, pairs the images both
    runs certified so far (e.g. an unfinished run; ``.images`` says how many)."""
    a = {r["idx"]: r for r in read_rows(run_a)}
    b = {r["idx"]: r for r in read_rows(run_b)}
    if common:
        a = {i: r for i, r in a.items() if i in b}
        b = {i: r for i, r in b.items() if i in a}
    if a.keys() != b.keys() or any(a[i]["label"] != b[i]["label"] for i in a):
        raise RobustqError(f"{run_a} and {run_b} certified different images; a paired "
                           f"comparison needs the same ones ({len(a)} and {len(b)} rows)")
    if len(a) < 2:
        raise RobustqError(f"{run_a}: a paired comparison needs at least 2 certified images")
    order = sorted(a, key=int)

    def per_image(rows: dict[str, dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        preds = [int(rows[i]["predict"]) for i in order]
        labels = [int(rows[i]["label"]) for i in order]
        radii = certified_radii(preds, labels, [float(rows[i]["radius"]) for i in order])
        return radii, (np.asarray(preds) == np.asarray(labels)).astype(float)

    (ra, ca), (rb, cb) = per_image(a), per_image(b)
    return {"acr": paired_difference(ra, rb, confidence),
            "smoothed_accuracy": paired_difference(ca, cb, confidence)}


def pairwise_differences(runs: Sequence[tuple[str, str | Path]], confidence: float = 0.95
                         ) -> list[dict[str, Any]]:
    """``compare_runs`` for every later run against every earlier one (name, directory), as
    JSON-ready rows: ``{"a", "b", "images", "acr": {...}, "smoothed_accuracy": {...}}``, each
    difference a - b with ``mean``, ``low``, ``high`` and ``significant``."""
    out = []
    for i, (name_b, dir_b) in enumerate(runs):
        for name_a, dir_a in runs[i + 1:]:
            d = compare_runs(dir_a, dir_b, confidence)
            out.append({"a": name_a, "b": name_b, "images": d["acr"].images,
                        "confidence": confidence,
                        **{k: {"mean": v.mean, "low": v.low, "high": v.high,
                               "significant": v.significant} for k, v in d.items()}})
    return out


def _finish(out: Path, cfg: CertifyConfig, started: float, earlier: list[dict[str, str]],
            rows: list[dict[str, str]]) -> dict[str, Any]:
    """Write ``summary.json`` from the run's ``rows`` (all of them, as written). Its wall time
    is this call's plus the recorded per-image time of the ``earlier`` rows (certified by a
    killed call, or all of them when a finished run is called again), so a resumed run reports
    the time of the whole run."""
    summary = summarize_rows(rows, cfg.radii)
    summary["wall_time_s"] = round(time.perf_counter() - started
                                   + sum(float(r["time"]) for r in earlier), 2)
    atomic_write_json(out / SUMMARY, summary)
    return summary


Progress = Callable[[int, int, dict[str, Any]], None]


def certify_dataset(model: nn.Module, ds: ImageDataset, cfg: CertifyConfig, out_dir: str | Path,
                    cache: bool = False, model_info: dict | None = None,
                    progress: Progress | None = None, device: torch.device | None = None
                    ) -> dict[str, Any]:
    """CERTIFY the images ``cfg.indices(len(ds))`` of ``ds``; stream results to ``out_dir``.

    With ``cache``, also write f's estimation predictions so the run can serve as an IRS cache.
    ``progress(done, total, running_summary)`` is called after every image. ``device``: where
    the noise is drawn and the model runs (``Smooth``); default the CPU.
    """
    out = Path(out_dir)
    indices = cfg.indices(len(ds))
    run_meta = {"kind": "certify", "config": cfg.to_json(), "cache": cache,
                "data": {"source": resolved_source(ds.source), "split": ds.split,
                         "indices": indices},
                "model": model_info or {}, "cache_source": None,
                "provenance": provenance(cfg.seed, cfg.to_json())}
    rows = prepare(out, run_meta, COLUMNS, cfg.n * 2, cache, ds.num_classes)
    smooth = Smooth(model, ds.num_classes, cfg.sigma, cfg.batch_size, cfg.chunk, device)
    model.eval()
    started, done, earlier = time.perf_counter(), len(rows), list(rows)
    group = max(1, cfg.batch_size // (cfg.n0 + cfg.n))
    with open(out / TSV, "a") as tsv, open(out / CACHE, "ab") if cache else io.BytesIO() as cf:
        for g in range(done, len(indices), group):
            idx = indices[g:g + group]
            xs, ys = ds.tensors(np.asarray(idx))
            seeds = [cfg.image_seed(i) for i in idx]
            t0 = time.perf_counter()
            certs, preds = smooth.certify_many(xs, cfg.n0, cfg.n, cfg.alpha, seeds, record=cache)
            dt = (time.perf_counter() - t0) / len(idx)
            if cache:
                cf.write(preds.astype(np.int16).tobytes())
                cf.flush()
            new = [dict(zip(COLUMNS, map(str, _row(i, y, c, dt, cfg.n0 + cfg.n, seeds[k])),
                            strict=True))
                   for k, (i, y, c) in enumerate(zip(idx, ys.tolist(), certs, strict=True))]
            _append_rows(tsv, COLUMNS, rows, new, len(indices), progress)
    return _finish(out, cfg, started, earlier, rows)


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


def run_mismatches(meta: dict[str, Any], ds: ImageDataset, cfg: CertifyConfig,
                   keys: tuple[str, ...]) -> list[str]:
    """How the run recorded in ``meta`` differs from certifying ``cfg.indices`` of ``ds`` with
    ``cfg``, in the config ``keys`` and the data (source, split, image list); empty if not."""
    old = meta.get("config", {})
    problems = [f"{k} {old.get(k)} (asked {getattr(cfg, k)})" for k in keys
                if old.get(k) != getattr(cfg, k)]
    data = meta.get("data", {})
    if (resolved_source(data.get("source")), data.get("split")) != \
            (resolved_source(ds.source), ds.split):
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
    summary = summarize_rows(rows, cfg.radii)
    summary["wall_time_s"] = read_record(run_dir / SUMMARY, ("wall_time_s",))["wall_time_s"]
    return summary


def samples_to_go(cfg: CertifyConfig, ds: ImageDataset, out_dir: str | Path,
                  incremental: bool = False) -> int:
    """Forward samples a (possibly resumed) run in ``out_dir`` still has to draw: the images
    without a complete row, times n0 + n (or n_p for IRS)."""
    left = max(0, len(cfg.indices(len(ds))) - len(read_rows(out_dir)))
    return left * ((cfg.n_p or cfg.n) if incremental else cfg.n0 + cfg.n)


def irs_certify_dataset(model_p: nn.Module, ds: ImageDataset, cfg: CertifyConfig,
                        cache_dir: str | Path, out_dir: str | Path,
                        model_info: dict | None = None, progress: Progress | None = None,
                        device: torch.device | None = None) -> dict[str, Any]:
    """IRS-certify an approximate model ``model_p`` against the cache of f's certification.

    The transferred bounds hold at the cache's alpha with the cache's noise (sigma, chunk,
    seed): a cache made with other values is refused, and ``run.json`` records the cache's
    n0 and n (f's samples), so every certificate holds with probability 1 - (alpha + alpha_zeta).
    """
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
    rows = prepare(out, run_meta, IRS_COLUMNS, 1, False, ds.num_classes)
    smooth = Smooth(model_p, ds.num_classes, cfg.sigma, cfg.batch_size, cfg.chunk, device)
    model_p.eval()
    started, earlier = time.perf_counter(), list(rows)
    with open(out / TSV, "a") as tsv:
        for k in range(len(rows), len(cached_rows)):
            new = [_irs_row(smooth, ds, cfg, cached_rows[k], cached_preds[k])]
            _append_rows(tsv, IRS_COLUMNS, rows, new, len(cached_rows), progress)
    return _finish(out, cfg, started, earlier, rows)


def _irs_row(smooth: Smooth, ds: ImageDataset, cfg: CertifyConfig, r: dict[str, str],
             predictions: np.ndarray) -> dict[str, str]:
    """One image's IRS row from its cached row ``r`` and f's cached ``predictions``."""
    i, y = int(r["idx"]), int(r["label"])
    if int(r["predict"]) < 0:       # f abstained: nothing to transfer
        cert, dt, extra, samples = Certificate(-1, 0.0, float(r["p_lower"]), 0, 0), 0.0, ("", ""), 0
    else:
        xs, _ = ds.tensors(np.asarray([i]))
        entry = CacheEntry(int(r["predict"]), float(r["p_lower"]), int(r["seed"]), predictions,
                           chunk=cfg.chunk, alpha=cfg.alpha)
        t0 = time.perf_counter()
        cert = irs_certify_many(smooth, xs, [entry], cfg.n_p, None, cfg.alpha_zeta, cfg.gamma)[0]
        dt = time.perf_counter() - t0
        extra = ("" if cert.zeta is None else f"{cert.zeta:.6f}",
                 "" if cert.disagreements is None else cert.disagreements)
        samples = cfg.n_p
    values = _row(i, y, cert, dt, samples, int(r["seed"]), extra)
    return dict(zip(IRS_COLUMNS, map(str, values), strict=True))
