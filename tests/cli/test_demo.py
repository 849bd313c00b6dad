import json

from typer.testing import CliRunner

from robustq.cli.main import app
from robustq.data import load_dataset
from robustq.data.embedded import embedded_dir
from robustq.models import load_checkpoint
from robustq.models.evaluate import evaluate


def test_demo_runs_on_the_embedded_default(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--epochs", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["trained"]["clean_accuracy"] > 0.9        # one epoch on real digits
    assert summary["zoo"]["noisy_accuracy"] >= 0.97
    assert summary["provenance"]["config"]["epochs"] == 1


def test_shipped_embedded_model_meets_its_card():
    model, meta = load_checkpoint(embedded_dir() / "small_cnn_mnist_sigma0.25.safetensors")
    card = json.loads((embedded_dir() / "small_cnn_mnist_sigma0.25.json").read_text())
    res = evaluate(model, load_dataset("embedded", "test"), sigma=0.25, seed=0)
    assert res == card["test_accuracy"] == meta["accuracy"]     # reproducible to the image
    assert res["clean_accuracy"] >= 0.98 and res["noisy_accuracy"] >= 0.97
