"""What every command shares: error handling that turns bad input into one line and exit 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer
from rich.console import Console

from robustq.utils.errors import RobustqError

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly_errors(fn: Callable) -> Callable:
    """Report RobustqError (and a missing file) as one line, with a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RobustqError as e:
            fail(str(e))
        except FileNotFoundError as e:
            fail(f"{e.filename}: no such file or directory")
        except KeyboardInterrupt:
            console.print("interrupted; rerun with --resume to continue")
            sys.exit(130)

    return wrapper


def check_model_fits(model, ds, checkpoint) -> None:
    """The model's outputs and input channels must match the data set's classes and images."""
    if ds.num_classes != model.num_classes:
        raise RobustqError(f"{ds.source}: {ds.num_classes} classes but {checkpoint} has "
                           f"{model.num_classes} outputs")
    if ds.image_shape[0] != model.in_channels:
        raise RobustqError(f"{ds.source}: {ds.image_shape[0]}-channel images but {checkpoint} "
                           f"expects {model.in_channels}")
