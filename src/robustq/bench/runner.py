"""The RobustMQ grid: FP model + methods x bit-widths, each through the three noise families.

Every unit of work (one attack, one corruption at one severity, one systematic variant, on one
model) stores its per-image correctness under ``out/cells/<model>/<family>/<unit>.npy``,
written atomically; a killed benchmark resumes at the first missing unit (an AutoAttack unit
at its first missing chunk of images, kept under ``<unit>.parts/`` until the cell is written).
Corrupted image sets are generated once per (corruption, severity) with a fixed seed per image
and cached under ``out/corrupted``. Tables are computed from the stored units (``robustq.bench.tables``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustq.bench.attacks import Attack, attack_correct, autoattack_stages, get_attack, predict_batches
from robustq.bench.corruptions import ALL as ALL_CORRUPTIONS
from robustq.bench.corruptions import BENCHMARK, SEVERITIES, corrupt
from robustq.bench.systematic import VARIANTS, encode_images, systematic_images
from robustq.data import load_dataset
from robustq.data.dataset import ImageDataset, spread_indices
from robustq.data.imagefolder import read_encoded
from robustq.models import ModelCard
from robustq.quant import uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.finetune import finetune_config, quantize_and_finetune
from robustq.utils.config import from_dict
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json, atomic_write_npy, check_writable
from robustq.utils.parallel import SERIAL, Executor
from robustq.utils.progress import Progress, silent
from robustq.utils.provenance import provenance
from robustq.utils.records import claim
from robustq.utils.validate import check_int

FAMILIES = ("adversarial", "natural", "systematic")
METHODS = ("dorefa", "pact", "lsq", "lsq_mse", "minmax")
CONFIG_FILE = "bench.json"
UNITS_FILE = "units.jsonl"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark. eps: l_inf in [0, 1] pixel units, l_2 norms in the same units
    (spec 04 levels for 32-pixel images). FGSM/PGD run on ``attack_images`` of the ``images``
    (all by default) and AutoAttack on ``autoattack_images`` of those: nested, evenly spaced
    subsets (``attack_positions``), so per-sample worst cases over every attack are defined."""

    checkpoint: str
    data: str
    methods: tuple[str, ...] = METHODS
    bits: tuple[int, ...] = (2, 4, 6, 8)
    families: tuple[str, ...] = FAMILIES
    images: int = 1000
    linf_eps: tuple[float, ...] = (0.5 / 255, 2 / 255, 8 / 255)
    l2_eps: tuple[float, ...] = (0.125, 0.25, 0.5)
    autoattack_eps: tuple[float, ...] = (2 / 255,)       # l_inf
    autoattack_images: int = 100
    autoattack_chunk: int = 20       # images per AutoAttack call and checkpoint
    attack_images: int | None = None
    corruptions: tuple[str, ...] = tuple(BENCHMARK)
    severities: tuple[int, ...] = SEVERITIES
    resize_size: int = 24
    finetune_epochs: int = 1
    finetune_images: int = 10_000
    finetune_lr: float = 0.01
    models_dir: str | None = None
    batch_size: int = 200
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise RobustqError(f"unknown methods {bad}; known: {', '.join(METHODS)}")
        if any(b not in range(2, 9) for b in self.bits):
            raise RobustqError(f"bit-widths must be in 2..8, got {list(self.bits)}")
        if any(f not in FAMILIES for f in self.families) or not self.families:
            raise RobustqError(f"families must be among {FAMILIES}, got {list(self.families)}")
        n_att = self.images if self.attack_images is None else self.attack_images
        if self.images < 1 or not 0 <= self.autoattack_images <= n_att <= self.images:
            raise RobustqError("need images >= 1 and 0 <= autoattack images <= attack images "
                               "<= images")
        bad = [c for c in self.corruptions if c not in ALL_CORRUPTIONS]
        if bad:
            raise RobustqError(f"unknown corruptions {bad}; known: {', '.join(ALL_CORRUPTIONS)}")
        if any(s not in SEVERITIES for s in self.severities):
            raise RobustqError(f"severities must be in 1..5, got {list(self.severities)}")
        if not all(math.isfinite(e) and e > 0
                   for e in (*self.linf_eps, *self.l2_eps, *self.autoattack_eps)):
            raise RobustqError("every eps must be finite and > 0")
        if not self.methods or not self.bits:
            raise RobustqError("name at least one method and one bit-width")
        check_int(self.finetune_epochs, "finetune_epochs", 1)
        check_int(self.finetune_images, "finetune_images", 1)
        check_int(self.batch_size, "batch_size", 1)
        check_int(self.autoattack_chunk, "autoattack_chunk", 1)
        check_int(self.resize_size, "resize_size", 1)
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise RobustqError(f"finetune_lr must be finite and > 0, got {self.finetune_lr}")

    def autoattack_labels(self) -> list[str]:
        """The AutoAttack units' labels (``autoattack-linf-2/255``); none without its images."""
        return [f"autoattack-linf-{e * 255:g}/255" for e in self.autoattack_eps
                if self.autoattack_images]

    def models(self) -> list[tuple[str, str, int]]:
        """(key, method, bits) of every model in the grid, the FP model first."""
        return [("fp", "fp", 32)] + [(f"{m}_w{b}a{b}", m, b) for m in self.methods
                                     for b in self.bits]

    def model_keys(self) -> list[str]:
        return [key for key, _, _ in self.models()]

    def attack_positions(self) -> np.ndarray:
        """Positions (into the benchmark's images) of the FGSM/PGD images."""
        n = self.images if self.attack_images is None else self.attack_images
        return np.asarray(spread_indices(self.images, n), dtype=np.int64)

    def autoattack_positions(self) -> np.ndarray:
        """Positions (into the benchmark's images) of the AutoAttack images, a subset of the
        FGSM/PGD ones."""
        pos = self.attack_positions()
        return pos[spread_indices(len(pos), self.autoattack_images)]

    def autoattack_within_attacks(self) -> np.ndarray:
        """Where the AutoAttack images sit among the FGSM/PGD images (indices into a FGSM/PGD
        cell), so the two can be compared image by image."""
        return np.searchsorted(self.attack_positions(), self.autoattack_positions())

    def attacks(self) -> list[Attack]:
        out = [get_attack(name, "linf", e, seed=self.seed) for name in ("fgsm", "pgd")
               for e in self.linf_eps]
        out += [get_attack(name, "l2", e, seed=self.seed) for name in ("fgsm", "pgd")
                for e in self.l2_eps]
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchConfig:
        return from_dict(cls, legacy_config(d), "bench")


def legacy_config(d: dict[str, Any]) -> dict[str, Any]:
    """A recorded config with the settings robustq added since filled in as the run that
    recorded it behaved: before ``autoattack_chunk``, AutoAttack ran in calls of ``batch_size``
    images, which is that chunk size (so an older run resumes with the same results)."""
    if "autoattack_chunk" in d:
        return d
    return {**d, "autoattack_chunk": d.get("batch_size", BenchConfig.batch_size)}


def corruption_profile(image_shape: tuple[int, ...]) -> str:
    """Which corruption constants fit images of ``image_shape`` (C, H, W): CIFAR-10-C's ("32")
    below 224 pixels, ImageNet-C's ("224") from there."""
    return "32" if min(image_shape[1:]) < 224 else "224"


def corrupted_path(out: Path, profile: str, name: str, severity: int) -> Path:
    """Where a benchmark run caches its corrupted images."""
    return out / "corrupted" / profile / f"{name}-s{severity}.npy"


def deployed_files(data: str, indices: np.ndarray, images: np.ndarray) -> list[bytes]:
    """The encoded files the systematic family decodes: the test split's own JPEG files, or,
    for data stored as raw pixels or PNG, ``images`` encoded as JPEGs (quality 95)."""
    try:
        encoded = read_encoded(data, "test", indices)
    except (RobustqError, OSError, ValueError):
        encoded = []
    if not encoded or not all(b[:2] == b"\xff\xd8" for b in encoded):
        encoded = encode_images(images)
    return encoded


def unit_name(label: str) -> str:
    """A file-safe unit name (``pgd-linf-2/255`` -> ``pgd-linf-2of255``)."""
    return label.replace("/", "of")


@dataclass
class Unit:
    """One unit of work: ``run()`` returns per-image correctness (bool array)."""

    model: str
    family: str
    name: str
    run: Callable[[], np.ndarray]
    images: int


class BenchRun:
    """A (resumable) benchmark in ``out``; see the module docstring for the layout."""

    def __init__(self, cfg: BenchConfig, out: str | Path,
                 device: torch.device | None = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.device = device or torch.device("cpu")   # models and attacks; data stays on CPU
        fp, _ = load_model(cfg.checkpoint)
        self.test = load_dataset(cfg.data, "test")
        if self.test.num_classes != fp.num_classes:
            raise RobustqError(f"{self.test.source}: {self.test.num_classes} classes but "
                               f"{cfg.checkpoint} has {fp.num_classes} outputs")
        self.indices = np.asarray(spread_indices(len(self.test), cfg.images))
        self.ds = self.test.subset(self.indices)
        self.x, self.y = self.ds.tensors()
        if cfg.autoattack_images and cfg.autoattack_eps and self.test.num_classes < 4:
            raise RobustqError("AutoAttack needs at least 4 classes; use --autoattack-images 0")
        self.profile = corruption_profile(self.ds.image_shape)
        # everything is validated: only now is the output directory touched
        check_writable(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        claim(self.out / CONFIG_FILE, {"config": cfg.to_json(),
                                       "provenance": provenance(cfg.seed, cfg.to_json())},
              what="benchmark", identity={"config": legacy_config})

    # ----- models
    def model_dir(self, key: str) -> Path:
        base = Path(self.cfg.models_dir) if self.cfg.models_dir else self.out / "models"
        return base / key

    def load(self, key: str) -> nn.Module:
        if key == "fp":
            return load_model(self.cfg.checkpoint)[0].eval().to(self.device)
        path = self.model_dir(key) / "model.safetensors"
        if not path.is_file():
            self._finetune(key)
        return load_model(path)[0].eval().to(self.device)

    def _finetune(self, key: str) -> None:
        _, method, bits = next(m for m in self.cfg.models() if m[0] == key)
        fp, meta = load_model(self.cfg.checkpoint)
        card = ModelCard.from_json(meta["card"])
        train_ds = load_dataset(self.cfg.data, "train").spread(self.cfg.finetune_images)
        tcfg = finetune_config(card, self.cfg.finetune_epochs, self.cfg.finetune_lr,
                               meta.get("sigma", 0.0), self.cfg.seed)
        quantize_and_finetune(fp, card, uniform_policy(fp, bits, bits), method, train_ds,
                              self.ds.subset([]), tcfg, self.model_dir(key), resume=True,
                              finetune=method != "minmax",
                              base_meta={"checkpoint": self.cfg.checkpoint},
                              device=self.device)

    # ----- units
    def unit_path(self, u: Unit) -> Path:
        return self.out / "cells" / u.model / u.family / f"{unit_name(u.name)}.npy"

    def units(self, key: str, model: Callable[[], nn.Module]) -> Iterator[Unit]:
        cfg = self.cfg
        yield Unit(key, "clean", "clean", lambda: self._predict_correct(model(), self.x),
                   len(self.x))
        if "adversarial" in cfg.families:
            pos = cfg.attack_positions()
            for a in cfg.attacks():
                yield Unit(key, "adversarial", a.label,
                           lambda a=a: attack_correct(model(), a, self.x[pos], self.y[pos],
                                                      cfg.batch_size).numpy(), len(pos))
            n = cfg.autoattack_images
            for e in cfg.autoattack_eps if n else ():
                a = get_attack("autoattack", "linf", e, seed=cfg.seed)
                yield Unit(key, "adversarial", a.label,
                           lambda a=a: self._autoattack(key, model, a), n)
        if "natural" in cfg.families:
            for c in cfg.corruptions:
                for s in cfg.severities:
                    yield Unit(key, "natural", f"{c}-s{s}",
                               lambda c=c, s=s: self._predict_correct(
                                   model(), self._corrupted(c, s)), len(self.x))
        if "systematic" in cfg.families:
            for v in VARIANTS:
                yield Unit(key, "systematic", v,
                           lambda v=v: self._predict_correct(model(), self._systematic(v)),
                           len(self.x))

    def _predict_correct(self, model: nn.Module, x: torch.Tensor) -> np.ndarray:
        return (predict_batches(model, x, self.cfg.batch_size) == self.y).numpy()

    def _autoattack(self, key: str, model: Callable[[], nn.Module],
                    attack: Attack) -> tuple[np.ndarray, dict]:
        """Per-image correctness and the cascade's details (written beside the cell), summed
        over chunks of ``cfg.autoattack_chunk`` images, one attack call each. Each chunk is
        stored under the unit's ``.parts`` directory as it finishes, so a killed unit resumes
        at its first missing chunk (an AutoAttack unit is up to an hour of CPU) with the
        results of an unkilled run. ``details["seconds"]`` is the compute time of every
        chunk, resumed ones included (``_run_unit`` moves it to the unit's log line)."""
        pos = self.cfg.autoattack_positions()
        parts = self.parts_dir(key, attack.label)
        correct, details = [], {}
        size = self.cfg.autoattack_chunk
        for k, start in enumerate(range(0, len(pos), size)):
            done, info = parts / f"{k}.npy", parts / f"{k}.json"
            if not done.is_file():
                chunk, t0 = pos[start:start + size], time.perf_counter()
                ok = attack_correct(model(), attack, self.x[chunk], self.y[chunk], size)
                atomic_write_json(info, attack.details | {
                    "seconds": round(time.perf_counter() - t0, 3)})
                atomic_write_npy(done, ok.numpy())    # written last: it marks the chunk done
            correct.append(np.load(done, allow_pickle=False))
            for name, v in json.loads(info.read_text()).items():
                details[name] = details.get(name, 0) + v
        return np.concatenate(correct), details

    def parts_dir(self, key: str, label: str) -> Path:
        """Where the finished chunks of model ``key``'s AutoAttack unit ``label`` are kept
        until its cell is written."""
        return self.out / "cells" / key / "adversarial" / f"{unit_name(label)}.parts"

    def _corrupted(self, name: str, severity: int) -> torch.Tensor:
        path = corrupted_path(self.out, self.profile, name, severity)
        if path.is_file():
            imgs = np.load(path, allow_pickle=False)
        else:
            imgs = corrupt(self.ds.images, name, severity, self.cfg.seed, self.profile, self.indices)
            atomic_write_npy(path, imgs)
        return ImageDataset(imgs, self.ds.labels, self.ds.classes, "", "").tensors()[0]

    def _systematic(self, variant: str) -> torch.Tensor:
        if not hasattr(self, "_encoded"):
            self._encoded = deployed_files(self.cfg.data, self.indices, self.ds.images)
        size = self.cfg.resize_size if self.profile == "32" else None
        imgs = systematic_images(self._encoded, variant, self.ds.images.shape[-1], size)
        return ImageDataset(imgs, self.ds.labels, self.ds.classes, "", "").tensors()[0]

    # ----- the loop
    def plan(self) -> list[Unit]:
        """Every unit of the grid, cheap families first for every model and AutoAttack last
        (a partial run is still useful); their models are loaded on first use, one at a time."""
        plan = [u for key in self.cfg.model_keys() for u in self.units(key, self._model_for(key))]
        plan.sort(key=lambda u: _ORDER.index("autoattack" if u.name.startswith("autoattack")
                                             else u.family))
        return plan

    def _model_for(self, key: str) -> Callable[[], nn.Module]:
        """A loader of model ``key`` that keeps the last model loaded (units of one model run
        one after the other)."""
        cache: dict[str, nn.Module] = self.__dict__.setdefault("_models", {})

        def get() -> nn.Module:
            if key not in cache:
                cache.clear()
                cache[key] = self.load(key)
            return cache[key]
        return get

    def unit(self, key: str, name: str) -> Unit:
        """The unit ``name`` of model ``key``."""
        return next(u for u in self.units(key, self._model_for(key)) if u.name == name)

    def run(self, progress: Progress | None = None, executor: Executor | None = None) -> None:
        """Run every missing unit: first the missing quantized models ("bench models", each
        named while it is made), then one "bench units" phase whose label names the unit *in
        progress* (model, family, unit, images) with an ``eta_s`` field. ``executor`` shares
        models and units among workers (``utils.parallel``); this process writes every cell,
        so the files are those of a one-process run."""
        executor = executor or SERIAL
        plan = self.plan()
        todo = [u for u in plan if not self.unit_path(u).is_file()]
        self._make_models(dict.fromkeys(u.model for u in todo), progress, executor)
        spent, work_done = 0.0, 0
        work_left = sum(u.images * _cost(u) for u in todo)
        with silent(progress).phase("bench units", len(plan), len(plan) - len(todo)) as ph, \
                executor.session(self) as run:
            results = run.imap(_run_unit, [(u.model, u.name) for u in todo])
            for u in todo:
                label = f"{u.model} {u.family} {u.name} ({u.images} images)"
                ph.update(label=label)
                with autoattack_stages(lambda stage, label=label: ph.update(
                        label=f"{label}: {stage}")):
                    correct, details, dt = next(results)
                if details is not None:
                    atomic_write_json(self.unit_path(u).parent / f"{unit_name(u.name)}.json",
                                      details)
                atomic_write_npy(self.unit_path(u), correct)
                shutil.rmtree(self.parts_dir(u.model, u.name), ignore_errors=True)
                self._log(u, dt, correct)
                spent, work_done = spent + dt, work_done + u.images * _cost(u)
                work_left -= u.images * _cost(u)
                ph.update(ph.done + 1, label=label,      # the unit, not its last stage
                          eta_s=spent / max(work_done, 1) * work_left)

    def _make_models(self, keys: Iterable[str], progress: Progress | None,
                     executor: Executor) -> None:
        """Quantize (and fine-tune) the models among ``keys`` not made yet, each in its own
        directory (a worker writes only there)."""
        missing = [k for k in keys if k != "fp"
                   and not (self.model_dir(k) / "model.safetensors").is_file()]
        if not missing:
            return
        with silent(progress).phase("bench models", len(missing)) as ph, \
                executor.session(self) as run:
            made = run.imap(_make_model, missing)
            for key in missing:
                ph.update(label=self._quantizing_label(key))
                next(made)
                ph.update(ph.done + 1, label=self._quantizing_label(key))

    def __getstate__(self) -> dict[str, Any]:
        """To a worker (``utils.parallel``): what units need, not the whole test split."""
        return {k: v for k, v in self.__dict__.items() if k not in ("test", "_models")}

    def _quantizing_label(self, key: str) -> str:
        _, method, bits = next(m for m in self.cfg.models() if m[0] == key)
        if method == "minmax":
            return f"{key}: quantizing (post-training, min-max calibration)"
        return (f"{key}: quantizing and fine-tuning ({method} QAT, {self.cfg.finetune_epochs} "
                f"epoch(s) over {self.cfg.finetune_images} training images)")

    def _log(self, u: Unit, seconds: float, correct: np.ndarray) -> None:
        line = {"model": u.model, "family": u.family, "unit": u.name, "images": int(len(correct)),
                "accuracy": float(correct.mean()) if len(correct) else float("nan"),
                "seconds": round(seconds, 3), "time": time.time()}
        with open(self.out / UNITS_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")


def _make_model(bench: BenchRun, key: str) -> None:
    """One unit (on any executor): a quantized model of the grid, made in its directory."""
    bench.load(key)


def _run_unit(bench: BenchRun, which: tuple[str, str]) -> tuple[np.ndarray, dict | None, float]:
    """One unit (on any executor): per-image correctness, AutoAttack's details (else None)
    and the seconds it took."""
    key, name = which
    unit = bench.unit(key, name)
    t0 = time.perf_counter()
    out = unit.run()
    correct, details = out if isinstance(out, tuple) else (out, None)
    # AutoAttack's compute time over its chunks, resumed ones included; kept out of its details
    seconds = (details or {}).pop("seconds", time.perf_counter() - t0)
    return np.asarray(correct, bool), details, seconds


_ORDER = ("clean", "systematic", "natural", "adversarial", "autoattack")


def _cost(u: Unit) -> float:
    """Relative cost per image, for the time-left estimate (forward passes per image)."""
    if u.family != "adversarial":
        return 1.0
    return 2000.0 if u.name.startswith("autoattack") else 60.0 if u.name.startswith("pgd") else 3.0
