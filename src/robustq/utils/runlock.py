"""One writer per run directory.

``hold_run_dir(out)`` takes an exclusive advisory lock (``flock``) on the directory itself and
keeps it until the process exits; the kernel drops it when the process dies, even on kill -9,
so a killed run never leaves a stale lock behind, and no lock file is written. A second
process that claims the same directory (two shells resuming one run, two certification parts
given one ``--out``) is refused before it writes anything, instead of interleaving rows with
the first. Spawned workers do not inherit the descriptor (Python opens it non-inheritable).
Where ``fcntl`` does not exist (not POSIX) nothing is locked.
"""

from __future__ import annotations

import os
from pathlib import Path

from robustq.utils.errors import RobustqError

try:
    import fcntl
except ImportError:                  # pragma: no cover - Windows: no advisory locks
    fcntl = None

_HELD: dict[str, int] = {}           # resolved directory -> the open, locked descriptor


def hold_run_dir(out: str | Path) -> None:
    """Hold ``out`` (created if missing) for this process, or raise ``RobustqError`` when
    another process holds it. Idempotent within a process."""
    key = os.path.realpath(out)
    if fcntl is None or key in _HELD:
        return
    Path(key).mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RobustqError(f"{out}: another robustq process is writing this run; wait for it to "
                           "end or use another --out") from None
    _HELD[key] = fd


def release_run_dir(out: str | Path) -> None:
    """Give up this process's hold on ``out`` (as its exit would); nothing if not held."""
    fd = _HELD.pop(os.path.realpath(out), None)
    if fd is not None:
        os.close(fd)                 # closing the descriptor drops its flock
