"""Named fault points, so tests can end a process at a chosen write and check the resume.

Every completed write of a result file passes ``fault_point(name)`` (``name``: the file's name,
e.g. ``episodes.jsonl``; appends are ``+episodes.jsonl``). With ``ROBUSTQ_KILL_AT=name#k`` in
the environment the process ends with ``os._exit(KILL_EXIT)`` right after the k-th such write
(``name`` alone means the first); ``ROBUSTQ_FAULT_LOG=file`` appends every point passed to
``file``, one name a line, to discover them. Without these variables it costs one dict lookup.
"""

from __future__ import annotations

import os
from collections import Counter

KILL_EXIT = 137
_seen: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """Pass the fault point ``name`` (see the module docstring)."""
    log, kill = os.environ.get("ROBUSTQ_FAULT_LOG"), os.environ.get("ROBUSTQ_KILL_AT")
    if log is None and kill is None:
        return
    _seen[name] += 1
    if log:
        with open(log, "a") as f:
            f.write(name + "\n")
    if kill:
        target, _, count = kill.partition("#")
        if target == name and _seen[name] == int(count or 1):
            os._exit(KILL_EXIT)
