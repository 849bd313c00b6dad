"""One writer per run directory: a directory another process holds is refused; a holder killed
with SIGKILL leaves no stale lock; a process may claim its own directory again."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from robustq.utils.errors import RobustqError
from robustq.utils.runlock import hold_run_dir

HOLDER = ("import sys; from robustq.utils.runlock import hold_run_dir; hold_run_dir(sys.argv[1]); "
          "print('held', flush=True); sys.stdin.read()")


def holder(out: Path) -> subprocess.Popen:
    """Another process that holds ``out`` until its stdin closes (or it is killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@contextmanager
def held_elsewhere(out: Path) -> Iterator[None]:
    """Within the block another process holds ``out``; then it is killed with SIGKILL."""
    proc = holder(out)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_directory_held_by_another_process_is_refused_until_it_dies(tmp_path):
    with held_elsewhere(tmp_path / "run"):
        with pytest.raises(RobustqError, match="another robustq process is writing this run"):
            hold_run_dir(tmp_path / "run")
    hold_run_dir(tmp_path / "run")                   # the kernel dropped the killed one's lock
    hold_run_dir(tmp_path / "run")                   # and this process may claim it again
    assert list((tmp_path / "run").iterdir()) == []  # no lock file is written


def test_a_run_claimed_by_this_process_is_refused_to_another(tmp_path):
    from robustq.utils.records import start_run

    start_run(tmp_path / "q", "quantize", {"a": 1}, seed=0)
    other = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path / "q")],
                           capture_output=True, text=True, input="")
    assert other.returncode == 1 and "another robustq process" in other.stderr


def test_a_released_directory_can_be_held_by_another_process(tmp_path):
    from robustq.utils.runlock import release_run_dir

    hold_run_dir(tmp_path / "r")
    release_run_dir(tmp_path / "r")
    release_run_dir(tmp_path / "r")                  # releasing twice is harmless
    with held_elsewhere(tmp_path / "r"):             # it gets the hold at once
        with pytest.raises(RobustqError, match="another robustq process"):
            hold_run_dir(tmp_path / "r")
