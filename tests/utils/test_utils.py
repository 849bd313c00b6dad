import json
import os

import pytest

from robustq.utils import atomic_write_json, provenance


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
