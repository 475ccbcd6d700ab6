"""``imagevet sync``: apply the plan: repositories, then images, byte for byte; record it all."""

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
from imagevet.cli.audit import KEY_ENV, KEY_FILE_ENV, sync_setup
from imagevet.cli.common import (
    EXIT_FAILURE,
    console,
    err_console,
    make_store,
    print_json,
    redact,
    run,
    terminal_safe,
)
from imagevet.cli.progress import TransferProgress
from imagevet.cli.signing import read_sign_key
from imagevet.engine.copy import DEFAULT_JOBS
from imagevet.engine.run import RunOptions, RunReport, run_sync

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
    sign_key = None if dry_run else read_sign_key(loaded.policy)  # sign: the same, for mirrors
    options = RunOptions(
        dry_run=dry_run, prune=prune, jobs=jobs, images=images, budget_reserve=budget_reserve,
        sign_key=sign_key,
    )
    show_progress = not as_json and not dry_run and err_console.is_terminal

    async def _go() -> RunReport:
        async with make_store(insecure=insecure) as store, hub_manager(loaded.policy) as manager:
            with TransferProgress(err_console, enabled=show_progress) as progress:
                return await run_sync(
                    loaded.policy, loaded.lock, source=store, target=store, state=state_store(loaded.policy),
                    manager=manager, audit=audit, options=options, clock=now_utc,
                    progress=progress, lock_problems=loaded.problems,
                    lock_path=loaded.lock_path, summary_file=report,
                )

    result = run(_go)
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
