import json

import pytest
from typer.testing import CliRunner

from robustq.cli.main import app
from tests.conftest import write_image_folder, write_mnist

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_then_evaluate_on_an_image_folder(tmp_path):
    write_image_folder(tmp_path / "data", per_class=8)
    res = run("train", "--data", tmp_path / "data", "--arch", "resnet20", "--epochs", "1",
              "--batch-size", "8", "--sigma", "0.25", "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "run" / "model.safetensors"
    res = run("evaluate", ckpt, "--data", tmp_path / "data", "--out", tmp_path / "ev.json")
    assert res.exit_code == 0, res.output
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["results"]["n"] == 16 and ev["results"]["sigma"] == 0.25
    assert ev["provenance"]["seed"] == 0 and ev["provenance"]["git_commit"]


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "/no/such/dir", "--out", "{tmp}/r"], "no such file or directory"),
    (["train", "--arch", "vgg99", "--out", "{tmp}/r", "--data", "{mnist}"], "unknown model"),
    (["train", "--sigma", "-1", "--out", "{tmp}/r", "--data", "{mnist}"], "sigma must"),
    (["train", "--epochs", "0", "--out", "{tmp}/r", "--data", "{mnist}"], "epochs must"),
    (["evaluate", "{tmp}/missing.safetensors"], "checkpoint not found"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    write_mnist(tmp_path / "mnist", gz=True)
    args = [a.format(tmp=tmp_path, mnist=tmp_path / "mnist") for a in args]
    res = run(*args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_evaluate_refuses_mismatched_classes(tmp_path):
    write_image_folder(tmp_path / "two", per_class=4)
    assert run("train", "--data", tmp_path / "two", "--arch", "small_cnn", "--epochs", "1",
               "--out", tmp_path / "run").exit_code == 0
    write_image_folder(tmp_path / "three", classes=("a", "b", "c"), per_class=2)
    res = run("evaluate", tmp_path / "run" / "model.safetensors", "--data", tmp_path / "three")
    assert res.exit_code == 2 and "3 classes but" in res.output


def test_models_lists_architectures():
    res = run("models")
    assert res.exit_code == 0 and "resnet20" in res.output.split()
