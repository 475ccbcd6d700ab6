"""``imagevet audit verify|show``: check and read the hash-chained audit ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from imagevet.cli.common import (
    EXIT_FAILURE,
    console,
    err_console,
    handle_errors,
    print_json,
    terminal_safe,
)
from imagevet.ledger import read_ledger, verify_ledger

__all__ = ["DEFAULT_LEDGER", "register"]

DEFAULT_LEDGER = Path(".imagevet/ledger.jsonl")

audit_app = typer.Typer(help="Check and read the audit ledger.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def verify_command(
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="The ledger file."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the whole hash chain; exit 1 at the first altered, removed or reordered record."""
    with handle_errors():
        check = verify_ledger(ledger)
    if as_json:
        print_json({"ok": check.ok, "records": check.records, "bad_line": check.bad_line,
                    "reason": check.reason})
    elif check.ok:
        console.print(f"{ledger}: {check.records} records, chain intact")
    else:
        err_console.print(f"[red]{terminal_safe(str(ledger))}:{check.bad_line}: {terminal_safe(check.reason)}[/] "
                          f"({check.records} records verified before it)")
    if not check.ok:
        raise typer.Exit(EXIT_FAILURE)


@audit_app.command("show")
def show_command(
    ledger: Path = typer.Option(DEFAULT_LEDGER, "--ledger", help="The ledger file."),
    last: int = typer.Option(20, "--last", "-n", min=0, help="How many records (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per line."),
) -> None:
    """Print the last records of the ledger."""
    with handle_errors():
        records = list(read_ledger(ledger))
    if last:
        records = records[-last:]
    for rec in records:
        if as_json:
            console.out(json.dumps(rec, sort_keys=True))
            continue
        event = rec.get("event", {})
        kind = event.get("kind", "?")
        rest = " ".join(f"{k}={v}" for k, v in event.items() if k != "kind" and v not in (None, ""))
        console.print(terminal_safe(f"{rec['seq']:>6} {rec['time']} {kind:<10} {rest}", markup=False), markup=False)
