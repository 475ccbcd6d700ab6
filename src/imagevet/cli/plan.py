"""``imagevet plan``: what sync would do now, from the policy, the lock and HEAD requests."""

from __future__ import annotations

from pathlib import Path

import typer

from imagevet.cli._policy import (
    POLICY_OPTION,
    hub_manager,
    load,
    now_utc,
    print_plan_report,
    state_store,
)
from imagevet.cli.common import (
    EXIT_CHANGES,
    EXIT_FAILURE,
    make_store,
    run,
)
from imagevet.cli.verify import policy_verifiers
from imagevet.engine.run import PlannedRun, plan_run

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)


def plan_command(
    policy: Path = POLICY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="The plan as JSON."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 3 when changes are pending (0: nothing to do)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="List up-to-date tags too."),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
) -> None:
    """Compare policy + lock with the targets (HEAD requests only) and list the actions."""
    loaded = load(policy)
    verifiers = policy_verifiers(loaded.policy)  # a key that cannot be read stops here (exit 2)

    async def _go() -> PlannedRun:
        async with make_store(insecure=insecure) as store, hub_manager(loaded.policy) as manager:
            return await plan_run(
                loaded.policy, loaded.lock, source=store, target=store, manager=manager,
                state=state_store(loaded.policy), now=now_utc(), verifiers=verifiers,
            )

    planned = run(_go)
    plan = planned.plan
    problems = [*loaded.problems, *planned.problems]  # entries whose lock records cannot be read
    print_plan_report(plan, problems, as_json=as_json, verbose=verbose)
    if problems:
        raise typer.Exit(EXIT_FAILURE)
    if detailed_exitcode and plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)
