import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.models import ModelCard, get_model, save_checkpoint
from robustq.models.train import TrainConfig
from robustq.quant import get_policy, uniform_policy
from robustq.quant.checkpoint import load_model
from robustq.quant.defensive import error_amplification, lipschitz_penalty, orthogonality_matrix
from robustq.quant.finetune import quantize_and_finetune


class Single(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer


def test_regularizer_is_zero_for_orthogonal_weights_and_positive_otherwise():
    fc = nn.Linear(6, 4, bias=False)                       # wide: rows orthonormal
    q, _ = torch.linalg.qr(torch.randn(6, 4))
    with torch.no_grad():
        fc.weight.copy_(q.T)
    assert lipschitz_penalty(Single(fc), 1.0).item() == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        fc.weight.mul_(1.1)
    assert lipschitz_penalty(Single(fc), 1.0).item() > 0.1


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (4, 2, 3, 3), (32, 2, 1, 1)])
def test_gradient_matches_the_analytic_formula(shape):
    layer = nn.Linear(1, 1) if len(shape) == 2 else nn.Conv2d(1, 1, 1)
    layer.weight = nn.Parameter(torch.randn(*shape, dtype=torch.float64))
    w = layer.weight
    beta = 0.3
    lipschitz_penalty(Single(layer), beta).backward()
    m = w.detach().reshape(shape[0], -1)
    if m.shape[0] < m.shape[1]:      # ||W W^T - I||^2 -> 4 (W W^T - I) W
        analytic = 4 * (m @ m.T - torch.eye(m.shape[0], dtype=m.dtype)) @ m
    else:                            # ||W^T W - I||^2 -> 4 W (W^T W - I)
        analytic = 4 * m @ (m.T @ m - torch.eye(m.shape[1], dtype=m.dtype))
    assert torch.allclose(w.grad.reshape(shape[0], -1), beta * analytic)


def test_conv_weights_reshaped_to_cout_by_cin_k_k():
    assert orthogonality_matrix(torch.randn(16, 8, 3, 3)).shape == (16, 16)   # 16 < 72
    assert orthogonality_matrix(torch.randn(64, 2, 1, 1)).shape == (2, 2)     # 64 > 2


def test_amplification_is_zero_for_identical_inputs_and_positive_otherwise():
    model = get_model("resnet20").eval()
    x = torch.rand(4, 3, 32, 32)
    same = error_amplification(model, x, x.clone())
    assert len(same) == 20 and all(v == 0 for v in same.values())
    moved = error_amplification(model, x, (x + 0.03 * torch.randn_like(x)).clamp(0, 1))
    assert all(v > 0 for v in moved.values())


def test_amplification_leaves_out_samples_whose_clean_output_is_zero():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3, bias=False)).eval()
    x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])   # first output is all zero
    moved = x + torch.tensor([[0.1, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    amp = error_amplification(model, x, moved)
    assert amp["1"] == pytest.approx(0.5)          # only the second sample: ||0.5 w|| / ||w||
    assert np.isnan(error_amplification(model, x[:1], moved[:1])["1"])


@pytest.mark.parametrize("method", ["dorefa", "pact", "lsq"])
def test_qat_learns_and_saves_a_reloadable_quantized_model(tmp_path, tiny_rgb_dataset, method):
    card = ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("dark", "bright"), (8, 8))
    torch.manual_seed(0)
    model = card.build()
    cfg = TrainConfig(arch="small_cnn", epochs=2, batch_size=16, lr=0.05, sigma=0.1,
                      crop_padding=1, seed=0, eval_images=32, channels_last=False)
    policy = uniform_policy(model, 4, 4)
    q, meta = quantize_and_finetune(model, card, policy, method, tiny_rgb_dataset,
                                    tiny_rgb_dataset, cfg, tmp_path, dq_beta=1e-4)
    assert meta["accuracy"]["clean_accuracy"] > 0.9
    loaded, saved = load_model(tmp_path / "model.safetensors")
    assert get_policy(loaded) == policy and saved["quant"]["method"] == method
    x = torch.rand(5, 3, 8, 8)
    assert torch.equal(loaded(x), q(x))


def test_cli_quantize_and_cost(tmp_path, tiny_rgb_dataset):
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "data", per_class=8)
    card = ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("cat", "dog"), (32, 32))
    save_checkpoint(tmp_path / "fp.safetensors", card.build(), card, {"sigma": 0.25})
    run = CliRunner().invoke
    res = run(app, ["quantize", str(tmp_path / "fp.safetensors"), "--data", str(tmp_path / "data"),
                    "--bits", "4/4", "--method", "minmax", "--epochs", "0", "--out",
                    str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    res = run(app, ["cost", str(tmp_path / "q" / "model.safetensors")])
    assert res.exit_code == 0 and "% of FP32" in res.output
    for bad, msg in ((["--bits", "4/4", "--policy", "p.json"], "exactly one of"),
                     (["--bits", "four"], "--bits must look like"),
                     (["--bits", "9/4"], "weight bits must lie in [2, 8]"),
                     (["--bits", "4/4", "--method", "xnor"], "unknown quantization method")):
        res = run(app, ["quantize", str(tmp_path / "fp.safetensors"), "--data",
                        str(tmp_path / "data"), "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 2 and msg in res.output, (bad, res.output)


def test_cli_quantize_with_dq_regularizer_and_bounded_activations(tmp_path):
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "data", per_class=8)
    card = ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("cat", "dog"), (32, 32))
    save_checkpoint(tmp_path / "fp.safetensors", card.build(), card, {"sigma": 0.0})
    args = ["quantize", str(tmp_path / "fp.safetensors"), "--data", str(tmp_path / "data"),
            "--bits", "8/3", "--method", "pact", "--epochs", "1", "--dq-beta", "3e-4",
            "--act-bound", "6", "--out", str(tmp_path / "q")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    loaded, meta = load_model(tmp_path / "q" / "model.safetensors")
    assert meta["card"]["extra"]["act_bound"] == 6.0      # rebuilt with the bound on load
    res = CliRunner().invoke(app, [*args[:-2], "--act-bound", "0", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--act-bound must be > 0" in res.output
