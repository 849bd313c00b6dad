"""The ``robustq`` command line (Typer + Rich)."""
