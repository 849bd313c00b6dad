"""``--config FILE``: every command takes its options from a JSON or YAML file; flags win."""

import json

import pytest
import typer.main
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.quant.checkpoint import load_model
from tests.conftest import write_image_folder

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_command_accepts_a_config_file():
    group = typer.main.get_command(app)
    without = [name for name, cmd in group.commands.items() if name != "models"
               and "config" not in {p.name for p in cmd.params}]
    assert without == []


def test_options_come_from_the_file_and_flags_override_them(tmp_path):
    write_image_folder(tmp_path / "data", classes=("a", "b"), per_class=3)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {tmp_path / 'data'}\narch: small_cnn\nepochs: 2\nseed: 5\n"
                   f"out: {tmp_path / 'run'}\n")
    res = run("train", "--config", cfg, "--epochs", "1")
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "run" / "model.safetensors"
    train_config = load_model(ckpt)[1]["train_config"]
    assert (train_config["arch"], train_config["seed"], train_config["epochs"]) == ("small_cnn", 5, 1)
    (tmp_path / "cost.json").write_text(json.dumps({"checkpoint": str(ckpt), "bits": 4}))
    four, two = run("cost", "--config", tmp_path / "cost.json"), \
        run("cost", "--config", tmp_path / "cost.json", "--bits", "2")
    assert four.exit_code == two.exit_code == 0, four.output + two.output
    assert "1.818% of FP32" not in four.output      # ResNet-20's figure: this is small_cnn
    assert four.output != two.output and "│      4 │      4 │" in four.output \
        and "│      2 │      2 │" in two.output


@pytest.mark.parametrize("name, text, message", [
    ("c.json", '{"epochs": 1, "nope": 2}', "unknown option 'nope' for this command (valid: "),
    ("c.json", '{"epochs": 1, "epochs": 2}', "duplicate key 'epochs'"),
    ("c.yaml", "epochs: [1\n", "not valid YAML"),
    ("c.json", "[1, 2]", "expected a mapping of option names to values, got list"),
    ("c.json", b"{\"arch\": \"\xff\"}", "not UTF-8 text"),
])
def test_bad_config_files_are_one_line_and_nothing_is_written(tmp_path, name, text, message):
    write_image_folder(tmp_path / "data", classes=("a", "b"), per_class=3)
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    res = run("train", "--config", path, "--data", tmp_path / "data", "--out", tmp_path / "run")
    assert res.exit_code == 2 and message in res.output and f"--config {path}" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
