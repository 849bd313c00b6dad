"""``compare``: FP32 and a list of policies / quantized checkpoints, each fine-tuned (policies)
with one recipe (``final_recipe``: the search's episode fine-tune, or a named QAT recipe such
as ``deploy``) and certified identically on the test split, with paired differences.

``run_compare(CompareConfig(...), out)`` is the workflow; ``robustq compare`` parses its options
into the config and prints. Resumable: every finished row is kept (``compare.json`` is
rewritten after each model), and a policy's fine-tuned model is saved before it is certified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustq.certify.run import pairwise_differences
from robustq.quant.checkpoint import load_model, save_quantized
from robustq.quant.kernels import check_kernels
from robustq.quant.policy import Policy
from robustq.quant.quantizers import check_method
from robustq.search.final import check_final_recipe, final_model, saved_model
from robustq.search.search import Search, SearchConfig, evaluate_on_test, search_origin
from robustq.utils.config import JsonConfig
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_csv, atomic_write_json
from robustq.utils.parallel import SERIAL, Executor
from robustq.utils.progress import Progress, silent
from robustq.utils.provenance import provenance
from robustq.utils.validate import check_int


@dataclass(frozen=True)
class CompareConfig(JsonConfig):
    """A comparison. ``candidates``: policy files (JSON/YAML) or quantized checkpoints; sizes
    are images; ``test_n`` noise samples per test image; ``fp_run``: a finished certification
    of the checkpoint with the same images and settings, reused as the FP32 row;
    ``final_recipe``: how policies are fine-tuned (``search.final``: None, the episode recipe
    on ``finetune_images``; ``deploy``, issue 17's QAT recipe) with ``method`` (None: the
    recipe's own, ``quant.workflow.recipe_method``); ``quant_kernels``: the fake
    quantizers' kernels in those fine-tunes (``quant.kernels``)."""

    checkpoint: str
    candidates: tuple[str, ...] = ()
    data: str = "embedded"
    method: str | None = None
    finetune_images: int = 2000
    holdout_images: int = 500
    test_images: int = 500
    test_n: int = 10_000
    seed: int = 0
    fp_run: str | None = None
    final_recipe: str | None = None
    quant_kernels: str = "eager"

    def __post_init__(self) -> None:
        check_final_recipe(self.final_recipe)
        check_method(self.method)
        check_kernels(self.quant_kernels, "--quant-kernels")
        check_int(self.test_images, "--test-images", 2)
        check_int(self.test_n, "--test-n", 1)

    def search_config(self) -> SearchConfig:
        """The setup every row shares (model, data, sigma, fine-tuning split and recipe)."""
        return SearchConfig(checkpoint=self.checkpoint, data=self.data, strategy="uniform",
                            method=self.method, finetune_images=self.finetune_images,
                            holdout_images=self.holdout_images, cert_images=1, seed=self.seed,
                            final_recipe=self.final_recipe, quant_kernels=self.quant_kernels)


def run_compare(cfg: CompareConfig, out: str | Path, progress: Progress | None = None,
                device: torch.device | None = None,
                on_row: Callable[[dict[str, Any]], None] | None = None,
                executor: Executor | None = None) -> dict[str, Any]:
    """Certify FP32 and every candidate into ``out`` (``runs/<name>/``); returns what
    ``compare.json`` holds. Every candidate is read and validated before any work starts;
    ``on_row`` is called with each finished row. ``executor`` fine-tunes the policies side by
    side, then shares each row's certification among its workers (``utils.parallel``)."""
    out = Path(out)
    fp, _ = load_model(cfg.checkpoint)
    cands = load_candidates(fp, [Path(c) for c in cfg.candidates])
    search = Search(cfg.search_config(), out / "setup", device)
    fp_run = Path(cfg.fp_run) if cfg.fp_run else None
    finetune_all(search, cands, out, progress, executor or SERIAL)
    rows: list[dict] = []
    for cand in cands:
        rows.append(compare_row(search, cand, out, cfg.test_images, cfg.test_n, fp_run,
                                progress, executor))
        if on_row:
            on_row(rows[-1])
        # after every model: a killed compare keeps the finished rows (and resumes the rest)
        record = write_compare(out, rows, [c.name for c in cands], cfg.seed, cfg)
    return record


COMPARE_FILE = "compare.json"
COLUMNS = ["name", "bitops_percent", "size_kib", "clean_accuracy", "smoothed_accuracy", "acr",
           "ca_0.0", "ca_0.25", "ca_0.5", "ca_0.75", "ca_1.0", "images", "n", "search_wall_s",
           "search_episodes"]


@dataclass(frozen=True)
class Candidate:
    """One row of a compare: a name, the policy file or checkpoint it came from (None: FP32),
    its policy (None: FP), a loaded quantized model (checkpoints only), its search origin."""

    name: str
    source: Path | None
    policy: Policy | None
    model: nn.Module | None
    origin: dict | None


def load_candidates(fp: nn.Module, paths: list[Path]) -> list[Candidate]:
    """FP32 and every candidate, each read and validated (policies against ``fp``'s layers)
    before any work starts; names are unique."""
    out = [Candidate("FP32", None, None, None, None)]
    for path in paths:
        origin = search_origin(path)
        name = origin["name"] if origin else path.stem
        if path.suffix in (".json", ".yaml", ".yml"):
            out.append(Candidate(name, path, Policy.load(path, fp), None, origin))
        elif path.suffix == ".safetensors":
            model, meta = load_model(path)
            policy = Policy.from_json(meta["quant"]["policy"]) if "quant" in meta else None
            out.append(Candidate(name, path, policy, model, origin))
        else:
            raise RobustqError(f"{path}: expected a policy (.json/.yaml) or a checkpoint "
                               "(.safetensors)")
    names = [c.name for c in out]
    if len(set(names)) < len(names):
        raise RobustqError("two candidates have the same name (" + ", ".join(sorted(
            {n for n in names if names.count(n) > 1})) + "): a candidate is named after its "
            "file, or its search's strategy for a search's best_policy.json; rename one")
    return out


def finetuned_once(search: Search, policy: Policy, run_dir: Path,
                   progress: Progress | None = None) -> nn.Module:
    """The policy quantized and fine-tuned with the search's final recipe (a named QAT recipe
    runs in ``run_dir/qat``), saved in ``run_dir`` the first time: a compare resumed after a
    kill certifies the very model it started with."""
    saved = run_dir / "model.safetensors"
    done = saved_model(saved, policy)
    if done is not None:
        return done
    recipe = search.cfg.final_recipe
    with silent(progress).phase(f"{run_dir.name}: fine-tuning "
                                f"({recipe or f'episode recipe, {len(search.ft_ds)} images'})"
                                ) as ph:
        model = final_model(search, policy, run_dir / "qat", recipe, ph)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_quantized(saved, model, search.card, {"sigma": search.sigma})
    return model



def finetune_all(search: Search, cands: list[Candidate], out: Path, progress: Progress | None,
                 executor: Executor) -> None:
    """Fine-tune every policy candidate not saved yet (``finetuned_once``), one per worker:
    each writes only its own ``runs/<name>/model.safetensors``."""
    todo = [c for c in cands if c.policy is not None and c.model is None
            and not (out / "runs" / c.name / "model.safetensors").is_file()]
    if executor.workers == 1 or len(todo) < 2:       # in order, each phase named (below)
        return
    with silent(progress).phase(f"fine-tuning {len(todo)} policies on {len(search.ft_ds)} "
                                "images", total=len(todo)) as ph, executor.session(search) as run:
        for _ in run.imap(_finetune_candidate, [(c.policy, out / "runs" / c.name) for c in todo]):
            ph.advance()


def _finetune_candidate(search: Search, unit: tuple[Policy, Path]) -> None:
    """One unit (on any executor): a candidate's fine-tuned model, saved in its run directory."""
    finetuned_once(search, unit[0], unit[1])


def compare_row(search: Search, cand: Candidate, out: Path, test_images: int, test_n: int,
                fp_run: Path | None, progress: Progress | None = None,
                executor: Executor | None = None) -> dict:
    """Certify one candidate on the test split (fine-tuned first where it is a policy)."""
    if cand.source is None:
        model = search.fp
    elif cand.model is not None:
        model = cand.model
    else:
        model = finetuned_once(search, cand.policy, out / "runs" / cand.name, progress)
    model = model.to(search.device)
    with silent(progress).phase(f"{cand.name}: certifying test images (n={test_n})") as ph:
        r = evaluate_on_test(model, cand.policy, search.cfg.data, search.sigma, test_images,
                             test_n, search.cfg, out / "runs" / cand.name, search.shape,
                             reuse=fp_run if cand.source is None else None, executor=executor,
                             progress=lambda done, total, s: ph.update(done, total=total,
                                                                       acr=s["acr"]))
    return {"name": cand.name, **{k: v for k, v in r.items() if k != "certified_accuracy"},
            **{f"ca_{k}": v for k, v in r["certified_accuracy"].items()},
            **(cand.origin or {}), **({"policy": cand.policy.to_json()} if cand.policy else {})}


def write_compare(out: Path, rows: list[dict], names: list[str], seed: int,
                  cfg: CompareConfig) -> dict[str, Any]:
    """compare.json (rows, every pairwise paired difference, provenance) and compare.csv,
    both written atomically."""
    paired = pairwise_differences([(r["name"], r["certification_dir"]) for r in rows])
    record = {"rows": rows, "candidates": names, "complete": len(rows) == len(names),
              "paired": paired, "provenance": provenance(seed, cfg.to_json())}
    atomic_write_json(out / COMPARE_FILE, record)
    atomic_write_csv(out / "compare.csv", COLUMNS, rows)
    return record
