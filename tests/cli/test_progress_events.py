"""Every long phase of the certify, compare, train and quantize commands reports progress
(a counting reporter in place of the terminal's renderer); search, bench, the demo and data
decoding are covered beside their own tests."""

import pytest
from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.utils import progress as progress_mod
from robustq.utils.progress import CountingProgress

runner = CliRunner()
CKPT = "src/robustq/embedded/small_cnn_mnist_sigma0.25.safetensors"


@pytest.fixture
def events(monkeypatch):
    counting = CountingProgress()
    for module in ("certify_cmd", "search_cmd"):
        monkeypatch.setattr(f"robustq.cli.{module}.console_progress", lambda *a, **k: counting)
    monkeypatch.setattr(progress_mod, "_default", [counting])       # phases deep in the stack
    return counting


def test_certify_names_each_image_as_it_goes(events, tmp_path):
    # n0 + n = the batch size: one image per forward batch, so one update per image
    res = runner.invoke(app, ["certify", CKPT, "--max", "3", "--n", "990", "--n0", "10",
                              "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    (label,) = set(events.labels("start"))
    assert "3 images" in label
    assert [e[2] for e in events.events if e[0] == "update"] == [1, 2, 3]


def test_compare_reports_fine_tuning_and_certification(events, tmp_path):
    import json

    pol = tmp_path / "p.json"
    res = runner.invoke(app, ["quantize", CKPT, "--bits", "4/4", "--epochs", "0",
                              "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    from robustq import load

    pol.write_text(json.dumps(load(tmp_path / "q" / "model.safetensors").policy.to_json()))
    res = runner.invoke(app, ["compare", CKPT, str(pol), "--out", str(tmp_path / "cmp"),
                              "--finetune-images", "50", "--holdout-images", "20",
                              "--test-images", "4", "--test-n", "30", "--final-recipe", "none"])
    assert res.exit_code == 0, res.output
    started = events.labels("start")
    assert any(s == "p: fine-tuning (episode recipe, 50 images)" for s in started), started
    assert {s for s in started if "certifying test images" in s} == {
        "FP32: certifying test images (n=30)", "p: certifying test images (n=30)"}


@pytest.mark.parametrize("command", ["train", "quantize"])
def test_training_commands_report_their_final_evaluation(events, tmp_path, command):
    args = (["train", "--epochs", "1", "--max-images", "200"] if command == "train"
            else ["quantize", CKPT, "--bits", "8/8", "--epochs", "1", "--train-images", "200"])
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert any(s.startswith("final evaluation on") for s in events.labels("start"))


def test_training_in_a_log_file_says_where_each_epoch_is():
    import io

    from rich.console import Console

    from robustq.cli.progress import RichTrainReporter

    log = io.StringIO()
    rep = RichTrainReporter(Console(file=log, force_terminal=False, width=200), every_s=0.0)
    rep.start_epoch(1, 3, steps=2)
    rep.step(2.5)
    rep.step(1.25)
    rep.end_epoch({"epoch": 2, "train_loss": 1.9, "train_accuracy": 0.4, "epoch_s": 12.0})
    lines = log.getvalue().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines[:2]] == ["epoch 2/3 step 1/2 (loss 2.500)",
                                                         "epoch 2/3 step 2/2 (loss 1.250)"]
    assert lines[2] == "epoch 2 | loss 1.9000 | train acc 0.4000 | 12s"
    quiet = io.StringIO()
    rep = RichTrainReporter(Console(file=quiet, force_terminal=False), every_s=3600.0)
    rep.start_epoch(0, 1, steps=5)
    for _ in range(5):
        rep.step(1.0)
    assert quiet.getvalue() == ""                  # nothing within the interval
