import numpy as np
import torch

from robustq.search.ddpg import DDPGAgent, DDPGConfig, truncated_normal


def test_truncated_normal_stays_in_range_and_centres():
    rng = np.random.default_rng(0)
    draws = np.array([truncated_normal(rng, 0.3, 0.05) for _ in range(2000)])
    assert draws.min() >= 0 and draws.max() <= 1
    assert abs(draws.mean() - 0.3) < 0.01
    wide = np.array([truncated_normal(rng, 0.95, 0.5) for _ in range(2000)])
    assert wide.min() >= 0 and wide.max() <= 1 and wide.mean() < 0.95


def run_episodes(agent, episodes, start=0):
    out = []
    states = np.random.default_rng(5).random((6, 4)).astype(np.float32)
    for ep in range(start, start + episodes):
        acts = np.array([agent.act(s, ep) for s in states], np.float32)
        reward = float(acts.mean())
        agent.observe_episode(states, acts[:, None], reward, update=ep >= agent.cfg.warmup_episodes)
        out.append(acts)
    return np.stack(out)


def test_state_round_trip_continues_exactly():
    cfg = DDPGConfig(hidden=16, batch_size=8, warmup_episodes=2)
    a = DDPGAgent(4, 64, cfg, seed=3)
    first = run_episodes(a, 4)
    tensors, scalars = a.tensors(), a.scalars()
    rest = run_episodes(a, 3, start=4)
    b = DDPGAgent(4, 64, cfg, seed=99)          # another seed: everything comes from the state
    b.load({k: v.clone() for k, v in tensors.items()}, scalars)
    np.testing.assert_array_equal(run_episodes(b, 3, start=4), rest)
    assert first.shape == (4, 6)


def test_actor_learns_towards_rewarded_actions():
    cfg = DDPGConfig(hidden=32, batch_size=32, warmup_episodes=5, lr_actor=1e-3)
    agent = DDPGAgent(4, 2048, cfg, seed=0)
    states = np.random.default_rng(1).random((8, 4)).astype(np.float32)
    for ep in range(60):            # reward = mean action: the actor should push actions up
        acts = np.array([agent.act(s, ep) for s in states], np.float32)
        agent.observe_episode(states, acts[:, None], float(acts.mean()), update=ep >= 5)
    with torch.no_grad():
        assert agent.actor(torch.as_tensor(states)).mean() > 0.6


def test_exploration_sigma_decays_per_learning_episode():
    """After warm-up the action is N(actor mean, sigma0 * decay^k) truncated to [0, 1]: the
    sample spread of many draws at one state matches that sigma (far from the bounds)."""
    cfg = DDPGConfig(hidden=8, warmup_episodes=1, sigma0=0.1, sigma_decay=0.5)
    agent = DDPGAgent(4, 64, cfg, seed=0)
    state = np.zeros(4, np.float32)
    with torch.no_grad():
        mean = float(agent.actor(torch.as_tensor(state[None])).item())
    assert 0.3 < mean < 0.7                         # an untrained sigmoid: far from 0 and 1
    for k, sigma in ((0, 0.1), (2, 0.025)):
        draws = np.array([agent.act(state, 1 + k) for _ in range(4000)])
        assert abs(draws.mean() - mean) < 4 * sigma / np.sqrt(4000)
        assert abs(draws.std() / sigma - 1) < 0.06  # sd of a sample sd: ~1/sqrt(2 x 4000)
