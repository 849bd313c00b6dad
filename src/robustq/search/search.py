"""``run_search``: ARQ / HAQ (DDPG), random or uniform policies under a BitOPs budget.

Steps (spec 03): FullRobustCertify (certify the FP model once on the held-out certification
images, writing the IRS cache; ARQ only), then episodes. Each episode builds a policy (agent,
random or uniform), enforces the budget, quantizes, fine-tunes, scores it with the reward, and
appends one line to ``episodes.jsonl`` (policy, BitOPs, reward, accuracy, ACR, times). After each
episode the agent (networks, optimizers, replay, generators), the episode count and the best
policy are saved atomically: a killed search resumes at the next episode and reproduces the
episodes an uninterrupted search would have run.

Output: ``best_policy.json``, ``best_model.safetensors`` (the best policy fine-tuned again from
FP with the same recipe), and ``final.json``: the test-split evaluation with full (not
incremental) certification (``evaluate_on_test``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustq.certify.run import (
    CertifyConfig,
    certify_dataset,
    reuse_certification,
    samples_to_go,
)
from robustq.certify.run import Progress as RowCallback
from robustq.certify.smooth import check_alpha
from robustq.data import load_dataset
from robustq.data.dataset import ImageDataset
from robustq.models import ModelCard
from robustq.models.checkpoint import load_tensors, save_tensors
from robustq.models.compile import fast_inference
from robustq.models.evaluate import evaluate
from robustq.quant.checkpoint import load_model, save_quantized
from robustq.quant.cost import model_cost
from robustq.quant.finetune import calibration_batches
from robustq.quant.inference import freeze_quantized
from robustq.quant.kernels import check_kernels
from robustq.quant.policy import Policy
from robustq.quant.quantizers import check_method
from robustq.quant.workflow import qat_recipe, recipe_method
from robustq.search.ddpg import DDPGAgent, DDPGConfig
from robustq.search.env import BitOpsBudget, LayerTable
from robustq.search.evaluate import (
    REWARD_ENGINES,
    RewardContext,
    build_quantized,
    get_reward,
    split_train,
)
from robustq.search.final import check_final_recipe, final_model
from robustq.search.shared import load_shared, rebit
from robustq.search.strategies import STRATEGY_REGISTRY, require_optuna
from robustq.utils.config import from_dict, json_ready
from robustq.utils.device import module_device
from robustq.utils.errors import RobustqError
from robustq.utils.io import append_line, atomic_write_json, atomic_write_text, check_writable
from robustq.utils.parallel import SERIAL, Executor
from robustq.utils.progress import Progress, silent
from robustq.utils.provenance import provenance
from robustq.utils.records import claim, read_record
from robustq.utils.validate import check_int, check_sigma

STATE_FILE = "search_state.safetensors"
EPISODES = "episodes.jsonl"
CONFIG_FILE = "search.json"
BEST_POLICY = "best_policy.json"
FINAL_FILE = "final.json"


@dataclass(frozen=True)
class SearchConfig:
    """A search. sigma in [0, 1] pixel units (default: the checkpoint's); budget in % of FP32
    BitOPs (uniform 4/4 = 1.5625); sizes are images; n, n_p are noise samples per image;
    ``parallel_episodes`` policies are proposed per round (by the same agent) and can be
    scored side by side (1: HAQ's one-at-a-time loop). With ``shared`` (a weight-sharing model
    of this checkpoint, ``search.shared.run_shared``) an episode re-bits that model and
    re-estimates its BatchNorm statistics on ``bn_images`` noisy fine-tuning images instead of
    quantizing and fine-tuning from FP. ``fp_cache``: where the FP model's IRS cache is kept
    (default: in the search directory), so that searches with the same held-out certification
    settings certify the FP model once between them (a finished cache is read, a different
    one refused). ``reward``: ``arq`` or ``haq`` (default: the strategy's, ``search.strategies``);
    ``tpe`` proposes policies with Optuna's TPE sampler (multivariate) fitted to every episode
    so far, the first ``warmup`` at random: a strong black-box baseline at equal evaluations;
    ``nsga2`` with Optuna's NSGA-II over (reward, clean accuracy, BitOPs), ``warmup`` episodes
    per generation: the multi-objective mode.
    ``reward_engine``: how ARQ's reward samples a candidate (``evaluate.REWARD_ENGINES``).
    ``budgets`` (multi-budget mode; ``budget`` then unused): episode e is held to
    ``budgets[e % len(budgets)]``, and the search keeps the best policy under each budget
    (``best_policy_<budget>.json``) beside the best overall. ``seed_uniform``: the first
    episode is the widest uniform policy that meets the (first) budget, so the agent's replay
    buffer and the best-so-far start from the obvious baseline instead of a random policy.
    ``final_recipe``: how ``finish`` fine-tunes the best policy: None, the episodes' own short
    fine-tune; a ``quant.workflow.QAT_RECIPES`` name (``deploy``), that QAT run in
    ``final_model/`` (``search.final``; resumable per epoch); ``method``: the quantization
    method of the episodes' fine-tune and of the final model (None: each one's recipe's own,
    ``quant.workflow.recipe_method``: lsq for the episodes, lsq_mse for ``deploy``);
    ``quant_kernels``: the fake
    quantizers' kernels in that fine-tune (``quant.kernels``: "eager" or "compiled", the same
    forward pass; the episodes keep eager). ``explore_sigma`` and
    ``explore_decay``: the DDPG agent's exploration, a truncated normal of sigma
    ``explore_sigma`` (action units, [0, 1]) around the actor's action, multiplied by
    ``explore_decay`` after each learning episode (HAQ's 0.5 and 0.99)."""

    checkpoint: str
    data: str
    strategy: str = "arq"
    budget: float = 1.5625
    budgets: tuple[float, ...] = ()
    episodes: int = 40
    warmup: int = 20
    method: str | None = None
    sigma: float | None = None
    finetune_images: int = 2000
    finetune_lr: float = 1e-3
    holdout_images: int = 500
    cert_images: int = 50
    n0: int = 100
    n: int = 2000
    n_p: int = 200
    alpha: float = 0.001
    b_min: int = 2
    b_max: int = 8
    uniform_bits: int = 4
    batch_size: int = 400
    seed: int = 0
    parallel_episodes: int = 1
    shared: str | None = None
    bn_images: int = 1024
    fp_cache: str | None = None
    reward: str | None = None
    reward_engine: str = "eager"
    seed_uniform: bool = False
    final_recipe: str | None = None
    quant_kernels: str = "eager"
    explore_sigma: float = 0.5
    explore_decay: float = 0.99
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        STRATEGY_REGISTRY.get(self.strategy)              # names the known strategies
        check_method(self.method)
        if self.episodes < 1 or self.warmup < 0:
            raise RobustqError("episodes must be >= 1 and warm-up >= 0")
        if not 2 <= self.b_min <= self.b_max <= 8:
            raise RobustqError(f"need 2 <= b_min <= b_max <= 8, got {self.b_min}, {self.b_max}")
        if self.cert_images > self.holdout_images or self.cert_images < 1:
            raise RobustqError("need 1 <= cert images <= held-out images")
        if not 1 <= self.n_p <= self.n:
            raise RobustqError(f"need 1 <= n_p <= n, got n_p={self.n_p}, n={self.n}")
        if self.sigma is not None:
            check_sigma(self.sigma)
        for name in ("finetune_images", "holdout_images", "n0", "batch_size", "uniform_bits",
                     "parallel_episodes", "bn_images"):
            check_int(getattr(self, name), name, 1)
        check_alpha(self.alpha)
        if self.reward is not None:
            get_reward(self.reward)                          # names the known rewards
        check_final_recipe(self.final_recipe)
        check_kernels(self.quant_kernels, "--quant-kernels")
        if self.reward_engine not in REWARD_ENGINES:
            raise RobustqError(f"reward_engine must be one of {', '.join(REWARD_ENGINES)}, got "
                               f"{self.reward_engine!r}")
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise RobustqError(f"finetune_lr must be finite and > 0, got {self.finetune_lr}")
        for name in ("explore_sigma", "explore_decay"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v <= 1):
                raise RobustqError(f"{name} must lie in (0, 1], got {v}")
        for b in (self.budget, *self.budgets):
            if not (math.isfinite(b) and 0 < b <= 100):
                raise RobustqError(f"budget must lie in (0, 100] % of FP32 BitOPs, got {b}")

    @property
    def all_budgets(self) -> tuple[float, ...]:
        """The budgets episodes are held to, in turn."""
        return self.budgets or (self.budget,)

    @property
    def reward_name(self) -> str:
        return self.reward or STRATEGY_REGISTRY.get(self.strategy).reward

    def to_json(self) -> dict[str, Any]:
        return json_ready(asdict(self))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SearchConfig:
        return from_dict(cls, d, "search")


class Search:
    """A (resumable) search in ``out``. ``device`` (default the CPU) runs the models and draws
    the certification noise; fine-tuning noise is drawn on the CPU, so the CPU's results do not
    depend on it."""

    def __init__(self, cfg: SearchConfig, out: str | Path,
                 device: torch.device | None = None) -> None:
        self.cfg, self.out = cfg, Path(out)
        self.device = device or torch.device("cpu")
        self.fp, meta = load_model(cfg.checkpoint)
        self.fp.eval().to(self.device)
        self.card = ModelCard.from_json(meta["card"])
        self.sigma = (cfg.sigma if cfg.sigma is not None else
                      check_sigma(meta.get("sigma", 0.0), f"{cfg.checkpoint}: sigma (pass --sigma)",
                                  allow_zero=cfg.reward_name != "arq"))
        self.shape = (self.card.in_channels, *self.card.input_size)
        self.table = LayerTable(self.fp, self.shape)
        self.budgets = [BitOpsBudget(b, cfg.b_min, cfg.b_max) for b in cfg.all_budgets]
        for budget in self.budgets:
            budget.check(self.table)
        train = load_dataset(cfg.data, "train")
        if (train.num_classes, train.image_shape[0]) != (self.card.num_classes,
                                                         self.card.in_channels):
            raise RobustqError(f"{train.source}: {train.num_classes} classes of "
                               f"{train.image_shape[0]}-channel images, but {cfg.checkpoint} "
                               f"takes {self.card.in_channels} channels, {self.card.num_classes} "
                               "classes")
        self.ft_ds, self.holdout = split_train(train, cfg.finetune_images, cfg.holdout_images,
                                               cfg.seed)
        self.shared = None if cfg.shared is None else load_shared(cfg.shared, self.fp).to(self.device)
        self.bn_batches = ([] if cfg.shared is None else calibration_batches(
            self.ft_ds, images=cfg.bn_images, sigma=self.sigma, seed=cfg.seed))
        self.states = self.table.states()
        self.agent = DDPGAgent(self.states.shape[1], 128 * 2 * len(self.table),
                               DDPGConfig(warmup_episodes=cfg.warmup,
                                          sigma0=cfg.explore_sigma,
                                          sigma_decay=cfg.explore_decay), seed=cfg.seed)
        self.rng = np.random.default_rng(cfg.seed + 1)     # random search
        self.strategy = STRATEGY_REGISTRY.get(cfg.strategy)
        if self.strategy.optuna:
            require_optuna()                                 # installed, before anything is written
        # everything is validated: only now is the output directory touched
        check_writable(self.out)
        claim(self.out / CONFIG_FILE, {"config": cfg.to_json(),
                                         "provenance": provenance(cfg.seed, cfg.to_json())},
              what="search",   # settings added since a search was recorded: their defaults
              identity={"config": lambda c: {**_defaults(), **c}})

    # ----- FullRobustCertify
    def context(self, progress: Progress | None = None) -> RewardContext:
        fp_acc = evaluate(self.fp, self.holdout)["clean_accuracy"]
        if self.cfg.reward_name != "arq":
            return RewardContext(self.holdout, self.sigma, fp_acc)
        cert = self.holdout.spread(self.cfg.cert_images)
        cc = self.cert_config(self.cfg.n, None)
        s = self._certify_fp_cache(cert, cc, progress)   # a finished cache is read back, shared
        return RewardContext(self.holdout, self.sigma, fp_acc, s["acr"], self.cache_dir,
                             self.cert_config(self.cfg.n, self.cfg.n_p), cert, self.device,
                             self.cfg.reward_engine, self.card)

    def _certify_fp_cache(self, cert: ImageDataset, cc: CertifyConfig,
                          progress: Progress | None) -> dict[str, Any]:
        with silent(progress).phase(f"FP cache: certifying {len(cert)} held-out images "
                                    f"(n={cc.n})", total=len(cert)) as ph:
            s = certify_dataset(self.fp, cert, cc, self.cache_dir, cache=True,
                                model_info={"checkpoint": self.cfg.checkpoint,
                                            "device": self.device.type},
                                progress=lambda done, total, r: ph.update(done, acr=r["acr"]),
                                device=self.device)
        return s

    def uniform_start(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The widest uniform policy within the first budget, with the states and the actions
        (each width's interval midpoint, ``action_to_bits``) an agent would have taken."""
        c, k = self.cfg, len(self.table)
        bits = np.full(k, self.table.widest_uniform(c.all_budgets[0], c.b_min, c.b_max))
        action = (bits[0] - c.b_min + 0.5) / (c.b_max - c.b_min + 1)
        states = self.states.copy()
        states[1:, 9] = bits[0] / c.b_max                  # every previous action was this width
        return states, np.full(2 * k, action, np.float32), bits, bits.copy()

    @property
    def cache_dir(self) -> Path:
        return Path(self.cfg.fp_cache) if self.cfg.fp_cache else self.out / "fp_cache"

    def cert_config(self, n: int, n_p: int | None) -> CertifyConfig:
        c = self.cfg
        return CertifyConfig(sigma=self.sigma, n0=c.n0, n=n, alpha=c.alpha,
                             batch_size=c.batch_size, chunk=100, skip=1, max_images=None,
                             seed=c.seed, n_p=n_p)

    # ----- one episode
    def propose(self, episode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(states, actions, weight bits, activation bits) before budget enforcement."""
        if self.cfg.seed_uniform and episode == 0 and self.cfg.strategy != "uniform":
            return self.uniform_start()
        return self.strategy.propose(self, episode)

    def episodes_so_far(self) -> list[dict[str, Any]]:
        """The episodes logged (a strategy that fits them, e.g. TPE, reads them)."""
        return read_episodes(self.out)

    @property
    def episodes_total(self) -> int:
        """Episodes the search runs (uniform has one policy: one episode)."""
        return 1 if self.cfg.strategy == "uniform" else self.cfg.episodes

    def run(self, progress: Progress | None = None, executor: Executor | None = None
            ) -> dict[str, Any]:
        """Run the episodes still to do (resuming a killed search); returns the best episode.
        ``progress`` gets the FP cache's phase, then one "episodes" phase whose label names
        the episode and the part in progress. Episodes go in rounds of ``parallel_episodes``
        policies proposed by the same agent; ``executor`` fine-tunes and scores a round's
        policies side by side (``utils.parallel``), the agent observes them in order, so the
        episodes depend on ``parallel_episodes``, never on the executor."""
        ctx = self.context(progress)
        start, best, pending = self._resume()
        episodes, size = self.episodes_total, self.cfg.parallel_episodes
        with silent(progress).phase("episodes", total=episodes, done=start) as ph, \
                (executor or SERIAL).session((self, ctx)) as run:
            self._notify = ph.update          # in this process only (not pickled)
            ep = start
            while ep < episodes:
                end = min(episodes, (ep // size + 1) * size)
                pending = pending or [self._proposal(e) for e in range(ep, end)]
                results = run.imap(_episode_reward, [(p["episode"], p["policy"])
                                                     for p in pending])
                while pending:
                    line = self._observe(pending[0], next(results))
                    if best is None or line["reward"] > best["reward"]:
                        best = line
                    pending = pending[1:]
                    self._save(ep + 1, best, line, pending)
                    ep += 1
                    ph.update(ep, label=f"episode {ep}/{episodes} done", best=best["reward"])
        Policy.from_json(best["policy"]).save(self.out / BEST_POLICY)
        if len(self.cfg.all_budgets) > 1:
            for budget, line in best_per_budget(read_episodes(self.out),
                                                self.cfg.all_budgets).items():
                Policy.from_json(line["policy"]).save(self.out / f"best_policy_{budget:g}.json")
        return best

    def _proposal(self, ep: int) -> dict[str, Any]:
        """Episode ``ep``'s policy from the agent (or random, uniform) within the budget, with
        the states and actions the agent will observe (plain lists: saved with the state)."""
        t0 = time.perf_counter()
        states, actions, w, a = self.propose(ep)
        w, a = self.budgets[ep % len(self.budgets)].enforce(self.table, w, a)
        return {"episode": ep, "states": states.tolist(), "actions": actions.tolist(),
                "w": w.tolist(), "a": a.tolist(), "policy": self.table.policy(w, a).to_json(),
                "propose_s": time.perf_counter() - t0}

    def _observe(self, prop: dict[str, Any], result: tuple[float, dict, float, float]
                 ) -> dict[str, Any]:
        """The agent observes an episode's reward; the episode's log line."""
        reward, info, finetune_s, reward_s = result
        ep, w, a = prop["episode"], np.asarray(prop["w"]), np.asarray(prop["a"])
        t0 = time.perf_counter()
        if self.strategy.learns:
            self.agent.observe_episode(np.asarray(prop["states"], self.states.dtype),
                                       np.asarray(prop["actions"], np.float32)[:, None], reward,
                                       update=ep >= self.cfg.warmup)
        agent_s = prop["propose_s"] + time.perf_counter() - t0
        return {"episode": ep, "reward": reward, **info,
                "bitops_percent": self.table.bitops_percent(w, a), "policy": prop["policy"],
                "finetune_s": finetune_s, "reward_s": reward_s, "agent_s": agent_s,
                "episode_s": finetune_s + reward_s + agent_s}

    def _label(self, text: str) -> None:
        """Name the part of an episode in progress (in the driver's process only)."""
        notify = self.__dict__.get("_notify")
        if notify is not None:
            notify(label=text)

    def __getstate__(self) -> dict[str, Any]:
        """To a worker (``utils.parallel``): everything an episode needs, not the progress."""
        return {k: v for k, v in self.__dict__.items() if k != "_notify"}

    # ----- persistence: STATE_FILE is the truth (one atomic write per episode); the log may
    # hold one more line (an episode killed after logging), which a resume drops.
    def _resume(self) -> tuple[int, dict | None, list[dict]]:
        """Episodes done, the best so far and the rest of the round in progress (proposed by
        the agent before it observed the round's first episodes)."""
        log = self.out / EPISODES
        if not (self.out / STATE_FILE).is_file():
            log.unlink(missing_ok=True)
            return 0, None, []
        st = read_state(self.out)
        self.agent.load(st["tensors"], st["agent"])
        self.rng.bit_generator.state = st["rng"]
        lines = read_episodes(self.out)
        if len(lines) < st["episodes_done"]:
            raise RobustqError(f"{log}: {len(lines)} episodes logged but {st['episodes_done']} "
                               "done; the search directory is damaged")
        if len(lines) > st["episodes_done"]:      # rewritten whole, never truncated in place
            atomic_write_text(log, "".join(json.dumps(ln) + "\n"
                                           for ln in lines[: st["episodes_done"]]))
        return st["episodes_done"], st["best"], st.get("pending", [])

    def _save(self, done: int, best: dict, line: dict, pending: list[dict]) -> None:
        append_line(self.out / EPISODES, json.dumps(line))
        state = {"episodes_done": done, "best": best, "agent": self.agent.scalars(),
                 "rng": self.rng.bit_generator.state, "pending": pending}
        save_tensors(self.out / STATE_FILE, self.agent.tensors(), state)

    # ----- the result
    def finish(self, test_images: int, test_n: int, test_skip: int | None = None,
               progress: Progress | None = None, executor: Executor | None = None
               ) -> dict[str, Any]:
        """Re-build the best policy from FP (``cfg.final_recipe``), save it, and evaluate it on
        the test split with full certification (``test_images`` images, ``test_n`` samples)."""
        best = read_state(self.out)["best"]
        policy = Policy.from_json(best["policy"])
        policy.save(self.out / BEST_POLICY)
        progress = silent(progress)
        recipe = self.cfg.final_recipe
        with progress.phase(f"final model: fine-tuning ({recipe or 'the episode recipe'}, "
                            f"{self._final_images(recipe)} images)") as ph:
            q = final_model(self, policy, self.out / "final_model", recipe, ph)
        save_quantized(self.out / "best_model.safetensors", q, self.card,
                       {"sigma": self.sigma, "search": self.cfg.to_json(), "policy_reward": best,
                        "recipe": recipe})
        with progress.phase(f"final model: certifying test images (n={test_n})") as ph:
            final = evaluate_on_test(
                q, policy, self.cfg.data, self.sigma, test_images, test_n, self.cfg,
                self.out / "final", self.shape, test_skip, executor=executor,
                progress=lambda done, total, r: ph.update(done, total=total, acr=r["acr"]))
        final["search_wall_s"] = sum(ln["episode_s"] for ln in read_episodes(self.out))
        atomic_write_json(self.out / FINAL_FILE, final)
        return final


    def _final_images(self, recipe: str | None) -> int | str:
        """How many training images the final fine-tune sees (a recipe's None: all)."""
        if recipe is None:
            return len(self.ft_ds)
        return qat_recipe(recipe).get("train_images") or "all training"


def _defaults() -> dict[str, Any]:
    """SearchConfig's defaults as JSON: a search recorded before a setting existed ran with its
    default (e.g. rounds of one), so it still resumes."""
    return json_ready({f.name: f.default for f in fields(SearchConfig)
                       if f.default is not MISSING})


def best_per_budget(lines: list[dict[str, Any]], budgets: tuple[float, ...]
                    ) -> dict[float, dict[str, Any]]:
    """The highest-reward episode within each budget (% of FP32 BitOPs), where one is."""
    out = {}
    for b in budgets:
        within = [ln for ln in lines if ln["bitops_percent"] <= b + 1e-9]
        if within:
            out[b] = max(within, key=lambda ln: ln["reward"])
    return out


def read_state(search_dir: Path) -> dict[str, Any]:
    """A search's saved state: episodes done, best episode, agent (``tensors`` and scalars),
    random-search generator; validated."""
    path = Path(search_dir) / STATE_FILE
    tensors, meta = load_tensors(path)
    missing = [k for k in ("episodes_done", "best", "agent", "rng") if k not in meta]
    if missing or not isinstance(meta.get("episodes_done"), int):
        raise RobustqError(f"{path}: not a search state (lacks {', '.join(missing) or 'a count'})")
    return {**meta, "tensors": tensors}


def read_episodes(search_dir: Path) -> list[dict[str, Any]]:
    """The complete lines of a search's ``episodes.jsonl`` (a partial last line is ignored);
    a garbled line is refused, naming file and line."""
    path = Path(search_dir) / EPISODES
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]                 # the part after the last newline is partial
    out = []
    for k, ln in enumerate(lines, 1):
        try:
            rec = json.loads(ln)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or "episode_s" not in rec:
            raise RobustqError(f"{path}: line {k} is not an episode record")
        out.append(rec)
    return out


def _episode_reward(work: tuple[Search, RewardContext], unit: tuple[int, dict]
                    ) -> tuple[float, dict, float, float]:
    """One unit (on any executor): episode ``ep``'s policy quantized, fine-tuned (seed + ep)
    (or the shared model re-bitted) and scored; (reward, the reward's details, fine-tuning
    (or re-bitting) seconds, reward seconds)."""
    search, ctx = work
    (ep, policy_json), c = unit, search.cfg
    t0 = time.perf_counter()
    if search.shared is not None:
        search._label(f"episode {ep + 1}/{search.episodes_total}: re-bitting the shared model")
        q = rebit(search.shared, Policy.from_json(policy_json), search.bn_batches)
    else:
        search._label(f"episode {ep + 1}/{search.episodes_total}: fine-tuning on "
                      f"{len(search.ft_ds)} images")
        q = build_quantized(search.fp, Policy.from_json(policy_json),
                            c.method or recipe_method(None), search.ft_ds, search.sigma,
                            c.finetune_lr, c.seed + ep)
    t1 = time.perf_counter()
    ep_dir = search.out / "episodes" / f"{ep:04d}"
    shutil.rmtree(ep_dir, ignore_errors=True)   # a killed attempt's partial files
    search._label(f"episode {ep + 1}/{search.episodes_total}: reward ({c.reward_name})")
    reward, info = get_reward(c.reward_name)(q, ctx, ep_dir)
    return reward, info, t1 - t0, time.perf_counter() - t1


def evaluate_on_test(model: nn.Module, policy: Policy | None, data: str, sigma: float,
                     images: int, n: int, cfg: SearchConfig, out: Path,
                     shape: tuple[int, int, int], skip: int | None = None,
                     reuse: Path | None = None, progress: RowCallback | None = None,
                     executor: Executor | None = None) -> dict[str, Any]:
    """Test-split numbers of one model: clean accuracy of the base classifier, and full
    certification (every ``skip``-th image, at most ``images``; n samples, alpha = cfg.alpha):
    smoothed accuracy, ACR, certified accuracy at 0/0.25/0.5/0.75/1.0; BitOPs % and size.
    Certification samples an inference-only copy (``freeze_quantized``, then compiled or traced
    by ``fast_inference``): the same quantized classifier up to float rounding. With ``reuse``,
    an existing certification run of this very model with these settings is read instead
    (``certify.run.reuse_certification``). ``executor`` shares the certification among
    workers (``utils.parallel``)."""
    test = load_dataset(data, "test")
    skip = skip or max(1, len(test) // images)
    cc = CertifyConfig(sigma=sigma, n0=cfg.n0, n=n, alpha=cfg.alpha, batch_size=cfg.batch_size,
                       chunk=100, skip=skip, max_images=images, seed=cfg.seed,
                       radii=(0.0, 0.25, 0.5, 0.75, 1.0))
    if reuse is not None:
        s = reuse_certification(reuse, test, cc, cfg.checkpoint)
    elif (device := module_device(model)).type != "cpu":
        s = certify_dataset(model, test, cc, out, model_info={"device": device.type},
                            progress=progress, device=device, executor=executor)
    else:
        samples = samples_to_go(cc, test, out)
        s = certify_dataset(fast_inference(freeze_quantized(model), (cc.batch_size, *shape),
                                           samples), test, cc, out, progress=progress,
                            executor=executor)
    chosen = test.subset(cc.indices(len(test)))
    cost = model_cost(model, policy, shape) if policy is not None else None
    return {"clean_accuracy": evaluate(model, chosen)["clean_accuracy"],
            "smoothed_accuracy": s["smoothed_accuracy"], "acr": s["acr"],
            "certified_accuracy": s["certified_accuracy"], "images": s["images"], "n": n,
            "bitops_percent": cost.bitops_percent if cost else 100.0,
            "size_kib": (cost.size_bytes if cost else 4 * sum(
                p.numel() for p in model.parameters())) / 1024,
            "certify_wall_s": s["wall_time_s"],
            "certification_dir": str((reuse or out).resolve())}


def search_origin(policy_path: Path) -> dict[str, Any] | None:
    """If ``policy_path`` is a search's ``best_policy.json``: a name for it (the strategy;
    ``uniform4`` for uniform at 4 bits), the search directory, episodes run and the search's wall
    time in seconds (the FP model's certification for the IRS cache plus every episode).
    Otherwise None."""
    d = Path(policy_path).parent
    if Path(policy_path).name != BEST_POLICY or not (d / CONFIG_FILE).is_file():
        return None
    cfg = read_record(d / CONFIG_FILE)["config"]
    lines = read_episodes(d)
    cache = Path(cfg.get("fp_cache") or d / "fp_cache") / "summary.json"
    cache_s = json.loads(cache.read_text())["wall_time_s"] if cache.is_file() else 0.0
    name = (f"uniform{cfg['uniform_bits']}" if cfg["strategy"] == "uniform"
            else cfg["strategy"])
    return {"name": name, "search_dir": str(d.resolve()), "search_episodes": len(lines),
            "search_wall_s": round(cache_s + sum(ln["episode_s"] for ln in lines), 3)}
