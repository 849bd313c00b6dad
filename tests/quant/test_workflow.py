"""train and quantize called from Python with one config each, no CLI: what they write (the
checkpoint, run.json with the inputs resolved and hashed), resume, and refusals before writing."""

import json

import pytest
import torch
import torch.nn.functional as F

from robustq.models import ModelCard, load_checkpoint
from robustq.models.train import TrainConfig
from robustq.quant.checkpoint import load
from robustq.quant.workflow import QuantizeJob, TrainJob, run_quantize, run_train
from robustq.utils.errors import RobustqError
from robustq.utils.io import file_sha256

TINY = TrainConfig(epochs=1, batch_size=32, max_images=64, eval_images=16, sigma=0.25)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("fp")
    job = TrainJob(data="embedded", train=TINY)
    return job, out, run_train(job, out)


def test_train_writes_a_checkpoint_and_a_complete_run_record(trained):
    job, out, done = trained
    record = json.loads((out / "run.json").read_text())
    assert done.checkpoint == out / "model.safetensors" and done.checkpoint.is_file()
    assert record["kind"] == "train" and record["status"] == "complete" and record["schema"] == 1
    # the recorded config is the job with the augmentation made explicit (MNIST: 2 px, no flips)
    assert record["config"]["train"]["crop_padding"] == 2 and record["config"]["train"]["flip"] is False
    assert TrainJob.from_json(record["config"]).train.epochs == job.train.epochs
    assert record["results"]["accuracy"] == done.meta["accuracy"]
    assert done.meta["train_config"]["max_images"] == 64


def test_train_refuses_another_job_in_its_directory_before_writing(trained):
    _, out, _ = trained
    before = (out / "run.json").read_text()
    with pytest.raises(RobustqError, match="earlier run"):
        run_train(TrainJob(data="embedded", train=TrainConfig(**{**TINY.to_json(), "lr": 0.05})),
                  out)
    assert (out / "run.json").read_text() == before


def test_quantize_records_its_input_resolved_and_hashed(trained, tmp_path, monkeypatch):
    _, fp_dir, fp = trained
    monkeypatch.chdir(fp_dir)
    job = QuantizeJob(checkpoint="model.safetensors", data="embedded", bits="4/4", epochs=1,
                      train_images=32, eval_images=16, batch_size=32)
    done = run_quantize(job, tmp_path / "q")
    record = json.loads((tmp_path / "q" / "run.json").read_text())
    assert record["kind"] == "quantize" and record["status"] == "complete"
    assert record["inputs"]["checkpoint"] == {"path": str(fp.checkpoint.resolve()),
                                              "sha256": file_sha256(fp.checkpoint)}
    assert done.policy is not None and 0 < done.bitops_percent < 100
    assert load(done.checkpoint).method == "lsq" and QuantizeJob.from_json(record["config"]) == job


@pytest.mark.parametrize("bad,match", [
    ({"bits": "4/4", "policy": "p.json"}, "exactly one"),
    ({"bits": "4/4", "method": "bogus"}, "bogus"),
    ({"bits": "4/4", "epochs": -1}, "epochs"),
    ({"bits": "4/4", "sigma": -0.1}, "sigma"),
    ({"bits": "4/4", "act_bound": 0.0}, "act-bound"),
    ({"bits": "4/4", "consistency": -1.0}, "--consistency "),
    ({"bits": "4/4", "consistency_copies": 1}, "--consistency-copies"),
    ({"bits": "4/4", "consistency_entropy": -0.1}, "--consistency-entropy"),
    ({"bits": "4/4", "precision": "fp16"}, "--precision"),
    ({"bits": "4/4", "quant_kernels": "fused"}, "--quant-kernels"),
])
def test_quantize_job_refuses_bad_values(bad, match):
    with pytest.raises(RobustqError, match=match):
        QuantizeJob(checkpoint="m.safetensors", **bad)


def test_bf16_qat_steps_like_fp32_records_its_precision_and_keeps_float32_weights(trained, tmp_path):
    _, _, fp = trained
    runs = {p: run_quantize(QuantizeJob(checkpoint=str(fp.checkpoint), data="embedded",
                                        bits="4/4", epochs=1, train_images=64, eval_images=16,
                                        batch_size=32, precision=p), tmp_path / p)
            for p in ("fp32", "bf16")}
    done = runs["bf16"]
    assert done.meta["train_config"]["precision"] == "bf16"
    q = load(done.checkpoint)
    assert {t.dtype for t in q.model.state_dict().values() if t.is_floating_point()} == \
        {torch.float32}
    start = load_checkpoint(fp.checkpoint)[0].state_dict()
    fp32 = load(runs["fp32"].checkpoint).model.state_dict()
    weights = [n for n, t in start.items() if n.endswith("weight") and t.ndim > 1]
    for name in weights:     # bf16 moves rounding near grid boundaries: close, not equal
        step_fp32, step_bf16 = fp32[name] - start[name], q.model.state_dict()[name] - start[name]
        assert F.cosine_similarity(step_bf16.flatten(), step_fp32.flatten(), dim=0) > 0.8, name


def test_compiled_quantizer_kernels_train_the_same_model(trained, tmp_path):
    _, _, fp = trained
    models = {k: load(run_quantize(QuantizeJob(checkpoint=str(fp.checkpoint), data="embedded",
                                               bits="4/4", epochs=1, train_images=64,
                                               eval_images=16, batch_size=32, quant_kernels=k),
                                   tmp_path / k).checkpoint).model.state_dict()
              for k in ("eager", "compiled")}
    for name, t in models["eager"].items():       # the steps' gradients differ by rounding only
        assert torch.allclose(t, models["compiled"][name], rtol=1e-4, atol=1e-6), name


def test_post_training_quantization_writes_no_training_state(trained, tmp_path):
    _, _, fp = trained
    done = run_quantize(QuantizeJob(checkpoint=str(fp.checkpoint), data="embedded", bits="8/8",
                                    epochs=0), tmp_path / "ptq")
    assert done.meta["epochs"] == 0 and not (tmp_path / "ptq" / "train_state.safetensors").exists()
    assert json.loads((tmp_path / "ptq" / "run.json").read_text())["status"] == "complete"


def test_a_named_recipe_gives_its_values_and_explicit_ones_win():
    job = QuantizeJob.from_recipe("deploy", checkpoint="m.safetensors", bits="4/4", epochs=1)
    assert (job.epochs, job.distill, job.distill_temperature, job.train_images, job.recipe,
            job.method) == (1, 0.5, 2.0, None, "deploy", "lsq_mse")
    assert QuantizeJob.from_recipe("deploy", checkpoint="m.safetensors", bits="4/4",
                                   method="pact").method == "pact"
    assert QuantizeJob.from_recipe("episode", checkpoint="m.safetensors", bits="4/4").method == "lsq"
    cr = QuantizeJob.from_recipe("deploy-cr", checkpoint="m.safetensors", bits="4/4")
    card = ModelCard("resnet20", 10, 3, (0.5,) * 3, (0.25,) * 3, tuple("abcdefghij"), (32, 32))
    cfg = cr.train_config(card, 0.25)
    assert (cfg.consistency, cfg.copies, cfg.distill, cfg.epochs) == (3.0, 2, 1.0, 4)
    with pytest.raises(RobustqError, match="known: episode, deploy, deploy-cr"):
        QuantizeJob.from_recipe("fast", checkpoint="m.safetensors", bits="4/4")


def test_cli_recipe_fills_the_defaults_and_is_recorded(trained, tmp_path):
    from typer.testing import CliRunner

    from robustq.cli.main import app

    _, _, fp = trained
    runner = CliRunner()
    res = runner.invoke(app, ["quantize", str(fp.checkpoint), "--data", "embedded", "--bits", "8/8",
                              "--recipe", "episode", "--epochs", "0", "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    config = json.loads((tmp_path / "q" / "run.json").read_text())["config"]
    assert (config["recipe"], config["lr"], config["train_images"], config["epochs"]) == \
        ("episode", 1e-3, 2000, 0)                                # --epochs overrides the recipe
    assert load(tmp_path / "q" / "model.safetensors").meta["quant_finetune"]["base"]["recipe"] == \
        "episode"
    deploy = runner.invoke(app, ["quantize", str(fp.checkpoint), "--data", "embedded", "--bits",
                                 "8/8", "--recipe", "deploy", "--epochs", "0", "--out",
                                 str(tmp_path / "d")])
    assert deploy.exit_code == 0, deploy.output                   # the recipe's method fills in
    assert json.loads((tmp_path / "d" / "run.json").read_text())["config"]["method"] == "lsq_mse"
    bad = runner.invoke(app, ["quantize", str(fp.checkpoint), "--bits", "8/8", "--recipe", "fast",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "unknown QAT recipe 'fast'" in bad.output
    assert not (tmp_path / "bad").exists()
