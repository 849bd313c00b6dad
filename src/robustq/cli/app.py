"""The Typer application: every ``robustq`` command registered (imported by ``cli.main``)."""

from __future__ import annotations

import typer

from robustq.cli.amplification_cmd import amplification_cmd
from robustq.cli.bench_cmd import bench_cmd
from robustq.cli.certify_cmd import certify_cmd
from robustq.cli.config_file import with_config
from robustq.cli.demo_cmd import demo_cmd
from robustq.cli.export_cmd import export_cmd
from robustq.cli.main import ABOUT
from robustq.cli.quant_cmd import cost_cmd, quantize_cmd
from robustq.cli.report_cmd import report_cmd
from robustq.cli.search_cmd import compare_cmd, search_cmd, shared_cmd
from robustq.cli.train_cmd import evaluate_cmd, train_cmd
from robustq.models import list_models

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=ABOUT)
COMMANDS = {"train": train_cmd, "evaluate": evaluate_cmd, "demo": demo_cmd,
            "certify": certify_cmd, "quantize": quantize_cmd, "cost": cost_cmd,
            "bench": bench_cmd, "search": search_cmd, "shared": shared_cmd, "compare": compare_cmd,
            "amplification": amplification_cmd, "report": report_cmd, "export": export_cmd}
for _name, _command in COMMANDS.items():
    app.command(_name)(with_config(_command))

@app.command("models")
def models_cmd() -> None:
    """List the model architectures."""
    for name in list_models():
        typer.echo(name)
