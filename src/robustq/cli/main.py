"""Entry point: ``robustq <command>``.

The commands (and torch) are imported inside ``main``, so Ctrl-C while they load ends with one
line instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from robustq.cli.app import app

        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def __getattr__(name: str):
    if name == "app":          # ``from robustq.cli.main import app`` (tests, embedding)
        from robustq.cli.app import app

        return app
    raise AttributeError(name)
