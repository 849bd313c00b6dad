"""What every command shares: one error path that turns bad input into one line and exit 2.

``friendly_errors`` wraps every command. Before the command runs it checks that ``--out`` can be
written (a directory, or a file with ``out_file=True``), so a bad output path is refused before
anything is written. While it runs, ``RobustqError`` (bad input), ``OSError`` (a file that cannot
be read or written, a full disk) and ``UnicodeDecodeError`` become one line on stderr and exit 2;
Ctrl-C says how to continue and exits 130.
"""

from __future__ import annotations

import errno
import functools
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console

from robustq.utils.device import resolve_device
from robustq.utils.errors import RobustqError
from robustq.utils.io import check_writable
from robustq.utils.parallel import Executor, get_executor

console = Console(stderr=True, soft_wrap=True)

RERUN = "rerun the same command (same --out) to continue: finished work is kept"
RESUME = "rerun the same command with --resume to continue from the last finished epoch"
NOTHING = "nothing was written"
METHODS_HELP = ("minmax | dorefa | pact | lsq | lsq_pc (LSQ, one weight step per output channel) | "
                "lsq_mse (LSQ, activation steps initialized at least squared error: for 2 bits)")

DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N: "
                                       "where the model runs and noise is drawn")]
WorkersOpt = Annotated[int, typer.Option(help="local worker processes that share the units of work "
                                         "(images, cells, rows); 1: this process")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", help="run the units of work on a Ray cluster: auto (the running one), HOST:PORT, or "
    "local (start one here); needs pip install 'robustq\\[ray]'")]
ThreadsOpt = Annotated[int | None, typer.Option(help="torch CPU threads")]
ConsistencyOpt = Annotated[float, typer.Option(
    help="lambda of noise-consistency regularization (Jeong & Shin 2020) over "
         "--consistency-copies noisy copies of each image; 0 = off")]
ConsistencyCopiesOpt = Annotated[int, typer.Option(help="noisy copies of each training image "
                                                   "per step when --consistency > 0 (m >= 2)")]
ConsistencyEntropyOpt = Annotated[float, typer.Option(
    help="eta: weight of the entropy of the copies' mean prediction (with --consistency)")]
PrecisionOpt = Annotated[str, typer.Option(
    help="fp32 | bf16 (forward passes under bfloat16 autocast: about 2x a training step on "
         "AVX-512 BF16 CPUs, but emulated and about 10x slower on CPUs without native "
         "bfloat16, which get a warning; weights, losses and quantization grids stay float32)")]
QuantKernelsOpt = Annotated[str, typer.Option(
    help="eager | compiled (fake quantization fused by torch.compile in QAT: LSQ about 1.8x, "
         "PACT and DoReFa 1.5x a step here; forward bit for bit eager's; compiled once per "
         "process)")]
FpCheckpointArg = Annotated[Path, typer.Argument(help="FP robustq checkpoint")]
OutDirOpt = Annotated[Path, typer.Option(help="output directory (resumable)")]
SeedOpt = Annotated[int, typer.Option(help="random seed (noise, data order, sampling); "
                                      "recorded in the run")]


def fail(message: str, code: int = 2) -> None:
    message = " ".join(message.split()) if "\n" in message else message   # one line, always
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    raise typer.Exit(code)


def os_error_message(e: OSError) -> str:
    """One line for an ``OSError``: the path, what went wrong, and for a full disk that the
    command resumes."""
    where = e.filename if e.filename is not None else "a file"
    what = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{where}: no space left on device; free some space and rerun the same command: "
                "it resumes where it stopped")
    return f"{where}: {what}"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def friendly_errors(fn: Callable | None = None, *, out_file: bool = False,
                    on_interrupt: str = RERUN) -> Callable:
    """Decorate a command (bare, or with options): see the module docstring. ``on_interrupt``
    is what Ctrl-C tells the user."""

    def decorate(cmd: Callable) -> Callable:
        @functools.wraps(cmd)
        def wrapper(*args, **kwargs):
            warnings.showwarning = _show_warning
            try:
                if kwargs.get("out") is not None:
                    check_writable(kwargs["out"], out_file, "--out ")
                return cmd(*args, **kwargs)
            except RobustqError as e:
                fail(str(e))
            except OSError as e:
                fail(os_error_message(e))
            except UnicodeDecodeError as e:
                fail(f"input is not UTF-8 text ({e.reason} at byte {e.start})")
            except KeyboardInterrupt:
                console.print(f"interrupted; {on_interrupt}", highlight=False)
                sys.exit(130)

        return wrapper

    return decorate(fn) if fn is not None else decorate


@dataclass(frozen=True)
class Machine:
    """Where a command runs: ``--device`` resolved (and as given) and the executor of
    ``--workers`` / ``--ray``."""

    device: torch.device
    device_name: str
    executor: Executor


_MACHINE_OPTIONS = (("threads", ThreadsOpt, None), ("device", DeviceOpt, "auto"),
                    ("workers", WorkersOpt, 1), ("ray", RayOpt, None))


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (validated)."""
    if threads is not None:
        if threads < 1:
            raise RobustqError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def on_machine(command: Callable) -> Callable:
    """``command(..., machine=Machine)`` offered ``--threads``, ``--device``, ``--workers`` and
    ``--ray`` instead, applied and validated before it runs (wrap it in ``friendly_errors``)."""
    @functools.wraps(command)
    def wrapper(*args: Any, threads: int | None = None, device: str = "auto", workers: int = 1,
                ray: str | None = None, **kwargs: Any) -> Any:
        set_threads(threads)
        machine = Machine(resolve_device(device), device, get_executor(workers, ray))
        return command(*args, machine=machine, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    own = [p for name, p in signature.parameters.items() if name != "machine"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=annotation)
             for name, annotation, default in _MACHINE_OPTIONS]
    wrapper.__signature__ = signature.replace(parameters=[*own, *added])
    wrapper.__annotations__ = {**{k: v for k, v in command.__annotations__.items()
                                  if k != "machine"},
                               **{name: annotation for name, annotation, _ in _MACHINE_OPTIONS}}
    return wrapper
