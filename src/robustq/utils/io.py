"""Atomic writes: a result file is either the old one or the complete new one, never half-written."""

from __future__ import annotations

import glob
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robustq.utils.errors import RobustqError
from robustq.utils.faults import fault_point

#: With ``shared=True``, a temporary younger than this may be another writer's write in progress.
SHARED_STALE_AFTER_S = 3600.0


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], *,
                 shared: bool = False) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``shared``: several processes may write ``path`` at once (a cache keyed on its content), so
    only temporaries older than ``SHARED_STALE_AFTER_S`` are taken for a killed write's leftovers;
    the last rename wins and every reader sees one complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path, min_age_s=SHARED_STALE_AFTER_S if shared else 0.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fault_point(path.name)
    return path


def remove_stale_temporaries(path: Path, min_age_s: float = 0.0) -> None:
    """Delete temporaries of ``path`` left by a write that was killed (kill -9 skips the
    clean-up above), those at least ``min_age_s`` old. With 0 (every one), safe only for a file
    with one writer: a shared cache passes an age no write in progress reaches."""
    now = time.time()
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - stale.stat().st_mtime >= min_age_s:
                stale.unlink(missing_ok=True)
        except FileNotFoundError:    # another writer renamed or removed it meanwhile
            continue


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one complete line and flush it; readers ignore a partial last line."""
    path = Path(path)
    with open(path, "a") as f:
        f.write(line if line.endswith("\n") else line + "\n")
        f.flush()
    fault_point("+" + path.name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_csv(path: str | os.PathLike, columns: list[str],
                     rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV with the header ``columns`` (other keys dropped), written atomically."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def atomic_write_npy(path: str | os.PathLike, array: Any) -> Path:
    """Write one array as ``.npy`` (no pickles) atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_writable(path: str | os.PathLike, is_file: bool = False, label: str = "") -> None:
    """Refuse an output path that cannot be written, before anything is: a directory where a
    file is expected (or the reverse), a path under a regular file, a read-only or unwritable
    location. ``label`` prefixes the message (e.g. ``"--out "``)."""
    path = Path(path)
    if path.exists():
        if is_file and path.is_dir():
            raise RobustqError(f"{label}{path}: is a directory; expected a file name")
        if not is_file and not path.is_dir():
            raise RobustqError(f"{label}{path}: is a file; expected a directory")
        target = path if path.is_dir() else path.parent
    else:
        target = path.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise RobustqError(f"{label}{path}: cannot be created: {target} is not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
        raise RobustqError(f"{label}{path}: {target} is not writable (read-only or no "
                           "permission)")
