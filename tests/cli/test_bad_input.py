"""Every class of bad input ends in exit 2 with one line on stderr, no traceback, and ``--out``
unchanged (or absent): the classes of the reliability issue, each through the CLI."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from robustq.cli.main import app, main
from robustq.models import ModelCard, save_checkpoint
from tests.conftest import write_image_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    """A 4-class image folder, an FP small CNN (sigma 0.25) and a certification with a cache."""
    root = tmp_path_factory.mktemp("bad")
    write_image_folder(root / "data", classes=("a", "b", "c", "d"), per_class=6)
    card = ModelCard("small_cnn", 4, 3, (0.5,) * 3, (0.25,) * 3, ("a", "b", "c", "d"), (32, 32))
    torch.manual_seed(0)
    save_checkpoint(root / "m.safetensors", card.build(), card, {"sigma": 0.25})
    res = runner.invoke(app, ["certify", str(root / "m.safetensors"), "--out", str(root / "cache"),
                              "--cache", *certify_args(root)])
    assert res.exit_code == 0, res.output
    return root


def certify_args(root: Path) -> list[str]:
    return ["--data", str(root / "data"), "--n0", "10", "--n", "100", "--skip", "3", "--max", "8",
            "--batch", "100", "--chunk", "50"]


def snapshot(path: Path) -> dict[str, bytes] | None:
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"/"
            for p in sorted(path.rglob("*"))}


def refused(args: list[str], out: Path | None, *needles: str) -> str:
    """Run ``robustq ARGS``: exit 2, exactly one line, starting 'error:', naming ``needles``,
    no traceback, and ``out`` unchanged."""
    before = snapshot(out) if out is not None else None
    res = runner.invoke(app, [str(a) for a in args])
    # timestamped progress lines (not a terminal) may precede an error met mid-run
    text = "\n".join(ln for ln in res.output.strip().splitlines()
                     if not re.match(r"\d\d:\d\d:\d\d ", ln))
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert "Traceback" not in res.output and len(text.splitlines()) == 1, (args, res.output)
    assert text.startswith("error:"), text
    for needle in needles:
        assert needle in text, (needle, text)
    if out is not None:
        assert snapshot(out) == before, f"{out} changed"
    return text


def certify(env: Path, out: Path, *extra: str, ckpt: Path | None = None) -> list[str]:
    return ["certify", ckpt or env / "m.safetensors", "--out", out, *certify_args(env), *extra]


# 1. output not writable --------------------------------------------------------------------
def test_out_under_a_regular_file(env, tmp_path):
    (tmp_path / "file").write_text("x")
    refused(certify(env, tmp_path / "file" / "run"), tmp_path / "file", "not a directory")
    refused(["search", env / "m.safetensors", "--out", tmp_path / "file" / "s", "--data",
             env / "data"], tmp_path / "file", "not a directory")


def test_out_naming_a_file_or_a_directory(env, tmp_path):
    (tmp_path / "file").write_text("x")
    refused(certify(env, tmp_path / "file"), tmp_path / "file", "is a file")
    refused(["report", env / "cache", "--out", tmp_path], None, "is a directory")
    refused(["evaluate", env / "m.safetensors", "--data", env / "data", "--out", tmp_path],
            None, "is a directory")


def test_out_not_writable(env, tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else
                        real(p, mode))                   # as a read-only mount answers
    refused(certify(env, tmp_path / "run"), tmp_path, "not writable")


def test_disk_full_mid_run_says_it_resumes(env, tmp_path, monkeypatch):
    real = os.replace

    def full(src, dst):
        if Path(dst).name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    text = refused(certify(env, tmp_path / "run"), None, "summary.json", "no space left",
                   "resumes")
    assert "Errno" not in text
    monkeypatch.setattr(os, "replace", real)
    res = runner.invoke(app, [str(a) for a in certify(env, tmp_path / "run")])
    assert res.exit_code == 0 and (tmp_path / "run" / "summary.json").is_file(), res.output


# 2-3. broken checkpoints ----------------------------------------------------------------------
def rewrite(src: Path, dst: Path, meta: str | None = None, poison: bool = False) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        raw = f.metadata()["robustq"]
    if poison:
        name = next(k for k in sorted(tensors) if tensors[k].is_floating_point())
        tensors[name] = tensors[name].clone()
        tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(dst), metadata={"robustq": raw if meta is None else meta})
    return dst


@pytest.mark.parametrize("meta,needle", [("{not json", "not valid JSON"),
                                         ('{"card": 7}', "no model card"),
                                         ('[1, 2]', "must be a JSON object"),
                                         ('{"card": {"arch": "small_cnn"}}', "invalid model card")])
def test_broken_checkpoint_metadata(env, tmp_path, meta, needle):
    bad = rewrite(env / "m.safetensors", tmp_path / "bad.safetensors", meta)
    refused(certify(env, tmp_path / "run", ckpt=bad), tmp_path / "run", "bad.safetensors", needle)
    refused(["evaluate", bad, "--data", env / "data"], None, needle)
    refused(["cost", bad, "--bits", "4/4"], None, needle)


def test_non_finite_weights_refused_naming_the_tensor(env, tmp_path):
    bad = rewrite(env / "m.safetensors", tmp_path / "nan.safetensors", poison=True)
    text = refused(certify(env, tmp_path / "run", ckpt=bad), tmp_path / "run", "non-finite")
    assert "tensor '" in text
    refused(["evaluate", bad, "--data", env / "data"], None, "non-finite")


# 4. sigma -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "nan", "100", "-1", "0"])
def test_sigma_validated_everywhere(env, tmp_path, value):
    refused(certify(env, tmp_path / "c", "--sigma", value), tmp_path / "c", "sigma")
    refused(["search", env / "m.safetensors", "--out", tmp_path / "s", "--data", env / "data",
             "--sigma", value], tmp_path / "s", "sigma")
    if value != "0":                                   # 0 is a clean evaluation
        refused(["evaluate", env / "m.safetensors", "--data", env / "data", "--sigma", value],
                None, "sigma")


# 5. validation before writing ----------------------------------------------------------------
def test_nothing_written_before_validation(env, tmp_path):
    refused(certify(env, tmp_path / "c", "--gamma", "0.3"), tmp_path / "c", "gamma")
    refused(["search", env / "m.safetensors", "--out", tmp_path / "s", "--data", env / "data",
             "--finetune-images", "1000"], tmp_path / "s", "exceed")
    refused(["search", env / "m.safetensors", "--out", tmp_path / "s", "--data", env / "data",
             "--final-recipe", "long"], tmp_path / "s", "unknown final recipe 'long'")
    refused(["search", env / "m.safetensors", "--out", tmp_path / "s", "--data", env / "data",
             "--explore-sigma", "0"], tmp_path / "s", "explore_sigma must lie in (0, 1]")
    refused(["bench", env / "m.safetensors", "--out", tmp_path / "b", "--data", env / "data",
             "--images", "4", "--finetune-epochs", "0"], tmp_path / "b", "finetune_epochs")
    (tmp_path / "p.json").write_text(json.dumps({"layers": {"nope": {"w": 4, "a": 4}}}))
    refused(["compare", env / "m.safetensors", tmp_path / "p.json", "--out", tmp_path / "cmp",
             "--data", env / "data"], tmp_path / "cmp", "p.json", "unknown layer")


def test_corrected_rerun_into_the_same_out_is_accepted(env, tmp_path):
    out = tmp_path / "s"
    args = ["search", env / "m.safetensors", "--out", out, "--data", env / "data",
            "--strategy", "random", "--episodes", "1", "--warmup", "0", "--budget", "10",
            "--finetune-images", "8", "--holdout-images", "8", "--cert-images", "4",
            "--test-images", "0"]
    refused([*args, "--n-p", "0"], out, "n_p")
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output


# 6. damaged run directories and caches -------------------------------------------------------
def damaged_copy(env: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(env / "cache", tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("damage,needle", [
    (lambda d: (d / "run.json").write_text((d / "run.json").read_text()[:40]), "not valid JSON"),
    (lambda d: (d / "run.json").write_text('{"kind": "certify"}'), "lacks config"),
    (lambda d: (d / "run.json").write_bytes(b"\xff\xfe"), "not UTF-8"),
])
def test_damaged_run_json(env, tmp_path, damage, needle):
    run = damaged_copy(env, tmp_path)
    damage(run)
    refused(certify(env, run, "--cache"), run, "run.json", needle)
    refused(certify(env, tmp_path / "i", "--incremental", run, "--n-p", "20"), tmp_path / "i",
            "run.json", needle)


def edit_row(run: Path, row: int, column: str, value: str) -> None:
    lines = (run / "certify.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    cells = lines[row].split("\t")
    cells[header.index(column)] = value
    lines[row] = "\t".join(cells)
    (run / "certify.tsv").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("column,value,needle", [("radius", "abc", "non-numeric"),
                                                 ("predict", "7", "out of range"),
                                                 ("label", "-3", "out of range"),
                                                 ("p_lower", "1.5", "outside [0, 1]")])
def test_garbled_or_out_of_range_rows(env, tmp_path, column, value, needle):
    run = damaged_copy(env, tmp_path)
    edit_row(run, 3, column, value)
    refused(certify(env, run, "--cache"), run, "certify.tsv", "line 4", needle)
    refused(certify(env, tmp_path / "i", "--incremental", run, "--n-p", "20"), tmp_path / "i",
            "certify.tsv", "line 4")


def test_cache_with_out_of_range_predictions(env, tmp_path):
    run = damaged_copy(env, tmp_path)
    preds = np.fromfile(run / "irs_cache.bin", dtype=np.int16)
    preds[5] = 9
    preds.tofile(run / "irs_cache.bin")
    refused(certify(env, tmp_path / "i", "--incremental", run, "--n-p", "20"), tmp_path / "i",
            "irs_cache.bin", "out of range")


# 7. IRS: a cache is used only at its own alpha, and the IRS run records the cache's n0/n ------
def test_irs_refuses_another_alpha_and_records_the_cache_settings(env, tmp_path):
    refused(certify(env, tmp_path / "i", "--incremental", env / "cache", "--n-p", "20",
                    "--alpha", "0.0001"), tmp_path / "i", "alpha 0.001 (asked 0.0001)")
    refused(certify(env, tmp_path / "i", "--incremental", env / "cache", "--n-p", "20",
                    "--chunk", "20"), tmp_path / "i", "chunk")
    args = certify(env, tmp_path / "i", "--incremental", env / "cache", "--n-p", "20")
    args[args.index("--n") + 1] = "5000"             # f's n comes from the cache, not the flag
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "i" / "run.json").read_text())["config"]
    assert (cfg["n0"], cfg["n"], cfg["alpha"]) == (10, 100, 0.001)


# 8. policy files -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,content,needle", [
    ("p.json", b'{"layers": {"conv\xff": 1}}', "not UTF-8"),
    ("p.yaml", b"layers:\n  a: {w: 4, a: 4}\n  a: {w: 2, a: 2}\n", "duplicate key"),
    ("p.json", b'{"layers": {"a": {"w": 4, "a": 4}, "a": {"w": 2, "a": 2}}}', "duplicate key"),
    ("p.json", b'{"layers": {"nope": {"w": 4, "a": 4}}}', "unknown layer"),
])
def test_bad_policy_files_name_the_file(env, tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    refused(["cost", env / "m.safetensors", "--policy", path], None, name, needle)
    refused(["quantize", env / "m.safetensors", "--policy", path, "--data", env / "data",
             "--out", tmp_path / "q"], tmp_path / "q", name, needle)
    refused(["compare", env / "m.safetensors", path, "--data", env / "data", "--out",
             tmp_path / "c"], tmp_path / "c", name, needle)


# 9. numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [(["--linf-eps", "1/0"], "--linf-eps"),
                                         (["--l2-eps", "nan"], "--l2-eps"),
                                         (["--corruptions", ","], "--corruptions"),
                                         (["--bits", "4.5"], "--bits"),
                                         (["--methods", ""], "--methods")])
def test_bench_numbers_and_lists(env, tmp_path, args, needle):
    refused(["bench", env / "m.safetensors", "--data", env / "data", "--out", tmp_path / "b",
             *args], tmp_path / "b", needle)


def test_amplification_numbers(env, tmp_path):
    base = ["amplification", env / "m.safetensors", "--data", env / "data", "--out",
            tmp_path / "a.json"]
    refused([*base, "--images", "0"], tmp_path / "a.json", "--images")
    refused([*base, "--eps", "1/0"], tmp_path / "a.json", "--eps")
    refused([*base, "--eps", "-2/255"], tmp_path / "a.json", "--eps")


def test_corrupt_severity_must_be_an_integer():
    from robustq.bench.corruptions import corrupt
    from robustq.utils.errors import RobustqError

    img = np.zeros((1, 32, 32, 3), np.uint8)
    for bad in (3.0, True, 6, "3"):
        with pytest.raises(RobustqError, match="severity"):
            corrupt(img, "fog", severity=bad)
    assert corrupt(img, "contrast", severity=np.int64(2)).shape == img.shape


# 12. Ctrl-C ----------------------------------------------------------------------------------
def test_ctrl_c_says_how_to_continue(env, tmp_path, monkeypatch):
    import robustq.certify.workflow as certify_workflow
    import robustq.models.train as train_mod

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(certify_workflow, "certify_dataset", interrupt)
    res = runner.invoke(app, [str(a) for a in certify(env, tmp_path / "c")])
    assert res.exit_code == 130 and "rerun the same command" in res.output
    assert "--resume" not in res.output and "Traceback" not in res.output
    monkeypatch.setattr(train_mod, "evaluate", interrupt)
    res = runner.invoke(app, ["train", "--data", str(env / "data"), "--arch", "small_cnn",
                              "--epochs", "1", "--out", str(tmp_path / "t")])
    assert res.exit_code == 130 and "--resume" in res.output, res.output


def test_ctrl_c_during_start_up(monkeypatch, capsys):
    class Loading(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "robustq.cli.app", Loading("robustq.cli.app"))
    monkeypatch.setattr(sys, "argv", ["robustq", "models"])    # a command: the commands load
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"


# 10-11. caches and pickles through the CLI ---------------------------------------------------
def test_damaged_or_unwritable_decode_cache_only_warns(env, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("ROBUSTQ_CACHE", str(tmp_path / "file" / "cache"))     # unwritable
    res = runner.invoke(app, ["evaluate", str(env / "m.safetensors"), "--data", str(env / "data")])
    assert res.exit_code == 0 and "warning:" in res.output and "decode cache" in res.output
    monkeypatch.setenv("ROBUSTQ_CACHE", str(tmp_path / "cache"))
    first = runner.invoke(app, ["evaluate", str(env / "m.safetensors"), "--data", str(env / "data")])
    (npz,) = sorted((tmp_path / "cache" / "imagefolder").glob("*.npz"))   # the test split's
    npz.write_bytes(b"garbage")
    again = runner.invoke(app, ["evaluate", str(env / "m.safetensors"), "--data", str(env / "data")])
    assert again.exit_code == 0 and "damaged decode cache" in again.output
    assert first.output.splitlines()[-1] == again.output.splitlines()[-1]   # the same numbers


def test_malicious_cifar_pickle_is_one_line(tmp_path):
    from tests.conftest import write_cifar_python

    root = tmp_path / "cifar-10-batches-py"
    write_cifar_python(root)
    (root / "test_batch").write_bytes(b"\x80\x02cnumpy\nndarray\nJ\x00\xca\x9a;\x85R.")
    card = ModelCard("small_cnn", 10, 3, (0.5,) * 3, (0.25,) * 3, (), (32, 32))
    save_checkpoint(tmp_path / "m.safetensors", card.build(), card, {"sigma": 0.25})
    refused(["evaluate", tmp_path / "m.safetensors", "--data", root], None, "test_batch")


def test_certify_on_a_missing_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = runner.invoke(app, ["certify", "src/robustq/embedded/small_cnn_mnist_sigma0.25"
                              ".safetensors", "--out", str(tmp_path / "c"), "--device", "cuda"])
    assert res.exit_code == 2 and "--device cuda" in res.output
    assert not (tmp_path / "c").exists()


def test_a_run_another_process_is_writing_is_refused(env, tmp_path):
    from tests.utils.test_runlock import holder

    out = tmp_path / "c"
    proc = holder(out)
    try:
        refused(["certify", env / "m.safetensors", "--out", out, *certify_args(env)], out,
                str(out), "another robustq process")
    finally:
        proc.stdin.close()
        proc.wait()
    res = runner.invoke(app, ["certify", str(env / "m.safetensors"), "--out", str(out),
                              *certify_args(env)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("flag,value", [("--consistency", "-1"), ("--consistency-copies", "1"),
                                        ("--consistency-entropy", "-0.5")])
def test_bad_consistency_options_are_refused_before_anything_is_written(env, tmp_path, flag, value):
    refused(["quantize", env / "m.safetensors", "--bits", "4/4", "--data", env / "data",
             "--consistency", "1", flag, value, "--out", tmp_path / "q"], tmp_path / "q", flag)
    refused(["train", "--data", env / "data", "--arch", "small_cnn", "--consistency", "1", flag,
             value, "--out", tmp_path / "t"], tmp_path / "t", flag.lstrip("-").replace("-", "_"))


def test_an_unknown_precision_is_refused_before_anything_is_written(env, tmp_path):
    refused(["train", "--data", env / "data", "--arch", "small_cnn", "--precision", "fp16",
             "--out", tmp_path / "t"], tmp_path / "t", "precision", "fp16")
    refused(["quantize", env / "m.safetensors", "--bits", "4/4", "--data", env / "data",
             "--precision", "fp16", "--out", tmp_path / "q"], tmp_path / "q", "--precision")
    refused(["quantize", env / "m.safetensors", "--bits", "4/4", "--data", env / "data",
             "--quant-kernels", "fused", "--out", tmp_path / "q"], tmp_path / "q", "--quant-kernels")
    refused(["search", env / "m.safetensors", "--data", env / "data", "--quant-kernels", "fused",
             "--out", tmp_path / "s"], tmp_path / "s", "--quant-kernels")
    refused(["compare", env / "m.safetensors", "--data", env / "data", "--quant-kernels", "fused",
             "--out", tmp_path / "c"], tmp_path / "c", "--quant-kernels")


@pytest.mark.parametrize("command", ["train", "quantize", "search", "compare", "bench"])
def test_every_model_command_on_a_missing_gpu_is_one_line(tmp_path, command):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ckpt = "src/robustq/embedded/small_cnn_mnist_sigma0.25.safetensors"
    extra = {"train": [], "quantize": [ckpt, "--bits", "4/4"]}.get(command, [ckpt])
    args = [command, *extra, "--out", str(tmp_path / "t"), "--device", "cuda:0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--device cuda:0" in res.output, res.output
    assert not (tmp_path / "t").exists()


def test_search_says_when_every_episode_is_random_warm_up(tmp_path):
    res = runner.invoke(app, ["search", "src/robustq/embedded/small_cnn_mnist_sigma0.25"
                              ".safetensors", "--episodes", "3", "--data", str(tmp_path / "none"),
                              "--out", str(tmp_path / "s")])
    assert "random warm-up" in res.output and "--warmup 20" in res.output
    assert res.exit_code == 2 and not (tmp_path / "s").exists()
