import json

from robustq.data import load_dataset
from robustq.data.embedded import embedded_dir
from robustq.models import load_checkpoint
from robustq.models.evaluate import evaluate


def test_shipped_embedded_model_meets_its_card():
    model, meta = load_checkpoint(embedded_dir() / "small_cnn_mnist_sigma0.25.safetensors")
    card = json.loads((embedded_dir() / "small_cnn_mnist_sigma0.25.json").read_text())
    res = evaluate(model, load_dataset("embedded", "test"), sigma=0.25, seed=0)
    assert res == card["test_accuracy"] == meta["accuracy"]     # reproducible to the image
    assert res["clean_accuracy"] >= 0.98 and res["noisy_accuracy"] >= 0.97
