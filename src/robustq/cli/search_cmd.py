"""``robustq search`` (ARQ / HAQ / random / uniform policy search) and ``robustq compare``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from torch import nn

from robustq.certify.run import pairwise_differences
from robustq.cli.common import DeviceOpt, SeedOpt, console, fail, friendly_errors
from robustq.cli.progress import console_progress
from robustq.cli.train_cmd import DataOpt, set_machine
from robustq.quant.checkpoint import load_model, save_quantized
from robustq.quant.policy import Policy
from robustq.search.evaluate import build_quantized
from robustq.search.search import (
    STRATEGIES,
    Search,
    SearchConfig,
    evaluate_on_test,
    search_origin,
)
from robustq.utils.errors import RobustqError
from robustq.utils.io import atomic_write_json, atomic_write_text
from robustq.utils.provenance import provenance
from robustq.utils.validate import check_int


@friendly_errors
def search_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP robustq checkpoint")],
    out: Annotated[Path, typer.Option(help="output directory (resumable)")],
    data: DataOpt = "embedded",
    strategy: Annotated[str, typer.Option(help="reward/strategy: " + ", ".join(STRATEGIES))]
    = "arq",
    budget: Annotated[float, typer.Option(help="BitOPs budget, % of FP32 (4/4 = 1.5625)")]
    = 1.5625,
    episodes: Annotated[int, typer.Option(help="policies evaluated (the first --warmup are random)")] = 40,
    warmup: Annotated[int, typer.Option(help="uniform-random warm-up episodes")] = 20,
    method: Annotated[str, typer.Option(help="minmax | dorefa | pact | lsq")] = "lsq",
    sigma: Annotated[float | None, typer.Option(help="default: the checkpoint's")] = None,
    finetune_images: Annotated[int, typer.Option(help="training images each candidate is "
                                                 "fine-tuned on")] = 2000,
    holdout_images: Annotated[int, typer.Option(help="held-out training images (reward)")] = 500,
    cert_images: Annotated[int, typer.Option(help="held-out images certified (ARQ)")] = 50,
    n: Annotated[int, typer.Option(help="samples per image for the FP cache")] = 2000,
    n_p: Annotated[int, typer.Option("--n-p", help="IRS samples per image per episode")] = 200,
    uniform_bits: Annotated[int, typer.Option(help="bits of the uniform strategy")] = 4,
    test_images: Annotated[int, typer.Option(help="final test images (0: skip)")] = 500,
    test_n: Annotated[int, typer.Option(help="final samples per image")] = 10_000,
    seed: SeedOpt = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Search per-layer bit-widths under a BitOPs budget; evaluate the best on the test split."""
    where = set_machine(threads, device)
    cfg = SearchConfig(checkpoint=str(checkpoint), data=data, strategy=strategy, budget=budget,
                       episodes=episodes, warmup=warmup, method=method, sigma=sigma,
                       finetune_images=finetune_images, holdout_images=holdout_images,
                       cert_images=cert_images, n=n, n_p=n_p, uniform_bits=uniform_bits,
                       seed=seed)
    if strategy in ("arq", "haq") and episodes <= warmup:
        console.print(f"[yellow]warning:[/] all {episodes} episodes are random warm-up "
                      f"(--warmup {warmup}): the DDPG agent never chooses a policy, so this is "
                      "a random search; pass --warmup below --episodes")
    search = Search(cfg, out, where)
    progress = console_progress()
    best = search.run(progress)
    console.print(f"best reward {best['reward']:.4f} at episode {best['episode']} "
                  f"({best['bitops_percent']:.3f}% BitOPs)")
    if test_images > 0:
        final = search.finish(test_images, test_n, progress=progress)
        console.print(f"test: clean {final['clean_accuracy']:.3f}, smoothed "
                      f"{final['smoothed_accuracy']:.3f}, ACR {final['acr']:.3f} -> {out}")


def finetuned_once(search: Search, policy: Policy, method: str, run_dir: Path, seed: int
                   ) -> nn.Module:
    """The policy quantized and fine-tuned with the search's recipe, saved in ``run_dir`` the
    first time: a compare resumed after a kill certifies the very model it started with."""
    saved = run_dir / "model.safetensors"
    if saved.is_file():
        model, meta = load_model(saved)
        if Policy.from_json(meta["quant"]["policy"]) != policy:
            fail(f"{saved}: holds a model of another policy; use a new --out")
        return model
    with console_progress().phase(f"{run_dir.name}: fine-tuning on {len(search.ft_ds)} images"):
        model = build_quantized(search.fp, policy, method, search.ft_ds, search.sigma,
                                search.cfg.finetune_lr, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_quantized(saved, model, search.card, {"sigma": search.sigma})
    return model


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


@friendly_errors
def compare_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP robustq checkpoint (the reference)")],
    out: Annotated[Path, typer.Option(help="output directory (table + per-model runs)")],
    candidates: Annotated[list[Path] | None, typer.Argument(
        help="policy JSON/YAML files (quantized and fine-tuned identically) or quantized "
             "checkpoints")] = None,
    data: DataOpt = "embedded",
    method: Annotated[str, typer.Option(help="minmax | dorefa | pact | lsq")] = "lsq",
    finetune_images: Annotated[int, typer.Option(help="training images each candidate is "
                                                 "fine-tuned on")] = 2000,
    holdout_images: Annotated[int, typer.Option(help="held-out training images (accuracy)")] = 500,
    test_images: Annotated[int, typer.Option(help="test images certified")] = 500,
    test_n: Annotated[int, typer.Option(help="samples per test image")] = 10_000,
    seed: SeedOpt = 0,
    fp_run: Annotated[Path | None, typer.Option(help="a finished `robustq certify` run of the "
                                                "FP checkpoint with the same images and "
                                                "settings: its certificates are the FP32 row")]
    = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Evaluate FP32 and a list of policies/checkpoints identically on the test split."""
    where = set_machine(threads, device)
    check_int(test_images, "--test-images", 2)
    check_int(test_n, "--test-n", 1)
    fp, _ = load_model(checkpoint)
    cands = load_candidates(fp, list(candidates or []))
    cfg = SearchConfig(checkpoint=str(checkpoint), data=data, strategy="uniform", method=method,
                       finetune_images=finetune_images, holdout_images=holdout_images,
                       cert_images=1, seed=seed)
    search = Search(cfg, out / "setup", where)
    rows: list[dict] = []
    for cand in cands:
        rows.append(compare_row(search, cand, out, test_images, test_n, fp_run))
        r = rows[-1]
        console.print(f"{cand.name}: clean {r['clean_accuracy']:.3f} smoothed "
                      f"{r['smoothed_accuracy']:.3f} ACR {r['acr']:.3f} "
                      f"BitOPs {r['bitops_percent']:.3f}%")
        # after every model: a killed compare keeps the finished rows (and resumes the rest)
        write_compare(out, rows, [c.name for c in cands], seed, cfg)
    console.print(f"-> {out / 'compare.csv'}")


def compare_row(search: Search, cand: Candidate, out: Path, test_images: int, test_n: int,
                fp_run: Path | None) -> dict:
    """Certify one candidate on the test split (fine-tuned first where it is a policy)."""
    if cand.source is None:
        model = search.fp
    elif cand.model is not None:
        model = cand.model
    else:
        model = finetuned_once(search, cand.policy, search.cfg.method, out / "runs" / cand.name,
                               search.cfg.seed)
    model = model.to(search.device)
    with console_progress().phase(f"{cand.name}: certifying test images (n={test_n})") as ph:
        r = evaluate_on_test(model, cand.policy, search.cfg.data, search.sigma, test_images,
                             test_n, search.cfg, out / "runs" / cand.name, search.shape,
                             reuse=fp_run if cand.source is None else None,
                             progress=lambda done, total, s: ph.update(done, total=total,
                                                                       acr=s["acr"]))
    return {"name": cand.name, **{k: v for k, v in r.items() if k != "certified_accuracy"},
            **{f"ca_{k}": v for k, v in r["certified_accuracy"].items()},
            **(cand.origin or {}), **({"policy": cand.policy.to_json()} if cand.policy else {})}


def write_compare(out: Path, rows: list[dict], names: list[str], seed: int,
                  cfg: SearchConfig) -> None:
    paired = pairwise_differences([(r["name"], r["certification_dir"]) for r in rows])
    atomic_write_json(out / "compare.json", {
        "rows": rows, "candidates": names, "complete": len(rows) == len(names),
        "paired": paired, "provenance": provenance(seed, cfg.to_json())})
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "compare.csv", buf.getvalue())
