"""``imagevet validate``: check the policy (and its lock) without touching any registry."""

from __future__ import annotations

from pathlib import Path

import typer

from imagevet.cli._policy import POLICY_OPTION, load, now_utc
from imagevet.cli.common import EXIT_FAILURE, console, err_console, print_json, terminal_safe

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)


def validate_command(
    policy: Path = POLICY_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the policy file: every error with file, line, column and field; exit 2 if any.

    An unreadable entry of the lock is that entry's error (file:line:column): every one is
    listed and the exit code is 1.
    """
    loaded = load(policy)
    every = loaded.every_entry
    now = now_utc()
    expired = [e.name for e in every.expired(now)]
    if as_json:
        print_json({
            "ok": not loaded.problems,
            "entries": [e.name for e in every.entries],
            "expired": expired,
            "lock": str(loaded.lock_path) if loaded.lock_path.exists() else None,
            "problems": [{"entry": p.entry, "source": p.source, "message": p.message}
                         for p in loaded.problems],
        })
    else:
        n = len(every.entries)
        console.print(f"{policy}: valid, {n} entr{'y' if n == 1 else 'ies'}", highlight=False)
        for name in expired:
            console.print(f"[yellow]warning:[/] approval of {terminal_safe(name)} has expired: new digests are held",
                          highlight=False)
        for p in loaded.problems:
            err_console.print(f"[red]error:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
        if loaded.problems:
            k = len(loaded.problems)
            console.print(f"{loaded.lock_path}: {k} entr{'y' if k == 1 else 'ies'} unreadable",
                          highlight=False)
    if loaded.problems:
        raise typer.Exit(EXIT_FAILURE)
