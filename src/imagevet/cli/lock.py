"""``imagevet lock``: resolve the tag rules upstream and pin tag -> digest in imagevet.lock."""

from __future__ import annotations

from pathlib import Path

import typer

from imagevet.cli._policy import POLICY_OPTION, load, now_utc
from imagevet.cli.common import (
    EXIT_CHANGES,
    EXIT_FAILURE,
    console,
    err_console,
    make_registry_client,
    print_json,
    run,
    terminal_safe,
)
from imagevet.lock import diff_locks, write_lock
from imagevet.resolve import Resolution, resolve_lock
from imagevet.sync import entries_by_name

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("lock")(lock_command)


def lock_command(
    policy: Path = POLICY_OPTION,
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 3 when upstream moved away from the lock."
    ),
    entry: list[str] = typer.Option([], "--entry", "-e", help="Only these entries (repeatable)."),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Resolve every entry's tags (tag listing + HEAD) and write the lock; print the diff."""
    loaded = load(policy)
    try:
        chosen = entries_by_name(loaded.policy, entry)
    except KeyError as e:
        err_console.print(f"[red]error:[/] no policy entry called {terminal_safe(repr(e.args[0]))}")
        raise typer.Exit(2) from None

    async def _go() -> Resolution:
        async with make_registry_client(insecure=insecure) as client:
            return await resolve_lock(client, loaded.policy, loaded.lock, now=now_utc(), entries=chosen)

    resolution = run(_go)
    new = resolution.lock.only(e.key for e in loaded.policy.entries)
    diff = diff_locks(loaded.lock, new)
    if as_json:
        print_json({
            "lock": str(loaded.lock_path),
            "written": not check and diff.has_changes,
            "diff": diff.to_json(),
            "missing_tags": resolution.missing,
            "problems": [{"entry": p.entry, "source": p.source, "message": p.message}
                         for p in resolution.problems],
        })
    else:
        console.print(terminal_safe(diff.render(), markup=False, multiline=True) if diff.has_changes
                      else f"{loaded.lock_path}: up to date", highlight=False, markup=False)
        for name, tags in resolution.missing.items():
            console.print(f"[yellow]warning:[/] {terminal_safe(name)}: tags not found upstream: {terminal_safe(', '.join(tags))}")
        for p in resolution.problems:
            err_console.print(f"[red]error:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
    if not check and (diff.has_changes or not loaded.lock_path.exists()):
        write_lock(loaded.lock_path, new)
    if resolution.problems:
        raise typer.Exit(EXIT_FAILURE)
    if check and diff.has_changes:
        raise typer.Exit(EXIT_CHANGES)
