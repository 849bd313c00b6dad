import json
import os

import pytest

from robustq.utils import atomic_write_json, provenance
from robustq.utils.errors import RobustqError


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {(1, 2): "tuple keys are not JSON"})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["r.json"]           # no temp file left behind
    assert oct(path.stat().st_mode & 0o777) != "0o600"


def test_provenance_records_what_a_run_needs():
    p = provenance(7, {"x": 1})
    assert p["seed"] == 7 and p["config"] == {"x": 1}
    assert {"torch", "numpy", "python", "robustq"} <= set(p["versions"])
    assert p["git_commit"] and p["time"]
    assert p["machine"]["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "VSX"}
    assert p["machine"]["cpu_model"]
    assert isinstance(p["machine"]["cpu_native_bf16"], bool)


# ------------------------------------------------------------------------------ reliability
def test_validators_refuse_nan_inf_and_junk():
    from robustq.utils.validate import check_int, check_sigma, parse_names, parse_number

    for bad in (float("nan"), float("inf"), -1.0, 0.0, 4.5, True, "0.25"):
        with pytest.raises(RobustqError):
            check_sigma(bad)
    assert check_sigma(0.0, allow_zero=True) == 0.0 and check_sigma(4) == 4.0
    assert parse_number(" 2/255 ", "eps") == pytest.approx(2 / 255)
    for bad in ("1/0", "nan", "inf", "abc", "1/", ""):
        with pytest.raises(RobustqError, match="eps"):
            parse_number(bad, "eps")
    with pytest.raises(RobustqError, match="--x"):
        parse_names(" , ", "--x")
    for bad in (1.0, True, -1):
        with pytest.raises(RobustqError):
            check_int(bad, "n", 0)


def test_a_killed_write_leaves_no_temporary_behind(tmp_path):
    from robustq.utils.io import atomic_write_text

    stale = tmp_path / ".out.json.abc123.tmp"        # what kill -9 inside atomic_write leaves
    stale.write_text("partial")
    (tmp_path / ".other.json.x.tmp").write_text("another file's")
    atomic_write_text(tmp_path / "out.json", "{}")
    assert not stale.exists() and (tmp_path / ".other.json.x.tmp").exists()
    assert (tmp_path / "out.json").read_text() == "{}"


def test_shared_writers_do_not_remove_each_others_temporaries(tmp_path):
    """Two processes filling one cache entry at once: B's whole write happens while A is
    mid-write; both renames succeed (the last wins) and an old leftover is still swept."""
    import os

    from robustq.utils.io import SHARED_STALE_AFTER_S, atomic_write

    target = tmp_path / "cache.npz"
    old = tmp_path / ".cache.npz.killed.tmp"
    old.write_text("a killed write's")
    past = old.stat().st_mtime - SHARED_STALE_AFTER_S - 1
    os.utime(old, (past, past))

    def write_a(p):
        p.write_text("A")
        atomic_write(target, lambda q: q.write_text("B"), shared=True)    # B, while A writes

    atomic_write(target, write_a, shared=True)
    assert target.read_text() == "A" and not old.exists()
    assert list(tmp_path.glob(".*.tmp")) == []


def test_chunks_are_planned_in_constant_memory():
    import itertools
    import tracemalloc

    from robustq.certify.noise import chunk_sizes

    tracemalloc.start()
    first = list(itertools.islice(chunk_sizes(10**12, 1), 3))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert first == [1, 1, 1] and peak < 1 << 20
    assert list(chunk_sizes(250, 100)) == [100, 100, 50]


def test_fault_points_log_and_kill(tmp_path):
    import subprocess
    import sys

    code = ("from robustq.utils.io import atomic_write_text as w; import sys; "
            "[w(sys.argv[1] + f'/f{i}.txt', str(i)) for i in range(3)]")
    env = {**__import__("os").environ, "ROBUSTQ_KILL_AT": "f1.txt",
           "ROBUSTQ_FAULT_LOG": str(tmp_path / "log")}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env)
    assert res.returncode == 137
    assert (tmp_path / "log").read_text().split() == ["f0.txt", "f1.txt"]
    assert (tmp_path / "f1.txt").read_text() == "1" and not (tmp_path / "f2.txt").exists()


def test_resolve_device_validates_names_and_availability():
    import torch

    from robustq.utils.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "gpu0", "cuda:99"):
        with pytest.raises(RobustqError, match="--device"):
            resolve_device(bad)


def test_bf16_without_native_support_warns_and_fp32_never_does(monkeypatch):
    import warnings

    import torch

    from robustq.utils import device as dev

    cpu = torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # any warning fails these two calls
        dev.warn_if_emulated_bf16("fp32", cpu)
        monkeypatch.setattr(dev, "native_bf16", lambda d: True)
        dev.warn_if_emulated_bf16("bf16", cpu)
    monkeypatch.setattr(dev, "native_bf16", lambda d: False)
    with pytest.warns(UserWarning, match="no native bfloat16.*fp32"):
        dev.warn_if_emulated_bf16("bf16", cpu)
