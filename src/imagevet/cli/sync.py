"""``imagevet sync``: apply the plan: repositories, then images, byte for byte; record it all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from imagevet.cli._policy import (
    POLICY_OPTION,
    hub_manager,
    load,
    now_utc,
    print_plan_report,
    state_dir,
    state_store,
)
from imagevet.cli.audit import KEY_ENV, KEY_FILE_ENV, sync_setup
from imagevet.cli.common import (
    EXIT_FAILURE,
    console,
    err_console,
    handle_errors,
    make_store,
    print_json,
    redact,
    run,
    terminal_safe,
)
from imagevet.cli.progress import TransferProgress
from imagevet.cli.signing import read_sign_key
from imagevet.cli.verify import policy_verifiers
from imagevet.engine.copy import DEFAULT_JOBS
from imagevet.engine.run import RunOptions, RunReport, run_sync

if TYPE_CHECKING:
    from imagevet.engine.runlock import RunLock
    from imagevet.policy import Policy

if TYPE_CHECKING:
    from imagevet.notify import NotifyOutcome

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
    no_notify: bool = typer.Option(
        False, "--no-notify", help="Send no notifications (the policy's notify: targets) after the run."
    ),
) -> None:
    """Mirror every vetted image as the plan says; go on past failures; exit 1 if any failed."""
    loaded = load(policy)
    audit = None if dry_run else sync_setup(loaded.policy)  # a bad signing key stops before any work
    sign_key = None if dry_run else read_sign_key(loaded.policy)  # sign: the same, for mirrors
    verifiers = policy_verifiers(loaded.policy)  # a verify: key that cannot be read too (exit 2)
    options = RunOptions(
        dry_run=dry_run, prune=prune, jobs=jobs, images=images, budget_reserve=budget_reserve,
        sign_key=sign_key,
    )
    show_progress = not as_json and not dry_run and err_console.is_terminal

    notified: list[NotifyOutcome] = []

    async def _go() -> RunReport:
        state = state_store(loaded.policy)
        async with make_store(insecure=insecure) as store, hub_manager(loaded.policy) as manager:
            with TransferProgress(err_console, enabled=show_progress) as progress:
                done = await run_sync(
                    loaded.policy, loaded.lock, source=store, target=store, state=state,
                    manager=manager, audit=audit, options=options, clock=now_utc,
                    progress=progress, lock_problems=loaded.problems,
                    lock_path=loaded.lock_path, summary_file=report, verifiers=verifiers,
                )
        if loaded.policy.notify and not no_notify and not dry_run:
            from imagevet.notify import notify_run  # only runs with targets import it

            notified.append(await notify_run(done, loaded.policy, state, now=now_utc(), env=os.environ))
        return done

    held = None if dry_run else take_run_lock(loaded.policy)  # never two runs at once (watch too)
    try:
        result = run(_go)
    finally:
        if held is not None:
            held.release()
    if dry_run:
        print_plan_report(result.plan, result.problems, as_json=as_json)
        raise typer.Exit(EXIT_FAILURE if result.problems else 0)

    if result.summary_error is not None:  # the ledger and the lock are still written
        err_console.print(f"[red]error:[/] {terminal_safe(result.summary_error)}", highlight=False)
    if result.lock_error is not None:
        err_console.print(f"[red]error:[/] {terminal_safe(result.lock_error)}", highlight=False)
    if result.lock_written and not as_json:
        console.print(f"{loaded.lock_path}: updated for follow entries", highlight=False)
    if audit is not None and audit.signer is None:
        err_console.print(
            f"[yellow]note:[/] the audit ledger is unsigned: set {KEY_FILE_ENV} or {KEY_ENV} "
            "to sign and push a checkpoint (docs/audit.md)", highlight=False,
        )
    if result.ledger_error is not None:
        err_console.print(f"[bold red]error:[/] {terminal_safe(redact(result.ledger_error), multiline=True)}", markup=True)
        err_console.print(
            "[red]the run's records are not in the audit ledger[/]; they are in the run summary",
            highlight=False,
        )
    for sent in notified:  # a failed notification is a warning: the exit code is the sync's
        _print_notifications(sent, as_json=as_json)
    if as_json:
        print_json(result.summary())
    else:
        for outcome in result.failed:
            err_console.print(f"[red]failed[/] {terminal_safe(f'{outcome.action.describe()}: {outcome.message}')}", highlight=False)
        for p in result.problems:
            err_console.print(f"[red]error:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {terminal_safe(warning)}", highlight=False)
        console.print(_summary_line(result), highlight=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


def _print_notifications(outcome: NotifyOutcome, *, as_json: bool) -> None:
    """One line per notification sent or failed, and per target left out; on stderr with --json."""
    out = err_console if as_json else console
    for delivery in outcome.sent:
        out.print(terminal_safe(delivery.describe()), highlight=False)
    for delivery in outcome.failed:
        err_console.print(f"[yellow]warning:[/] {terminal_safe(delivery.describe())}", highlight=False)
    for problem in outcome.problems:
        err_console.print(f"[yellow]warning:[/] notify: {terminal_safe(problem)}", highlight=False)


def take_run_lock(policy: Policy) -> RunLock:
    """The run lock of the policy's state directory (``imagevet watch`` takes the same); exit 1
    naming the holder when another run has it, a note when a killed run's record was cleared."""
    from imagevet.engine.runlock import acquire_run_lock

    with handle_errors():
        held = acquire_run_lock(state_dir(policy), command="sync")
    if held.stale is not None:
        err_console.print(
            f"[yellow]note:[/] cleared a stale run lock left by {terminal_safe(held.stale.describe())} "
            "(that process is gone)", highlight=False,
        )
    return held


def _summary_line(result: RunReport) -> str:
    counts = result.counts()
    order = ["copy", "update", "create-repo", "update-repo", "noop", "hold", "defer", "prune", "failed", "skipped"]
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    moved = result.bytes_copied
    heads = sum(v for k, v in result.requests.items() if k.startswith("HEAD"))
    gets = sum(v for k, v in result.requests.items() if k.startswith("GET manifest"))
    return (
        f"sync {'done' if result.sync.ok else 'finished with failures'}: {', '.join(parts) or 'nothing to do'}; "
        f"{moved / (1 << 20):.1f} MiB copied in {result.seconds:.2f}s; "
        f"{heads} HEAD, {gets} manifest GET requests"
    )
