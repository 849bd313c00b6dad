"""``--workers`` / ``--ray`` on the commands: the files of a one-process run, a killed driver
resumed, bad values refused before anything is written."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from robustq.certify.run import TSV
from robustq.models import ModelCard, save_checkpoint
from tests.conftest import write_image_folder
from tests.utils.test_parallel import table


def robustq(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with extra environment ``env``."""
    code = "import sys; from robustq.cli.main import main; sys.argv[0] = 'robustq'; main()"
    # output to files, not pipes: a killed driver's helpers (Ray's) may hold a pipe open
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        done = subprocess.run([sys.executable, "-c", code, *args], stdout=out, stderr=err,
                              text=True, env={**os.environ, **env}, timeout=600)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


def checkpoint(tmp_path: Path) -> Path:
    write_image_folder(tmp_path / "data", per_class=6)
    card = ModelCard("small_cnn", 2, 3, (0.5,) * 3, (0.25,) * 3, ("cat", "dog"), (32, 32))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.safetensors", card.build(), card, {"sigma": 0.25})
    return tmp_path / "m.safetensors"


def test_certify_with_workers_resumes_a_killed_driver_to_the_one_process_files(tmp_path):
    ckpt = checkpoint(tmp_path)
    common = [str(ckpt), "--data", str(tmp_path / "data"), "--n0", "10", "--n", "100",
              "--skip", "1", "--batch", "50", "--chunk", "50", "--engine", "torch", "--cache"]
    one = robustq("certify", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    killed = robustq("certify", *common, "--workers", "2", "--out", str(tmp_path / "two"),
                     ROBUSTQ_KILL_AT="+" + TSV + "#5")
    assert killed.returncode == 137
    assert len(table(tmp_path / "two" / TSV)) == 1 + 5      # header and the 5 finished rows
    again = robustq("certify", *common, "--workers", "2", "--out", str(tmp_path / "two"))
    assert again.returncode == 0, again.stderr
    assert table(tmp_path / "one" / TSV) == table(tmp_path / "two" / TSV)
    assert (tmp_path / "one" / "irs_cache.bin").read_bytes() == \
        (tmp_path / "two" / "irs_cache.bin").read_bytes()


def test_bad_workers_are_refused_before_anything_is_written(tmp_path):
    ckpt = checkpoint(tmp_path)
    res = robustq("certify", str(ckpt), "--data", str(tmp_path / "data"), "--workers", "0",
                  "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--workers must be an integer >= 1" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_certify_on_ray_resumes_a_killed_driver_to_the_one_process_files(tmp_path):
    pytest.importorskip("ray")
    ckpt = checkpoint(tmp_path)
    common = [str(ckpt), "--data", str(tmp_path / "data"), "--n0", "10", "--n", "100",
              "--skip", "1", "--batch", "50", "--chunk", "50", "--engine", "torch"]
    one = robustq("certify", *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    # each call starts a local Ray cluster of its own (--ray local) and stops it at exit
    killed = robustq("certify", *common, "--ray", "local", "--out", str(tmp_path / "two"),
                     ROBUSTQ_KILL_AT="+" + TSV + "#4")
    assert killed.returncode == 137
    assert len(table(tmp_path / "two" / TSV)) == 1 + 4
    again = robustq("certify", *common, "--ray", "local", "--out", str(tmp_path / "two"))
    assert again.returncode == 0, again.stderr
    assert table(tmp_path / "one" / TSV) == table(tmp_path / "two" / TSV)
