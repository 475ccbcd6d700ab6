"""``imagevet validate``: check the policy (and its lock) without touching any registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from imagevet.cli._policy import POLICY_OPTION, load, now_utc
from imagevet.cli.common import console, print_json

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)


def validate_command(
    policy: Path = POLICY_OPTION,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check the policy file: every error with file, line, column and field; exit 2 if any."""
    loaded = load(policy)
    now = now_utc()
    expired = [e.name for e in loaded.policy.expired(now)]
    if as_json:
        print_json({
            "ok": True,
            "entries": [e.name for e in loaded.policy.entries],
            "expired": expired,
            "lock": str(loaded.lock_path) if loaded.lock_path.exists() else None,
        })
        return
    n = len(loaded.policy.entries)
    console.print(f"{policy}: valid, {n} entr{'y' if n == 1 else 'ies'}", highlight=False)
    for name in expired:
        console.print(f"[yellow]warning:[/] approval of {escape(name)} has expired: new digests are held",
                      highlight=False)
