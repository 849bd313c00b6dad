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
import sys
import warnings
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from robustq.utils.errors import RobustqError
from robustq.utils.io import check_writable

console = Console(stderr=True, soft_wrap=True)

RERUN = "rerun the same command (same --out) to continue: finished work is kept"
RESUME = "rerun the same command with --resume to continue from the last finished epoch"
NOTHING = "nothing was written"

DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N: "
                                       "where the model runs and noise is drawn")]
WorkersOpt = Annotated[int, typer.Option(help="local worker processes that share the units of work "
                                         "(images, cells, rows); 1: this process")]
RayOpt = Annotated[str | None, typer.Option(
    "--ray", help="run the units of work on a Ray cluster: auto (the running one), HOST:PORT, or "
    "local (start one here); needs pip install 'robustq[ray]'")]
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


def check_model_fits(model, ds, checkpoint) -> None:
    """The model's outputs and input channels must match the data set's classes and images."""
    if ds.num_classes != model.num_classes:
        raise RobustqError(f"{ds.source}: {ds.num_classes} classes but {checkpoint} has "
                           f"{model.num_classes} outputs")
    if ds.image_shape[0] != model.in_channels:
        raise RobustqError(f"{ds.source}: {ds.image_shape[0]}-channel images but {checkpoint} "
                           f"expects {model.in_channels}")
