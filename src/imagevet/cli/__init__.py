"""The command line: the only package that parses arguments, reads the environment and prints.

Each command lives in its own module (``cli/copy.py``, ``cli/sync.py`` ...) exposing
``register(app)``.  Modules are imported only when their command runs, so ``imagevet check``
never loads the registry client and a no-op ``imagevet sync`` starts fast.  Errors map to exit
codes in :mod:`imagevet.cli.common`.
"""

from __future__ import annotations

import enum
import importlib
import types
import typing
from typing import Any

import typer
from typer.core import TyperGroup

from imagevet.cli.common import configure_logging

__all__ = ["COMMANDS", "app", "main"]

COMMANDS: dict[str, str] = {
    "validate": "Check the policy file: every error with file, line, column and field.",
    "lock": "Resolve the tag rules upstream and pin tag -> digest in the lock.",
    "plan": "What sync would do now (HEAD requests only).",
    "sync": "Mirror every vetted image as the plan says.",
    "copy": "Copy an image byte for byte: every platform, signatures and SBOMs.",
    "check": "Find image references the org would block, and fix them.",
    "classify": "Classify images as Docker Hub's Image Access Management does.",
    "doctor": "Check the org: IAM settings, the token's abilities, the policy's entries.",
    "audit": "Check and read the audit ledger.",
}
"""Command name -> one-line help; the module ``imagevet.cli.<name>`` implements it."""


_METAVARS = {
    "policy": "FILE", "lock": "FILE", "vetted": "FILE", "output": "FILE", "report": "FILE",
    "ledger": "FILE", "insecure": "HOST", "platform": "OS/ARCH", "entry": "NAME",
    "exclude": "GLOB", "org": "ORG", "refs": "REF", "paths": "PATH",
}
"""Metavariables shown in ``--help`` by parameter name (others: by type, ``N``, ``a|b``, NAME)."""


def _plain_metavars(command: Any) -> None:
    """Give every option that takes a value a plain metavariable (``--policy FILE``, ``--jobs N``,
    ``--format human|json|sarif``) instead of the type names Typer derives from annotations
    (``<list[str]>``, ``<int range>``, ``{source}``); flags stay bare (``--json``)."""
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)
    for param in command.params:
        if getattr(param, "is_flag", False) or getattr(param, "count", False) or param.metavar:
            continue
        name = param.name or ""
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        while typing.get_origin(annotation) in (list, tuple) or typing.get_origin(annotation) is types.UnionType:
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        if name in _METAVARS:
            param.metavar = _METAVARS[name]
        elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            param.metavar = "|".join(str(m.value) for m in annotation)
        elif annotation is int:
            param.metavar = "N"
        else:
            param.metavar = name.upper()
        if getattr(param, "param_type_name", "") == "argument":
            _plain_argument(param)


def _plain_argument(param: Any) -> None:
    """An argument as ``SOURCE`` (required) or ``[PATH]...`` (optional, repeatable) in the usage
    line, without Typer's ``{SOURCE}`` braces and ``<str>`` type column."""
    shown = param.metavar.strip("[].")
    usage = shown if param.required else f"[{shown}]"
    usage += "..." if param.nargs != 1 else ""
    param.metavar = shown
    param._usage_display_name = lambda: usage
    param._rich_display_name = lambda: usage
    param.display_type_rich = lambda ctx: ""


class _LazyGroup(TyperGroup):
    """Lists every command at once, imports a command's module only when it is needed.

    (Typer vendors its own click, so its types are not named here.)
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{cmd_name}")
        holder = typer.Typer(add_completion=False, rich_markup_mode=None)
        module.register(holder)
        command: Any = typer.main.get_command(holder)
        inner = getattr(command, "commands", {})  # a group holding our command (audit's sub-app)
        if cmd_name in inner:
            command = inner[cmd_name]
        command.name = cmd_name
        _plain_metavars(command)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


app = typer.Typer(
    name="imagevet",
    cls=_LazyGroup,
    help="Mirror vetted container images into your organization, byte for byte, with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Log every request (secrets are redacted)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors."),
) -> None:
    configure_logging(debug=debug, quiet=quiet)


def main() -> None:
    """Console-script entry point."""
    app()
