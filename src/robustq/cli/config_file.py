"""``--config FILE`` on every command: a JSON or YAML mapping of the command's own options.

Keys are option names (``n0``, ``out``, ``data``; dashes or underscores) or argument names
(``checkpoint``); values are what the flag would take (a list for a repeatable option). Flags
given on the command line override the file. The file is read before any other option is
processed (an eager option filling click's ``default_map``), so a bad file is refused in one
line, exit 2, before anything is written: not JSON/YAML, not a mapping, a duplicate or unknown
key (the valid ones listed).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from robustq.cli.common import fail
from robustq.utils.config import parse_json_or_yaml
from robustq.utils.errors import RobustqError


def read_options(path: Path) -> dict[str, Any]:
    """The mapping in ``path`` (``.yaml``/``.yml`` as YAML, anything else as JSON)."""
    try:
        data = parse_json_or_yaml(path.read_bytes().decode("utf-8"), path)
    except OSError as e:
        fail(f"--config {path}: {e.strerror or e}")
    except UnicodeDecodeError:
        fail(f"--config {path}: not UTF-8 text")
    except RobustqError as e:
        fail(f"--config {e}")
    if not isinstance(data, dict):
        fail(f"--config {path}: expected a mapping of option names to values, "
             f"got {type(data).__name__}")
    return data


def _load_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """Eager callback: the file's values become the command's defaults."""
    if value is None or ctx.resilient_parsing:
        return value
    names = {p.name for p in ctx.command.params if p.name not in ("config", "help")}
    options = {str(k).replace("-", "_"): v for k, v in read_options(value).items()}
    unknown = sorted(set(options) - names)
    if unknown:
        fail(f"--config {value}: unknown option {unknown[0]!r} for this command "
             f"(valid: {', '.join(sorted(names))})")
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", is_eager=True, callback=_load_config, dir_okay=False,
    help="JSON or YAML file of this command's options (keys: option names); flags override it")]


def with_config(command: Callable) -> Callable:
    """``command`` with a ``--config`` option added (the value is consumed, not passed on)."""
    @functools.wraps(command)
    def wrapper(*args: Any, config: Path | None = None, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)     # __signature__ is not evaluated
    extra = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=ConfigOpt)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    wrapper.__annotations__ = {**command.__annotations__, "config": ConfigOpt}
    return wrapper
