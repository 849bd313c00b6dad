"""Search strategies: how an episode's policy is proposed, registered by name (``STRATEGIES``).

A strategy is a ``Strategy``: ``propose(search, episode)`` gives (states, actions, weight bits,
activation bits) before budget enforcement; ``reward`` is the reward it is scored with unless
the search names another; ``learns`` says whether the DDPG agent observes its episodes;
``optuna`` whether it needs Optuna (the ``search`` extra). The search passed in is duck-typed
(``table``, ``states``, ``cfg``, ``rng``, ``agent`` and ``episodes_so_far()``), so this module
does not depend on ``search.search``.

- ``arq``: HAQ's DDPG agent, one action per layer and kind, scored by ARQ's certified reward.
- ``haq``: the same agent scored by HAQ's accuracy reward.
- ``random``: uniform random actions (a baseline at equal evaluations).
- ``uniform``: every layer at ``uniform_bits``, or at the widest width within the budget
  where that does not fit (one episode).
- ``tpe``: Optuna's TPE sampler fitted to every episode so far (the black-box baseline).
- ``nsga2``: Optuna's NSGA-II over three objectives at once (the reward and clean accuracy up,
  BitOPs down): the multi-objective mode, whose episodes form a Pareto front (with
  ``--budgets``, one policy per budget).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robustq.search.env import LayerTable, action_to_bits
from robustq.utils.errors import RobustqError
from robustq.utils.registry import Registry

Proposal = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Strategy:
    propose: Callable[[Any, int], Proposal]
    reward: str
    learns: bool = False
    optuna: bool = False


STRATEGY_REGISTRY: Registry[Strategy] = Registry("strategy")


def _by_actions(search: Any, act: Callable[[np.ndarray, int], float]) -> Proposal:
    """One action per step (weight bits, then activation bits, layer by layer), each step's
    state carrying the previous action's bits (HAQ's environment)."""
    c = search.cfg
    states = search.states.copy()
    actions = np.zeros(len(states), np.float32)
    prev = 0.0
    for t in range(len(states)):
        states[t, 9] = prev
        actions[t] = act(states[t], t)
        prev = action_to_bits(float(actions[t]), c.b_min, c.b_max) / c.b_max
    bits = np.array([action_to_bits(float(a), c.b_min, c.b_max) for a in actions])
    return states, actions, bits[0::2], bits[1::2]


def _agent(search: Any, episode: int) -> Proposal:
    return _by_actions(search, lambda state, t: search.agent.act(state, episode))


def _random(search: Any, episode: int) -> Proposal:
    return _by_actions(search, lambda state, t: search.rng.uniform())


def _fixed(search: Any, w: np.ndarray, a: np.ndarray) -> Proposal:
    return search.states, np.zeros(len(search.states), np.float32), w, a


def _uniform(search: Any, episode: int) -> Proposal:
    # where uniform_bits overshoots the budget, the widest uniform width that meets it: the
    # budget rule would otherwise lower some layers only, and the baseline would not be uniform
    c = search.cfg
    bits = np.full(len(search.table), min(c.uniform_bits, search.table.widest_uniform(
        c.all_budgets[0], c.b_min, c.b_max)))
    return _fixed(search, bits, bits.copy())


def _tpe(search: Any, episode: int) -> Proposal:
    return _fixed(search, *tpe_bits(search.table, search.episodes_so_far(), search.cfg, episode))


def _nsga2(search: Any, episode: int) -> Proposal:
    return _fixed(search, *nsga2_bits(search.table, search.episodes_so_far(), search.cfg,
                                      episode))


for _name, _strategy in {"arq": Strategy(_agent, "arq", learns=True),
                         "haq": Strategy(_agent, "haq", learns=True),
                         "random": Strategy(_random, "haq"),
                         "uniform": Strategy(_uniform, "haq"),
                         "tpe": Strategy(_tpe, "arq", optuna=True),
                         "nsga2": Strategy(_nsga2, "arq", optuna=True)}.items():
    STRATEGY_REGISTRY.register(_name)(_strategy)
STRATEGIES = tuple(STRATEGY_REGISTRY.names())


def tpe_bits(table: LayerTable, done: list[dict[str, Any]], cfg: Any, episode: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Episode ``episode``'s weight and activation bits from Optuna's TPE sampler (seeded by
    (seed, episode), multivariate, ``cfg.warmup`` random start-up trials) fitted to the
    ``done`` episodes (their policies after budget enforcement, and rewards). Rebuilt from the
    log each time, so a resumed search asks exactly what an uninterrupted one would."""
    optuna = require_optuna()
    sampler = optuna.samplers.TPESampler(seed=_sampler_seed(cfg, episode), multivariate=True,
                                         n_startup_trials=cfg.warmup)
    return _ask_bits(table, done, cfg, optuna.create_study(direction="maximize", sampler=sampler),
                     lambda ln: {"value": ln["reward"]})


# NSGA-II's objectives, read from an episode's log line: (key, +1 maximize / -1 minimize)
NSGA2_OBJECTIVES = (("reward", 1), ("accuracy", 1), ("bitops_percent", -1))


def nsga2_bits(table: LayerTable, done: list[dict[str, Any]], cfg: Any, episode: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Episode ``episode``'s bits from Optuna's NSGA-II (seeded by (seed, episode)) over
    ``NSGA2_OBJECTIVES``. The population is ``cfg.warmup`` episodes (at least 2): the first
    generation is random, each later one is bred from the elite of all before it. Episode k
    belongs to generation k // population, as in a live one-at-a-time NSGA-II study, and the
    study is rebuilt from the log with those generations, so a resumed search asks exactly
    what an uninterrupted one would."""
    optuna = require_optuna()
    population = max(2, cfg.warmup)
    sampler = optuna.samplers.NSGAIISampler(population_size=population,
                                            seed=_sampler_seed(cfg, episode))
    study = optuna.create_study(directions=["maximize" if sign > 0 else "minimize"
                                            for _, sign in NSGA2_OBJECTIVES], sampler=sampler)
    key = f"{type(sampler).__name__}:generation"       # where Optuna's GA samplers keep it
    return _ask_bits(table, done, cfg, study, lambda ln: {
        "values": [ln[k] for k, _ in NSGA2_OBJECTIVES],
        "system_attrs": {key: ln["episode"] // population}})


def _sampler_seed(cfg: Any, episode: int) -> int:
    return cfg.seed * 1_000_003 + episode


def _ask_bits(table: LayerTable, done: list[dict[str, Any]], cfg: Any, study: Any,
              outcome: Callable[[dict[str, Any]], dict[str, Any]]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Add the ``done`` episodes to ``study`` (their policies after budget enforcement as
    parameters in [cfg.b_min, cfg.b_max], ``outcome(line)`` the trial's values), then ask it
    for the next bits."""
    optuna = require_optuna()
    dist = optuna.distributions.IntDistribution(cfg.b_min, cfg.b_max)
    space = {f"{kind}.{name}": dist for name in table.names for kind in ("w", "a")}
    study.add_trials([optuna.trial.create_trial(
        params={f"{kind}.{name}": bits[kind] for name, bits in ln["policy"].items()
                for kind in ("w", "a")},
        distributions=space, **outcome(ln)) for ln in done])
    params = study.ask(space).params
    return (np.array([params[f"w.{n}"] for n in table.names]),
            np.array([params[f"a.{n}"] for n in table.names]))


def require_optuna() -> Any:
    """Optuna (the ``search`` extra), quiet; refused in one line if not installed."""
    try:
        import optuna
    except ImportError:
        raise RobustqError("the tpe and nsga2 strategies need Optuna: pip install "
                          "'robustq[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
