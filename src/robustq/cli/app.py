"""The Typer application: every ``robustq`` command registered (imported by ``cli.main``)."""

from __future__ import annotations

import typer

from robustq.cli.amplification_cmd import amplification_cmd
from robustq.cli.bench_cmd import bench_cmd
from robustq.cli.certify_cmd import certify_cmd
from robustq.cli.demo_cmd import demo_cmd
from robustq.cli.export_cmd import export_cmd
from robustq.cli.quant_cmd import cost_cmd, quantize_cmd
from robustq.cli.report_cmd import report_cmd
from robustq.cli.search_cmd import compare_cmd, search_cmd
from robustq.cli.train_cmd import evaluate_cmd, train_cmd
from robustq.models import list_models

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="robustq: make neural networks small and provably robust.")
app.command("train")(train_cmd)
app.command("evaluate")(evaluate_cmd)
app.command("demo")(demo_cmd)
app.command("certify")(certify_cmd)
app.command("quantize")(quantize_cmd)
app.command("cost")(cost_cmd)
app.command("bench")(bench_cmd)
app.command("search")(search_cmd)
app.command("compare")(compare_cmd)
app.command("amplification")(amplification_cmd)
app.command("report")(report_cmd)
app.command("export")(export_cmd)


@app.command("models")
def models_cmd() -> None:
    """List the model architectures."""
    for name in list_models():
        typer.echo(name)
