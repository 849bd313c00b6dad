"""What every run records about itself: seed, config, package versions, git commit, machine."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("robustq", "torch", "numpy", "scipy", "safetensors")


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the robustq source tree (with ``-dirty`` if modified), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(seed: int | None = None, config: Any = None) -> dict[str, Any]:
    """A JSON-ready record of how a result was produced."""
    import torch

    from robustq.utils.device import native_bf16

    return {
        "seed": seed,
        "config": config,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_commit": git_commit(),
        "versions": package_versions(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cpu_model": cpu_model(),
            # the SIMD level torch's CPU kernels dispatch to (AVX512 or AVX2 here): timings
            # of the same command differ about 3x between the two, so a record must say which
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            # without native bfloat16 (AVX-512 BF16, AMX) bf16 runs are emulated, ~10x slower
            "cpu_native_bf16": native_bf16(torch.device("cpu")),
        },
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
