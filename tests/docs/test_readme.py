"""The README's Python section runs as written, at tiny sizes: each size and path below is
replaced in the README's own text (and must be found there, so an edit of the README that
drops one fails here), then the block is executed."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"

# README text -> what the test runs instead (the packaged data; a few images and samples)
TINY = [
    ('"../shared/data/cifar10-jpeg.zip"', '"embedded-cifar10"'),
    ("slice(0, 256)", "slice(0, 16)"),
    ("n=10_000, alpha", "n=200, alpha"),
    # AutoAttack's cascade is tested and timed in tests/bench; here only the call, with a
    # label the model does not predict (AutoAttack attacks only correctly classified points)
    ("(qmodel, x[:8], y[:8])", "(qmodel, x[:1], (qmodel(x[:1]).argmax(1) + 1) % 10)"),
    ("test.images[:100]", "test.images[:4]"),
    ('bits="4/4", epochs=2)', 'bits="4/4", epochs=1, train_images=16, eval_images=8)'),
    ("CertifyConfig(n=10_000, max_images=500)",
     "CertifyConfig(n0=10, n=50, batch_size=50, chunk=50, max_images=2, skip=100)"),
    ("budget=1.5625, episodes=40)", "budget=1.5625, episodes=2, warmup=1, finetune_images=64, "
     "holdout_images=16, cert_images=2, n=100, n_p=50)"),
    ("test_images=500, test_n=10_000", "test_images=2, test_n=100"),
    ("images=1000)", "images=4, attack_images=2, autoattack_images=0, finetune_images=64, "
     "corruptions=('fog',), severities=(1,), families=('natural', 'adversarial'), "
     "linf_eps=(2 / 255,), l2_eps=())"),
    ('"runs/', '"{tmp}/runs/'),
    ('"report.html"', '"{tmp}/report.html"'),
]


def python_section() -> str:
    text = README.read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    return block


@pytest.mark.parametrize("old,new", TINY)
def test_every_tiny_substitution_matches_the_readme(old, new):
    assert old in python_section(), f"the README no longer says {old!r}"


def test_readme_python_section_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(README.parent)                 # the README's paths (zoo/...) are relative
    code = python_section()
    for old, new in TINY:
        code = code.replace(old, new.replace("{tmp}", str(tmp_path)))
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    assert 0 < scope["model_cost"](scope["model"], scope["policy"], (3, 32, 32)).bitops_percent < 5
    assert scope["final"]["images"] == 2 and (tmp_path / "report.html").stat().st_size > 10_000
    assert scope["summary"]["images"] == 2 and scope["q44"].bitops_percent < 5
