import json

import pytest
import torch
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


def test_amplification_of_fp_and_quantized(tmp_path):
    from robustq.models import ModelCard
    from robustq.quant import quantize, uniform_policy
    from robustq.quant.checkpoint import load_model, save_quantized

    write_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=4)
    assert run("train", "--data", tmp_path / "data", "--arch", "small_cnn", "--epochs", "1",
               "--act-bound", "4", "--out", tmp_path / "run").exit_code == 0
    fp_path = tmp_path / "run" / "model.safetensors"
    fp, meta = load_model(fp_path)
    assert meta["card"]["extra"] == {"act_bound": 4.0}
    q = quantize(fp, uniform_policy(fp, 4, 4), "minmax", calibration=torch.rand(8, 3, 32, 32))
    save_quantized(tmp_path / "q.safetensors", q, ModelCard.from_json(meta["card"]))
    res = run("amplification", fp_path, tmp_path / "q.safetensors", "--data", tmp_path / "data",
              "--attack", "fgsm", "--eps", "8/255", "--images", "6", "--out", tmp_path / "amp.json")
    assert res.exit_code == 0, res.output
    amp = json.loads((tmp_path / "amp.json").read_text())
    assert amp["attack"] == "fgsm-linf-8/255" and len(amp["models"]) == 2
    for m in amp["models"].values():
        assert list(m["layers"]) == ["conv1", "conv2", "conv3", "fc1", "fc2"]
        assert all(v > 0 for v in m["layers"].values())


def test_top_level_help_is_answered_without_importing_the_commands():
    import subprocess
    import sys

    from robustq.cli import main as entry

    code = ("import sys; sys.argv = ['robustq', '--help']; from robustq.cli.main import main; "
            "main(); print('torch' in sys.modules, 'robustq.cli.app' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "Commands:" in out and out.strip().endswith("False False")
    # the table says what the commands' own docstrings say, in the same order
    real = {c.name: (c.callback.__doc__ or "").strip().splitlines()[0]
            for c in entry.app.registered_commands}
    assert list(real.items()) == list(entry.OVERVIEW.items())


def test_every_option_of_every_command_has_help_text():
    import typer.main

    from robustq.cli.main import app

    group = typer.main.get_command(app)
    bare = [(name, p.name) for name, cmd in group.commands.items() for p in cmd.params
            if not getattr(p, "help", None)]
    assert bare == []


def test_help_keeps_square_brackets_that_rich_would_read_as_markup():
    res = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "pip install 'robustq[ray]'" in res.output


def test_plain_progress_lines_name_the_work_in_progress_without_flooding():
    import io
    import re

    from rich.console import Console

    from robustq.cli.progress import LineProgress, console_progress

    buf = io.StringIO()
    out = Console(file=buf, width=200)
    assert isinstance(console_progress(out), LineProgress)           # not a terminal
    progress = LineProgress(out, every_s=3600)
    with progress.phase("episodes", total=3) as ph:
        for k in range(3):
            ph.update(label=f"episode {k + 1}/3: fine-tuning")
            for _ in range(50):                                     # frequent updates: quiet
                ph.update(acr=0.5)
            ph.advance()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and all(re.match(r"\d\d:\d\d:\d\d ", ln) for ln in lines)
    assert "episode 2/3: fine-tuning 1/3" in lines[1] and lines[-1].split(" ", 1)[1].startswith(
        "finished: episode 3/3: fine-tuning 3/3")
    with progress.phase("refused while starting"):               # no update: says nothing
        pass
    assert len(buf.getvalue().splitlines()) == 4


def test_nested_phases_share_one_live_display():
    import io

    from rich.console import Console

    from robustq.cli.progress import BarProgress, console_progress

    out = Console(file=io.StringIO(), force_terminal=True, width=120)
    outer, inner = console_progress(out), console_progress(out)
    assert outer is inner and isinstance(outer, BarProgress)
    with outer.phase("final model: certifying", total=2) as ph:
        with inner.phase("decoding test images", total=3) as dec:    # no LiveError
            dec.update(3)
        ph.advance()
