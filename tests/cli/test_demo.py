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


def test_shipped_cifar10_model_is_the_zoo_file_and_agrees_with_its_card():
    import hashlib
    from pathlib import Path

    import numpy as np

    from robustq.data.embedded import embedded_set

    spec = embedded_set("embedded-cifar10")
    path = embedded_dir() / spec.model
    card = json.loads(path.with_suffix(".json").read_text())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["sha256"]
    zoo = Path(__file__).parents[2] / "zoo" / spec.model
    if zoo.is_file():
        assert zoo.read_bytes() == path.read_bytes()         # the zoo's v1 model, unchanged
    model, _ = load_checkpoint(path)
    test = load_dataset("embedded-cifar10", "test")
    res = evaluate(model, test, sigma=0.25, seed=0)
    # 300 stratified test images against the card's 10,000: within 3.5 binomial std errors
    for key in ("clean_accuracy", "noisy_accuracy"):
        p = card["test_accuracy"][key]
        assert abs(res[key] - p) < 3.5 * np.sqrt(p * (1 - p) / len(test)), (key, res[key], p)
