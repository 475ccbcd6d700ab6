"""The command line: the only package that parses arguments, reads the environment and prints.

Each command lives in its own module (``cli/copy.py``, ``cli/sync.py`` ...) exposing
``register(app)``.  Modules are imported only when their command runs, so ``imagevet check``
never loads the registry client and a no-op ``imagevet sync`` starts fast.  Errors map to exit
codes in :mod:`imagevet.cli.common`.
"""

from __future__ import annotations

import enum
import importlib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer._click.exceptions import BadParameter
from typer._coercion import RuntimeParam
from typer._param_types import coerce_cli_choice, coerce_cli_path
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
    "status": "What needs a person: held updates, new tags, expiring approvals, failures, pull budget.",
    "approve": "Move the lock to the observed digest of held tags; record who approved and why.",
    "report": "Write the catalog of vetted images: a static site and a pull-request comment.",
    "watch": "Sync on a schedule as a service: metrics, health checks, clean stops.",
    "verify": "Check an image's cosign signature (a key, or the policy's verify: rule).",
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


_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"", "0", "off", "f", "false", "n", "no"})


@dataclass(frozen=True)
class _PlainParam(RuntimeParam):
    """Converts a command-line value of the few types our commands declare (``str``, ``int`` in a
    range, ``Path``, an enum, an optional or a list of those) as Typer does, with its messages,
    but without building a pydantic ``TypeAdapter`` per parameter: Typer's own coercion imports
    pydantic and builds its schemas on every run, a quarter of a second before the command starts.
    """

    leaf: Any

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self._one(item, param, ctx) for item in value]
        return self._one(value, param, ctx)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        info = self.parameter_info
        if self.leaf is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise BadParameter("Input should be a valid boolean, unable to interpret input", ctx=ctx, param=param)
        if self.leaf is str:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if self.leaf is int:
            if isinstance(value, bool) or not isinstance(value, (int, str)) or (
                isinstance(value, str) and not _INT.fullmatch(value)
            ):
                raise BadParameter(
                    "Input should be a valid integer, unable to parse string as an integer", ctx=ctx, param=param
                )
            number = int(value)
            if info.min is not None and number < info.min:
                raise BadParameter(f"Input should be greater than or equal to {info.min}", ctx=ctx, param=param)
            if info.max is not None and number > info.max:
                raise BadParameter(f"Input should be less than or equal to {info.max}", ctx=ctx, param=param)
            return number
        if self.leaf is Path:
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        try:
            return coerce_cli_choice(value, choices=list(self.leaf), case_sensitive=info.case_sensitive, ctx=ctx)
        except ValueError as bad:
            raise BadParameter(f"Value error, {bad}", ctx=ctx, param=param) from None


def _plain_leaf(annotation: Any) -> Any:
    """The leaf type ``_PlainParam`` converts for ``annotation`` (``X``, ``X | None``,
    ``list[X]``), or None when Typer's own coercion must do it."""
    if typing.get_origin(annotation) is types.UnionType:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else None
    elif typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if annotation in (str, int, bool, Path):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation
    return None


def _plain_coercion(command: Any, ctx: Any) -> None:
    """Give every parameter of ``command`` (and its subcommands), ``--help`` included, whose type
    ``_PlainParam`` knows that coercion, so parsing the command line never imports pydantic."""
    for sub in getattr(command, "commands", {}).values():
        _plain_coercion(sub, ctx)
    for param in [*command.params, command.get_help_option(ctx)]:
        descriptor = getattr(param, "type_descriptor", None)
        if param is None or descriptor is None or descriptor.file_annotation is not None or descriptor.parameter_info.parser:
            continue
        info = descriptor.parameter_info
        if info.clamp or info.resolve_path or info.allow_dash or info.path_type is not None:
            continue
        leaf = _plain_leaf(descriptor.annotation)
        if leaf is not None:
            param._runtime_param = _PlainParam(info, descriptor.annotation, leaf)


class _LazyGroup(TyperGroup):
    """Lists every command at once, imports a command's module only when it is needed.

    (Typer vendors its own click, so its types are not named here.)
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _plain_coercion(self, ctx)
        result: list[str] = super().parse_args(ctx, args)
        return result

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
        _plain_coercion(command, ctx)
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
