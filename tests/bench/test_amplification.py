"""Defensive Quantization's error amplification called from Python with its config."""

import json

import pytest

from robustq.bench.amplification import AmplificationJob, run_amplification
from robustq.models.train import TrainConfig
from robustq.quant.workflow import QuantizeJob, TrainJob, run_quantize, run_train
from robustq.utils.errors import RobustqError


def test_amplification_of_an_fp_and_a_quantized_model(tmp_path):
    fp = run_train(TrainJob(data="embedded", train=TrainConfig(
        epochs=1, batch_size=32, max_images=64, eval_images=16, sigma=0.0)), tmp_path / "fp")
    q = run_quantize(QuantizeJob(checkpoint=str(fp.checkpoint), data="embedded", bits="2/2",
                                 epochs=0), tmp_path / "q")
    job = AmplificationJob(checkpoints=(str(fp.checkpoint), str(q.checkpoint)), data="embedded",
                           attack="fgsm", eps=8 / 255, images=8)
    lines: list[str] = []
    result = run_amplification(job, tmp_path / "amp.json", say=lines.append)
    assert json.loads((tmp_path / "amp.json").read_text())["models"] == result["models"]
    layers = result["models"][str(fp.checkpoint)]["layers"]
    assert len(layers) >= 3 and all(v > 0 for v in layers.values())   # a perturbation moves every layer
    assert result["models"][str(q.checkpoint)]["quant"]["method"] == "lsq" and len(lines) == 2


@pytest.mark.parametrize("bad,match", [({"checkpoints": ()}, "at least one"),
                                       ({"eps": 0.0}, "eps"), ({"attack": "cw"}, "cw"),
                                       ({"images": 0}, "images")])
def test_amplification_job_refuses_bad_values(bad, match):
    with pytest.raises(RobustqError, match=match):
        AmplificationJob(**{"checkpoints": ("m.safetensors",), **bad})
