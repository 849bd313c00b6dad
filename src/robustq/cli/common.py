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
