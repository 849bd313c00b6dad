"""ONNX export: round trip (agreement, metadata), int8 kernels, refused inputs, certification of
the deployed file (plain and incremental)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")

from robustq.cli.main import app  # noqa: E402
from robustq.data import load_dataset  # noqa: E402
from robustq.models import ModelCard, save_checkpoint  # noqa: E402
from robustq.quant import quantize  # noqa: E402
from robustq.quant.checkpoint import load_model, save_quantized  # noqa: E402
from robustq.quant.export import agreement, export_onnx  # noqa: E402
from robustq.quant.layers import quantizable_layers  # noqa: E402
from robustq.quant.policy import Policy  # noqa: E402
from robustq.utils.errors import RobustqError  # noqa: E402
from robustq.utils.io import file_sha256  # noqa: E402
from tests.conftest import write_image_folder  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    write_image_folder(root / "data", classes=("a", "b", "c", "d"), per_class=16)
    card = ModelCard("resnet20", 4, 3, (0.5,) * 3, (0.25,) * 3, ("a", "b", "c", "d"), (32, 32))
    torch.manual_seed(0)
    fp = card.build().eval()
    for m in fp.modules():                 # BatchNorm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(-1.5, 1.5)         # negative gammas too
            m.bias.data.uniform_(-0.2, 0.2)
    save_checkpoint(root / "fp.safetensors", fp, card, {"sigma": 0.25})
    x, _ = load_dataset(root / "data", "test").tensors()
    noisy = x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    return root, card, fp, noisy


def quantized(setup, method: str, bits: int, first_input: int | None = None):
    root, card, fp, noisy = setup
    layers = list(quantizable_layers(fp))
    policy = Policy({n: (bits, bits if (i or first_input is None) else first_input)
                     for i, n in enumerate(layers)})
    q = quantize(fp, policy, method, calibration=[noisy[:32]]).eval()
    path = root / f"{method}{bits}.safetensors"
    save_quantized(path, q, card, {"sigma": 0.25})
    return q, path, policy


@pytest.mark.parametrize("method,bits", [("lsq", 4), ("lsq", 8), ("lsq_pc", 4), ("pact", 4),
                                         ("minmax", 2)])
def test_round_trip_agrees_and_keeps_the_metadata(setup, tmp_path, method, bits):
    q, path, policy = quantized(setup, method, bits)
    info = export_onnx(path, tmp_path / "m.onnx")
    deployed, meta = load_model(tmp_path / "m.onnx")
    rate = agreement(q, deployed, setup[3])
    assert rate >= 0.95, rate            # integer rounding moves a few boundary values
    assert Policy.from_json(meta["quant"]["policy"]) == policy
    assert meta["quant"]["method"] == method and meta["sigma"] == 0.25
    assert meta["source"]["sha256"] == file_sha256(path) == info["source"]["sha256"]
    assert info["integer_clips"] == (0 if bits == 8 else len(policy))
    assert info["int8_weights"] == len(policy)         # stored as integers
    assert (tmp_path / "m.onnx").stat().st_size < 0.5 * path.stat().st_size


def test_fp_export_and_int8_kernels(setup, tmp_path):
    import onnxruntime as ort

    root, _, fp, noisy = setup
    export_onnx(root / "fp.safetensors", tmp_path / "fp.onnx")
    assert agreement(fp, load_model(tmp_path / "fp.onnx")[0], noisy) == 1.0
    _, path, _ = quantized(setup, "lsq", 4)
    export_onnx(path, tmp_path / "q.onnx")
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "q.opt.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(tmp_path / "q.onnx"), opts, providers=["CPUExecutionProvider"])
    import onnx

    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.opt.onnx")).graph.node]
    assert ops.count("QLinearConv") >= 9         # every block's first conv runs in int8


def test_unexportable_grids_are_refused(setup, tmp_path):
    _, path, _ = quantized(setup, "dorefa", 8, first_input=32)   # odd levels -255..255
    with pytest.raises(RobustqError, match="not int8"):
        export_onnx(path, tmp_path / "x.onnx")
    _, path, _ = quantized(setup, "dorefa", 4, first_input=4)   # signed input, zero n/2
    with pytest.raises(RobustqError, match="non-integer zero point"):
        export_onnx(path, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    res = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "x.onnx")])
    assert res.exit_code == 2 and "non-integer zero point" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "x.onnx").exists()
    res = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and ".onnx" in res.output


def test_certify_the_deployed_file_plain_and_incremental(setup, tmp_path):
    root = setup[0]
    _, path, _ = quantized(setup, "lsq", 8)
    res = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "q.onnx"), "--check",
                              "32", "--data", str(root / "data")])
    assert res.exit_code == 0 and "predicts as the checkpoint" in res.output, res.output
    common = ["--data", str(root / "data"), "--n0", "10", "--n", "200", "--skip", "8",
              "--batch", "200", "--chunk", "100"]
    res = runner.invoke(app, ["certify", str(path), "--out", str(tmp_path / "cache"), "--cache",
                              *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["certify", str(tmp_path / "q.onnx"), "--out", str(tmp_path / "irs"),
                              "--incremental", str(tmp_path / "cache"), "--n-p", "100", *common])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "irs" / "run.json").read_text())
    assert run["model"]["engine"] == "onnx" and run["model"]["runtime"] == "onnxruntime"
    assert run["model"]["deployed"]["path"].endswith("q.onnx")
    header = (tmp_path / "irs" / "certify.tsv").read_text().splitlines()[0].split("\t")
    assert "zeta" in header
    res = runner.invoke(app, ["certify", str(tmp_path / "q.onnx"), "--out", str(tmp_path / "p"),
                              *common])
    assert res.exit_code == 0, res.output


def test_certify_engine_onnx_samples_the_deployed_export(setup, tmp_path):
    root = setup[0]
    _, path, _ = quantized(setup, "lsq", 4)
    common = ["--data", str(root / "data"), "--n0", "10", "--n", "100", "--skip", "8",
              "--batch", "100", "--chunk", "100"]
    res = runner.invoke(app, ["certify", str(path), "--out", str(tmp_path / "c"), "--engine",
                              "onnx", *common])
    assert res.exit_code == 0, res.output
    model = json.loads((tmp_path / "c" / "run.json").read_text())["model"]
    assert model["engine"] == "onnx" and model["classifier"] == "deployed"
    assert (tmp_path / "c" / "deployed.onnx").is_file()
    assert model["source"]["sha256"] == file_sha256(path)
    res = runner.invoke(app, ["certify", str(path), "--out", str(tmp_path / "d"), "--engine",
                              "tpu", *common])
    assert res.exit_code == 2 and "--engine" in res.output and not (tmp_path / "d").exists()
    _, bad, _ = quantized(setup, "dorefa", 4, first_input=4)      # not exportable
    res = runner.invoke(app, ["certify", str(bad), "--out", str(tmp_path / "e"), "--engine",
                              "onnx", *common])
    assert res.exit_code == 2 and not (tmp_path / "e").exists(), res.output


def test_static_int8_export_of_an_fp_checkpoint(setup, tmp_path):
    root, _, fp, noisy = setup
    info = export_onnx(root / "fp.safetensors", tmp_path / "int8.onnx", int8_calibration=noisy)
    assert info["int8"]["calibration_images"] == len(noisy)
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    deployed, meta = load_model(tmp_path / "int8.onnx")
    assert meta["int8"]["by"].startswith("onnxruntime")
    assert agreement(fp, deployed, noisy) >= 0.75        # int8 rounding of a random network
    _, qpath, _ = quantized(setup, "lsq", 4)
    with pytest.raises(RobustqError, match="FP checkpoints"):
        export_onnx(qpath, tmp_path / "q8.onnx", int8_calibration=noisy)
    assert not (tmp_path / "q8.onnx").exists()


@pytest.mark.parametrize("engine,classifier", [("torch", "checkpoint"), ("bf16", "bf16"),
                                               ("onnx-int8", "deployed int8")])
def test_certify_records_the_engine_and_the_classifier_it_certifies(setup, tmp_path, engine,
                                                                    classifier):
    root = setup[0]
    res = runner.invoke(app, ["certify", str(root / "fp.safetensors"), "--out",
                              str(tmp_path / "c"), "--engine", engine, "--data",
                              str(root / "data"), "--n0", "10", "--n", "100", "--skip", "8",
                              "--batch", "100"])
    assert res.exit_code == 0, res.output
    model = json.loads((tmp_path / "c" / "run.json").read_text())["model"]
    assert model["engine"] == engine and model["classifier"] == classifier
    assert (tmp_path / "c" / "deployed.onnx").is_file() == engine.startswith("onnx")


def test_onnx_int8_engine_refuses_a_quantized_checkpoint(setup, tmp_path):
    root = setup[0]
    _, path, _ = quantized(setup, "lsq", 4)
    res = runner.invoke(app, ["certify", str(path), "--out", str(tmp_path / "c"), "--engine",
                              "onnx-int8", "--data", str(root / "data")])
    assert res.exit_code == 2 and "onnx-int8" in res.output and not (tmp_path / "c").exists()


def test_export_int8_command(setup, tmp_path):
    root = setup[0]
    res = runner.invoke(app, ["export", str(root / "fp.safetensors"), "--out",
                              str(tmp_path / "m.onnx"), "--int8", "--data", str(root / "data"),
                              "--check", "16"])
    assert res.exit_code == 0, res.output
    assert "predicts as the checkpoint" in res.output
    assert load_model(tmp_path / "m.onnx")[1]["int8"]["calibration_images"] == 64
    _, path, _ = quantized(setup, "lsq", 4)
    res = runner.invoke(app, ["export", str(path), "--out", str(tmp_path / "q.onnx"), "--int8",
                              "--data", str(root / "data")])
    assert res.exit_code == 2 and "--int8" in res.output and not (tmp_path / "q.onnx").exists()


def test_one_loader_for_fp_quantized_and_deployed_models(setup, tmp_path):
    import robustq
    from robustq.models import load_checkpoint

    root, card, fp, noisy = setup
    _, qpath, policy = quantized(setup, "lsq", 4)
    export_onnx(qpath, tmp_path / "q.onnx")
    fp_l, q_l, d_l = (robustq.load(p) for p in (root / "fp.safetensors", qpath,
                                                tmp_path / "q.onnx"))
    assert (fp_l.method, fp_l.policy, fp_l.deployed) == (None, None, False)
    assert q_l.method == "lsq" and q_l.policy == policy and not q_l.deployed
    assert d_l.deployed and d_l.method == "lsq" and d_l.sigma == 0.25
    assert q_l.input_shape == (3, 32, 32) and q_l.card == card
    assert q_l.path.is_absolute() and q_l.sha256 == file_sha256(qpath)
    assert agreement(q_l.model, d_l.model, noisy) > 0.9
    with pytest.raises(RobustqError, match="robustq.load"):
        load_checkpoint(qpath)


def test_auto_engine_is_the_fastest_that_keeps_the_classifier(setup):
    from robustq.certify.rundir import sampled_classifier
    from robustq.quant.engines import COMPILE_FROM_SAMPLES, auto_engine

    fp = setup[2]
    q, _, _ = quantized(setup, "lsq", 4)
    assert auto_engine(fp, COMPILE_FROM_SAMPLES) == "onnx"
    assert auto_engine(q, COMPILE_FROM_SAMPLES) == "compile"      # onnx: another classifier
    assert auto_engine(fp, COMPILE_FROM_SAMPLES - 1) == auto_engine(q, 10) == "torch"
    legacy = {"checkpoint": "/m", "engine": "torch (frozen, traced/compiled)"}
    now = {"checkpoint": "/m", "engine": "onnx", "classifier": "checkpoint",
           "runtime": "onnxruntime", "deployed": {"path": "/run/deployed.onnx"},
           "source": {"sha256": "ab"}}
    assert sampled_classifier(legacy) == sampled_classifier(now)      # a resume is accepted
    assert sampled_classifier({**now, "classifier": "deployed"}) != sampled_classifier(legacy)
