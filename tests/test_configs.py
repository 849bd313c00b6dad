"""Every config is data: it survives a JSON round trip unchanged (values that are not the
defaults, so the trip cannot pass by falling back to them) and refuses unknown keys."""

import json

import pytest

from robustq.bench.amplification import AmplificationJob
from robustq.bench.runner import BenchConfig
from robustq.certify.run import CertifyConfig
from robustq.certify.workflow import CertifyJob
from robustq.models.checkpoint import ModelCard
from robustq.models.train import TrainConfig
from robustq.quant.workflow import QuantizeJob, TrainJob
from robustq.report.demo import DemoConfig
from robustq.search.compare import CompareConfig
from robustq.search.ddpg import DDPGConfig
from robustq.search.evaluate import episode_config
from robustq.search.search import SearchConfig
from robustq.search.shared import SharedJob
from robustq.utils.errors import RobustqError

CONFIGS = [
    CertifyConfig(sigma=0.5, n0=50, n=2000, alpha=0.01, skip=3, max_images=7, offset=2, seed=4,
                  radii=(0.1, 0.2), n_p=300, extra={"note": "x"}),
    ModelCard(arch="resnet20", num_classes=10, in_channels=3, mean=(0.4, 0.5, 0.6),
              std=(0.2, 0.3, 0.25), classes=tuple("abcdefghij"), input_size=(28, 28),
              extra={"act_bound": 6.0}),
    DDPGConfig(hidden=64, warmup_episodes=5, sigma0=0.3),
    DemoConfig(data="embedded", episodes=3, warmup=1, corruptions=("fog",), bench_bits=(2, 8)),
    TrainConfig(arch="resnet20", epochs=3, sigma=0.12, max_images=100, distill=0.5,
                consistency=10.0, consistency_copies=4, consistency_entropy=0.25),
    episode_config(0.25, lr=2e-3, seed=3),
    SearchConfig(checkpoint="m.safetensors", data="embedded", strategy="haq", budget=2.5,
                 episodes=9, warmup=3, shared="s.safetensors", bn_images=256),
    SharedJob(checkpoint="m.safetensors", budgets=(1.0, 2.0), b_max=6, uniform_share=0.5,
              epochs=2, train_images=300, sigma=0.5),
    CompareConfig(checkpoint="m.safetensors", candidates=("a.json", "b.safetensors"),
                  data="embedded", finetune_images=100, test_images=20, test_n=500,
                  fp_run="runs/fp"),
    BenchConfig(checkpoint="m.safetensors", data="embedded", methods=("lsq",), bits=(2, 4),
                images=10, attack_images=5, autoattack_images=2, corruptions=("fog",),
                severities=(1, 5)),
    TrainJob(data="embedded-cifar10", train=TrainConfig(arch="resnet20", epochs=4, crop_padding=3),
             act_bound=6.0, dq_beta=0.01, device="cpu"),
    QuantizeJob(checkpoint="m.safetensors", bits="3/5", first_last=0, method="pact", epochs=3,
                train_images=200, sigma=0.5, distill=0.5, distill_temperature=2.0,
                consistency=5.0, consistency_copies=3, consistency_entropy=0.0),
    CertifyJob(checkpoint="q.onnx", split="train", certify=CertifyConfig(n=500, n_p=50, seed=3),
               incremental="runs/fp", engine="onnx"),
    AmplificationJob(checkpoints=("a.safetensors", "b.safetensors"), attack="fgsm", norm="l2",
                     eps=0.5, images=20),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_round_trips_through_json(cfg):
    text = json.dumps(cfg.to_json())
    again = type(cfg).from_json(json.loads(text))
    assert again == cfg and json.dumps(again.to_json()) == text
    assert again != type(cfg).from_json({**json.loads(text), **_one_changed(cfg)})


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_config_refuses_unknown_keys(cfg):
    if isinstance(cfg, ModelCard):      # checkpoint metadata: newer files still load
        assert ModelCard.from_json({**cfg.to_json(), "bogus": 1}) == cfg
        return
    with pytest.raises(RobustqError, match="bogus"):
        type(cfg).from_json({**cfg.to_json(), "bogus": 1})


def _one_changed(cfg) -> dict:
    """One field set to another valid value: the first number, plus one (in a nested config
    where the top level has none, e.g. a job's TrainConfig or CertifyConfig)."""
    return _changed(cfg.to_json(), type(cfg).__name__)


def _changed(d: dict, name: str) -> dict:
    for k, v in d.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {k: v + 1}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            return {k: {**v, **_changed(v, f"{name}.{k}")}}
    raise AssertionError(f"{name} has no number field")
