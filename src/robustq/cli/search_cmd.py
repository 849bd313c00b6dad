"""``robustq search`` (ARQ / HAQ / random / uniform policy search), ``robustq shared`` (the
weight-sharing model of cheap episodes) and ``robustq compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.cli.common import (
    METHODS_HELP,
    RESUME,
    ConsistencyCopiesOpt,
    ConsistencyEntropyOpt,
    ConsistencyOpt,
    DeviceOpt,
    FpCheckpointArg,
    Machine,
    OutDirOpt,
    QuantKernelsOpt,
    SeedOpt,
    ThreadsOpt,
    console,
    friendly_errors,
    on_machine,
    set_threads,
)
from robustq.cli.progress import RichTrainReporter, console_progress
from robustq.cli.train_cmd import DataOpt
from robustq.search.compare import CompareConfig, run_compare
from robustq.search.search import Search, SearchConfig
from robustq.search.shared import SharedJob, run_shared
from robustq.search.strategies import STRATEGIES
from robustq.utils.errors import RobustqError

BudgetsOpt = Annotated[str | None, typer.Option(
    help="multi-budget mode: comma-separated budgets the episodes take in turn, e.g. "
         "1.0,1.5625,2.5 (best policy kept per budget; --budget unused)")]
SharedOpt = Annotated[Path | None, typer.Option(
    help="a weight-sharing model of CHECKPOINT (`robustq shared`): episodes re-bit it instead "
         "of fine-tuning")]
BnImagesOpt = Annotated[int, typer.Option(
    help="with --shared: images the BatchNorm statistics are re-estimated on")]
RewardOpt = Annotated[str | None, typer.Option(
    help="arq (certified, IRS) or haq (clean accuracy); default: the strategy's")]
RewardEngineOpt = Annotated[str, typer.Option(
    help="how ARQ's reward samples a candidate: eager; compile (one torch.compile template "
         "for every candidate, the same classifier up to float rounding, ~1.5x eager here); "
         "bf16 (that template with bfloat16 convolutions, a close classifier, ~2.5x); or onnx "
         "(the deployed integer model in ONNX Runtime, export included ~1x here)")]
SeedUniformOpt = Annotated[bool, typer.Option(
    help="start with the widest uniform policy within the budget (the agent learns from it)")]
FinalRecipeOpt = Annotated[str, typer.Option(
    help="how the final model (the best policy; compare's policies) is fine-tuned: deploy-cr "
         "(4 epochs over the full training split, distilled from the FP model, with "
         "noise-consistency regularization: the recipe of the headline tables), deploy (3 "
         "epochs, half distilled), episode (QAT's loop on 2,000 images), or none (the "
         "episodes' own short fine-tune on --finetune-images)")]
ExploreSigmaOpt = Annotated[float, typer.Option(
    help="DDPG exploration: sigma of the truncated normal around the actor's action (in [0, 1] "
         "action units) after warm-up")]
ExploreDecayOpt = Annotated[float, typer.Option(
    help="DDPG exploration: sigma's factor per learning episode (HAQ: 0.99)")]
FpCacheOpt = Annotated[Path | None, typer.Option(
    help="directory of the FP model's IRS cache, shared between searches with the same "
         "certification settings (default: in --out)")]

METHOD_HELP = (METHODS_HELP + "; default: each fine-tune's recipe's own (the episodes' lsq, "
               "--final-recipe deploy's lsq_mse)")


@friendly_errors
@on_machine
def search_cmd(
    checkpoint: FpCheckpointArg,
    out: OutDirOpt,
    data: DataOpt = "embedded",
    strategy: Annotated[str, typer.Option(help="reward/strategy: " + ", ".join(STRATEGIES))]
    = "arq",
    budget: Annotated[float, typer.Option(help="BitOPs budget, % of FP32 (4/4 = 1.5625)")]
    = 1.5625,
    budgets: BudgetsOpt = None,
    episodes: Annotated[int, typer.Option(help="policies evaluated (the first --warmup are random)")] = 40,
    warmup: Annotated[int, typer.Option(help="uniform-random warm-up episodes "
                                               "(nsga2: the population, one generation)")] = 20,
    method: Annotated[str | None, typer.Option(help=METHOD_HELP)] = None,
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
    parallel_episodes: Annotated[int, typer.Option(help="policies proposed per agent round, "
                                                   "scored side by side by the workers")] = 1,
    shared: SharedOpt = None,
    bn_images: BnImagesOpt = SearchConfig.bn_images,
    reward: RewardOpt = None,
    reward_engine: RewardEngineOpt = SearchConfig.reward_engine,
    seed_uniform: SeedUniformOpt = False,
    explore_sigma: ExploreSigmaOpt = SearchConfig.explore_sigma,
    explore_decay: ExploreDecayOpt = SearchConfig.explore_decay,
    fp_cache: FpCacheOpt = None,
    final_recipe: FinalRecipeOpt = "deploy-cr",
    quant_kernels: QuantKernelsOpt = SearchConfig.quant_kernels,
    seed: SeedOpt = 0,
    machine: Machine = None,
) -> None:
    """Search per-layer bit-widths under a BitOPs budget; evaluate the best on the test split."""
    where = machine.device
    cfg = SearchConfig(checkpoint=str(checkpoint), data=data, strategy=strategy, budget=budget,
                       budgets=parse_budgets(budgets),
                       episodes=episodes, warmup=warmup, method=method, sigma=sigma,
                       finetune_images=finetune_images, holdout_images=holdout_images,
                       cert_images=cert_images, n=n, n_p=n_p, uniform_bits=uniform_bits,
                       seed=seed, parallel_episodes=parallel_episodes,
                       shared=None if shared is None else str(shared), bn_images=bn_images,
                       fp_cache=None if fp_cache is None else str(fp_cache), reward=reward,
                       reward_engine=reward_engine, seed_uniform=seed_uniform,
                       explore_sigma=explore_sigma, explore_decay=explore_decay,
                       final_recipe=recipe_or_none(final_recipe), quant_kernels=quant_kernels)
    warn_if_all_random(cfg)
    search_and_finish(Search(cfg, out, where), machine, test_images, test_n)


def search_and_finish(search: Search, machine: Machine, test_images: int, test_n: int) -> None:
    """Run the episodes, then (unless ``test_images`` is 0) the best policy on the test split."""
    progress = console_progress()
    best = search.run(progress, machine.executor)
    console.print(f"best reward {best['reward']:.4f} at episode {best['episode']} "
                  f"({best['bitops_percent']:.3f}% BitOPs)")
    if test_images > 0:
        final = search.finish(test_images, test_n, progress=progress, executor=machine.executor)
        console.print(f"test: clean {final['clean_accuracy']:.3f}, smoothed "
                      f"{final['smoothed_accuracy']:.3f}, ACR {final['acr']:.3f} -> {search.out}")


def recipe_or_none(text: str) -> str | None:
    """--final-recipe's value as a config's: ``none`` is the episodes' own fine-tune."""
    return None if text == "none" else text


def parse_budgets(text: str | None) -> tuple[float, ...]:
    try:
        return tuple(float(b) for b in text.split(",")) if text else ()
    except ValueError:
        raise RobustqError(f"--budgets must be comma-separated numbers, got {text!r}") from None


def warn_if_all_random(cfg: SearchConfig) -> None:
    if cfg.strategy in ("arq", "haq", "tpe", "nsga2") and cfg.episodes <= cfg.warmup:
        console.print(f"[yellow]warning:[/] all {cfg.episodes} episodes are random warm-up "
                      f"(--warmup {cfg.warmup}): the agent (DDPG, TPE or NSGA-II) never chooses "
                      "a policy, so this is a random search; pass --warmup below --episodes")


@friendly_errors
@on_machine
def compare_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="FP robustq checkpoint (the reference)")],
    out: Annotated[Path, typer.Option(help="output directory (table + per-model runs)")],
    candidates: Annotated[list[Path] | None, typer.Argument(
        help="policy JSON/YAML files (quantized and fine-tuned identically) or quantized "
             "checkpoints")] = None,
    data: DataOpt = "embedded",
    method: Annotated[str | None, typer.Option(help=METHOD_HELP)] = CompareConfig.method,
    finetune_images: Annotated[int, typer.Option(help="training images each candidate is "
                                                 "fine-tuned on")] = CompareConfig.finetune_images,
    holdout_images: Annotated[int, typer.Option(help="held-out training images (accuracy)")]
    = CompareConfig.holdout_images,
    test_images: Annotated[int, typer.Option(help="test images certified")]
    = CompareConfig.test_images,
    test_n: Annotated[int, typer.Option(help="samples per test image")] = CompareConfig.test_n,
    seed: SeedOpt = 0,
    fp_run: Annotated[Path | None, typer.Option(help="a finished `robustq certify` run of the "
                                                "FP checkpoint with the same images and "
                                                "settings: its certificates are the FP32 row")]
    = None,
    final_recipe: FinalRecipeOpt = "deploy-cr",
    quant_kernels: QuantKernelsOpt = CompareConfig.quant_kernels,
    machine: Machine = None,
) -> None:
    """Evaluate FP32 and a list of policies/checkpoints identically on the test split."""
    where = machine.device
    cfg = CompareConfig(checkpoint=str(checkpoint),
                        candidates=tuple(map(str, candidates or ())), data=data,
                        method=method, finetune_images=finetune_images,
                        holdout_images=holdout_images, test_images=test_images, test_n=test_n,
                        seed=seed, fp_run=str(fp_run) if fp_run else None,
                        final_recipe=recipe_or_none(final_recipe), quant_kernels=quant_kernels)

    def show(r: dict) -> None:
        console.print(f"{r['name']}: clean {r['clean_accuracy']:.3f} smoothed "
                      f"{r['smoothed_accuracy']:.3f} ACR {r['acr']:.3f} "
                      f"BitOPs {r['bitops_percent']:.3f}%")

    run_compare(cfg, out, console_progress(), where, on_row=show, executor=machine.executor)
    console.print(f"-> {out / 'compare.csv'}")


@friendly_errors(on_interrupt=RESUME)
def shared_cmd(
    checkpoint: FpCheckpointArg,
    out: Annotated[Path, typer.Option(help="output directory")],
    data: DataOpt = SharedJob.data,
    budget_low: Annotated[float, typer.Option(help="lowest BitOPs budget of the sampled "
                                              "policies, % of FP32")] = SharedJob.budgets[0],
    budget_high: Annotated[float, typer.Option(help="highest BitOPs budget, % of FP32")]
    = SharedJob.budgets[1],
    epochs: Annotated[int, typer.Option(help="training epochs")] = SharedJob.epochs,
    lr: Annotated[float, typer.Option(help="peak learning rate (cosine)")] = SharedJob.lr,
    train_images: Annotated[int | None, typer.Option(help="train on N evenly spaced training "
                                                     "images (default: all)")] = None,
    distill: Annotated[float, typer.Option(help="weight of distillation from the FP model")]
    = SharedJob.distill,
    consistency: ConsistencyOpt = SharedJob.consistency,
    consistency_copies: ConsistencyCopiesOpt = SharedJob.consistency_copies,
    consistency_entropy: ConsistencyEntropyOpt = SharedJob.consistency_entropy,
    quant_kernels: QuantKernelsOpt = SharedJob.quant_kernels,
    sigma: Annotated[float | None, typer.Option(help="noise std (default: checkpoint's)")] = None,
    seed: SeedOpt = SharedJob.seed,
    resume: Annotated[bool, typer.Option(help="continue a killed run in --out")] = False,
    threads: ThreadsOpt = None,
    device: DeviceOpt = SharedJob.device,
) -> None:
    """Train one weight-sharing quantized model for cheap search episodes.

    Each training step runs a random per-layer policy; `robustq search --shared` then re-bits
    this one model for every candidate instead of fine-tuning it."""
    set_threads(threads)
    job = SharedJob(checkpoint=str(checkpoint), data=data, budgets=(budget_low, budget_high),
                    epochs=epochs, lr=lr, train_images=train_images, distill=distill,
                    consistency=consistency, consistency_copies=consistency_copies,
                    consistency_entropy=consistency_entropy, quant_kernels=quant_kernels,
                    sigma=sigma, seed=seed, device=device)
    info = run_shared(job, out, resume=resume, reporter=RichTrainReporter(), say=console.print)
    acc = info["accuracy"]
    console.print(f"at uniform {job.reference_bits}/{job.reference_bits} (no BatchNorm "
                  f"re-estimation): test accuracy {acc['clean_accuracy']:.4f}"
                  + (f", noisy {acc['noisy_accuracy']:.4f}" if info["sigma"] else "")
                  + f" -> {out}")
