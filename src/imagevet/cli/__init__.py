"""The command line: the only package that parses arguments, reads the environment and prints.

Each command lives in its own module (``cli/copy.py``, ``cli/sync.py`` ...) exposing
``register(app)``; :func:`main` builds the app from them.  Errors map to exit codes in
:mod:`imagevet.cli.common`.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from imagevet.cli.common import configure_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="imagevet",
    help="Mirror vetted container images into your organization, byte for byte, with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Log every request (secrets are redacted)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
) -> None:
    configure_logging(debug=debug, quiet=quiet)


def _register_commands() -> None:
    package = importlib.import_module(__name__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in {"common"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app()
