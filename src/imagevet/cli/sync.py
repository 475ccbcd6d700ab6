"""``imagevet sync``: apply the plan: repositories, then images, byte for byte; record it all."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from imagevet.cli._policy import (
    POLICY_OPTION,
    hub_manager,
    load,
    manifest_cache,
    now_utc,
    print_plan_report,
    state_dir,
)
from imagevet.cli.audit import record_sync, sync_setup
from imagevet.cli.common import (
    EXIT_FAILURE,
    console,
    err_console,
    handle_errors,
    make_registry_client,
    print_json,
    run,
    terminal_safe,
)
from imagevet.cli.progress import TransferProgress
from imagevet.copy import DEFAULT_JOBS
from imagevet.engine.observe import plan_policy
from imagevet.errors import ImagevetError
from imagevet.lock import Lock, diff_locks, write_lock
from imagevet.statefiles import write_state_file
from imagevet.sync import (
    SyncOptions,
    SyncReport,
    apply_plan,
    follow_lock,
    repo_specs,
    summarize_requests,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_command)


def sync_command(
    policy: Path = POLICY_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(False, "--prune", help="Delete target tags the policy no longer selects."),
    jobs: int = typer.Option(DEFAULT_JOBS, "--jobs", "-j", min=1, max=64, help="Concurrent blob transfers."),
    images: int = typer.Option(4, "--images", min=1, max=32, help="Images copied at once."),
    budget_reserve: int = typer.Option(0, "--budget-reserve", min=0, help="Docker Hub pulls to leave unspent."),
    report: Path | None = typer.Option(
        None, "--report", help="Where to write the run summary (default .imagevet/last-sync.json)."
    ),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Mirror every vetted image as the plan says; go on past failures; exit 1 if any failed."""
    loaded = load(policy)
    audit = None if dry_run else sync_setup(loaded.policy)  # a bad signing key stops before any work
    options = SyncOptions(jobs=jobs, images=images, prune=prune)
    cache = manifest_cache(loaded.policy)
    show_progress = not as_json and err_console.is_terminal

    new_lock: Lock = loaded.lock

    async def _go() -> SyncReport:
        nonlocal new_lock
        async with make_registry_client(insecure=insecure) as client, hub_manager(loaded.policy) as manager:
            from imagevet.hub import render_overview

            specs = repo_specs(loaded.policy, loaded.lock, render_overview if manager else None)
            plan, observed, problems = await plan_policy(
                client, client, loaded.policy, loaded.lock, now=now_utc(), manager=manager, specs=specs,
                cache=cache, budget_reserve=budget_reserve,
            )
            if dry_run:
                result = SyncReport(plan, problems=problems)
            else:
                with TransferProgress(err_console, enabled=show_progress) as progress:
                    result = await apply_plan(
                        client, plan, observed, manager=manager, specs=specs,
                        options=options, progress=progress, cache=cache,
                    )
                result.problems = problems
                new_lock = follow_lock(loaded.policy, loaded.lock, result, observed)
            result.requests = summarize_requests(client)
            return result

    result = run(_go)
    result.problems[:0] = loaded.problems  # entries whose lock records cannot be read
    if dry_run:
        print_plan_report(result.plan, result.problems, as_json=as_json)
        raise typer.Exit(EXIT_FAILURE if result.problems else 0)

    directory = state_dir(loaded.policy)
    summary = result.to_json()
    recorded = True
    try:
        write_state_file(  # atomic, never through a symlink (the --report directory is the user's)
            report or directory / "last-sync.json", (json.dumps(summary, indent=2) + "\n").encode(),
            follow_dir=report is not None,
        )
    except ImagevetError as e:  # the ledger and the lock are still written
        err_console.print(f"[red]error:[/] {terminal_safe(str(e))}", highlight=False)
        recorded = False
    with handle_errors():
        if diff_locks(loaded.lock, new_lock).has_changes:
            write_lock(loaded.lock_path, new_lock)  # follow entries: what is mirrored now
            if not as_json:
                console.print(f"{loaded.lock_path}: updated for follow entries", highlight=False)
    assert audit is not None
    recorded = record_sync(audit, result.ledger_events(), insecure=insecure) and recorded
    if as_json:
        print_json(summary)
    else:
        for outcome in result.failed:
            err_console.print(f"[red]failed[/] {terminal_safe(f'{outcome.action.describe()}: {outcome.message}')}", highlight=False)
        for p in result.problems:
            err_console.print(f"[red]error:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
        for warning in result.plan.warnings:
            console.print(f"[yellow]warning:[/] {terminal_safe(warning)}", highlight=False)
        console.print(_summary_line(result), highlight=False)
    if not result.ok or not recorded:
        raise typer.Exit(EXIT_FAILURE)


def _summary_line(result: SyncReport) -> str:
    counts = result.counts()
    order = ["copy", "update", "create-repo", "update-repo", "noop", "hold", "defer", "prune", "failed", "skipped"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    moved = sum(o.result.bytes_copied for o in result.outcomes if o.result is not None)
    heads = sum(v for k, v in result.requests.items() if k.startswith("HEAD"))
    gets = sum(v for k, v in result.requests.items() if k.startswith("GET manifest"))
    return (
        f"sync {'done' if result.ok else 'finished with failures'}: {', '.join(parts) or 'nothing to do'}; "
        f"{moved / (1 << 20):.1f} MiB copied in {result.seconds:.2f}s; "
        f"{heads} HEAD, {gets} manifest GET requests"
    )
