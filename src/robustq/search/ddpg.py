"""DDPG with HAQ's settings (spec 03), small and fully seeded.

Our own rather than stable-baselines3's: HAQ's agent gives every transition of an episode the
episode's final reward minus a moving-average baseline, explores with a truncated normal whose
sigma decays per episode after uniform warm-up episodes, and updates once per stored transition;
those are a few lines here and awkward hooks around SB3's step-reward loop. All randomness comes
from the agent's own NumPy and torch generators, whose states are part of ``state_dict`` so a
resumed search continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import truncnorm
from torch import nn

from robustq.utils.config import JsonConfig


@dataclass(frozen=True)
class DDPGConfig(JsonConfig):
    """HAQ's DDPG settings (their defaults); ``warmup_episodes`` explore at random."""

    hidden: int = 300
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    discount: float = 1.0
    tau: float = 0.01
    batch_size: int = 64
    warmup_episodes: int = 20
    sigma0: float = 0.5
    sigma_decay: float = 0.99
    baseline_momentum: float = 0.5


class Actor(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


class Critic(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.fs, self.fa = nn.Linear(state_dim, hidden), nn.Linear(1, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.out(self.fs(s) + self.fa(a))


def truncated_normal(rng: np.random.Generator, mean: float, sigma: float, lo: float = 0.0,
                     hi: float = 1.0) -> float:
    """A draw from N(mean, sigma^2) conditioned on [lo, hi] (inverse-CDF, exact)."""
    if sigma <= 0:
        return float(np.clip(mean, lo, hi))
    a, b = (lo - mean) / sigma, (hi - mean) / sigma
    return float(truncnorm.ppf(rng.uniform(), a, b, loc=mean, scale=sigma))


class DDPGAgent:
    """Actor-critic over (state, action in [0, 1]); ``capacity`` transitions of replay."""

    def __init__(self, state_dim: int, capacity: int, cfg: DDPGConfig = DDPGConfig(),
                 seed: int = 0) -> None:
        self.cfg, self.capacity = cfg, capacity
        torch_gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.actor, self.critic = Actor(state_dim, cfg.hidden), Critic(state_dim, cfg.hidden)
            self.actor_t, self.critic_t = Actor(state_dim, cfg.hidden), Critic(state_dim, cfg.hidden)
        self.actor_t.load_state_dict(self.actor.state_dict())
        self.critic_t.load_state_dict(self.critic.state_dict())
        self.opt_a = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic)
        self.gen = torch_gen
        self.s = np.zeros((capacity, state_dim), np.float32)
        self.a = np.zeros((capacity, 1), np.float32)
        self.r = np.zeros((capacity, 1), np.float32)
        self.s2 = np.zeros((capacity, state_dim), np.float32)
        self.done = np.zeros((capacity, 1), np.float32)
        self.size = self.pos = 0
        self.baseline: float | None = None

    # ----- acting
    def act(self, state: np.ndarray, episode: int) -> float:
        """Uniform for the warm-up episodes, then truncated-normal exploration around the actor."""
        if episode < self.cfg.warmup_episodes:
            return float(self.rng.uniform())
        with torch.no_grad():
            mean = float(self.actor(torch.as_tensor(state[None])).item())
        sigma = self.cfg.sigma0 * self.cfg.sigma_decay ** (episode - self.cfg.warmup_episodes)
        return truncated_normal(self.rng, mean, sigma)

    # ----- learning
    def observe_episode(self, states: np.ndarray, actions: np.ndarray, reward: float,
                        update: bool) -> None:
        """Store an episode's transitions, each with the episode's reward minus the moving
        baseline, and (after warm-up) do one update per stored transition."""
        self.baseline = reward if self.baseline is None else \
            self.baseline + self.cfg.baseline_momentum * (reward - self.baseline)
        adv = reward - self.baseline
        t = len(actions)
        for i in range(t):
            nxt = states[i + 1] if i + 1 < t else states[i]
            self._store(states[i], actions[i], adv, nxt, float(i == t - 1))
        if update:
            for _ in range(t):
                self._update()

    def _store(self, s, a, r, s2, done) -> None:
        self.s[self.pos], self.a[self.pos], self.r[self.pos] = s, a, r
        self.s2[self.pos], self.done[self.pos] = s2, done
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _update(self) -> None:
        if self.size < self.cfg.batch_size:
            return
        idx = torch.randint(0, self.size, (self.cfg.batch_size,), generator=self.gen).numpy()
        s, a, r = (torch.as_tensor(v[idx]) for v in (self.s, self.a, self.r))
        s2, done = torch.as_tensor(self.s2[idx]), torch.as_tensor(self.done[idx])
        with torch.no_grad():
            target = r + self.cfg.discount * (1 - done) * self.critic_t(s2, self.actor_t(s2))
        loss_c = nn.functional.mse_loss(self.critic(s, a), target)
        self.opt_c.zero_grad()
        loss_c.backward()
        self.opt_c.step()
        loss_a = -self.critic(s, self.actor(s)).mean()
        self.opt_a.zero_grad()
        loss_a.backward()
        self.opt_a.step()
        for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
            for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                pt.data.mul_(1 - self.cfg.tau).add_(self.cfg.tau * p.data)

    # ----- resume
    def tensors(self) -> dict[str, torch.Tensor]:
        """Everything as tensors (for safetensors): networks, optimizers' moments, replay."""
        out: dict[str, torch.Tensor] = {}
        for prefix, net in (("actor", self.actor), ("critic", self.critic),
                            ("actor_t", self.actor_t), ("critic_t", self.critic_t)):
            for k, v in net.state_dict().items():
                out[f"{prefix}.{k}"] = v.detach().clone()
        for prefix, opt in (("opt_a", self.opt_a), ("opt_c", self.opt_c)):
            for i, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    out[f"{prefix}.{i}.{k}"] = torch.as_tensor(v).clone()
        for k in ("s", "a", "r", "s2", "done"):
            out[f"replay.{k}"] = torch.from_numpy(getattr(self, k).copy())
        out["gen"] = self.gen.get_state()
        return out

    def scalars(self) -> dict:
        return {"size": self.size, "pos": self.pos, "baseline": self.baseline,
                "rng": self.rng.bit_generator.state}

    def load(self, tensors: dict[str, torch.Tensor], scalars: dict) -> None:
        for prefix, net in (("actor", self.actor), ("critic", self.critic),
                            ("actor_t", self.actor_t), ("critic_t", self.critic_t)):
            net.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items()
                                 if k.startswith(prefix + ".")})
        for prefix, opt in (("opt_a", self.opt_a), ("opt_c", self.opt_c)):
            sd = opt.state_dict()
            state: dict[int, dict] = {}
            for k, v in tensors.items():
                if k.startswith(prefix + "."):
                    _, i, name = k.split(".", 2)
                    state.setdefault(int(i), {})[name] = v.clone()
            sd["state"] = state
            opt.load_state_dict(sd)
        for k in ("s", "a", "r", "s2", "done"):
            getattr(self, k)[...] = tensors[f"replay.{k}"].numpy()
        self.gen.set_state(tensors["gen"])
        self.size, self.pos, self.baseline = scalars["size"], scalars["pos"], scalars["baseline"]
        self.rng.bit_generator.state = scalars["rng"]
