"""``robustq report``: one self-contained HTML page from run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robustq.cli.common import NOTHING, console, friendly_errors
from robustq.report import build_report


@friendly_errors(out_file=True, on_interrupt=NOTHING)
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="run directories (certify, search, compare, "
                                               "bench, DQ, demo); searched recursively")],
    out: Annotated[Path, typer.Option(help="the HTML file to write")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="the page title")] = "robustq report",
) -> None:
    """Write an HTML report (plots embedded, viewable offline) of the results under RUNS."""
    result = build_report(runs, out, title)
    for line in result["missing"]:
        console.print(f"[yellow]missing:[/] {line}", highlight=False)
    console.print(f"{len(result['runs'])} runs -> {out} ({result['bytes'] / 1024:.0f} KiB)")
