"""``imagevet status``: what needs a person, from the state on disk (no registry is asked).

Exit codes: 0 nothing needs a person; 3 something does (each item listed); 1 the state could not
be read; 2 bad input (policy, lock file, ``--within``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import typer

from imagevet.cli._policy import POLICY_OPTION, load, now_utc, state_store
from imagevet.cli.common import (
    EXIT_CHANGES,
    EXIT_USAGE,
    console,
    fail,
    handle_errors,
    print_json,
    terminal_safe,
)
from imagevet.engine.status import HeldTag, StatusReport, status_report
from imagevet.plan import EXPIRY_WARNING_DAYS

__all__ = ["parse_days", "register"]

_MAX_DAYS = 3650
_DAYS = re.compile(r"([0-9]{1,5})([dw]?)")


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)


def parse_days(text: str) -> int:
    """``14d``, ``2w`` or ``14`` as days (0 to 3650); ValueError otherwise."""
    m = _DAYS.fullmatch(text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r}: expected days such as 14d, 2w or 14")
    days = int(m[1]) * (7 if m[2] == "w" else 1)
    if days > _MAX_DAYS:
        raise ValueError(f"{text!r}: at most {_MAX_DAYS} days")
    return days


def status_command(
    policy: Path = POLICY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="The status as JSON (docs/approvals.md)."),
    within: str = typer.Option(
        f"{EXPIRY_WARNING_DAYS}d", "--within", help="Approvals expiring within this many days (14d, 2w)."
    ),
) -> None:
    """What needs a person: held updates, new tags, expiring approvals, failing entries, the pull
    budget.  Exit 0: nothing; 3: something needs a person."""
    try:
        days = parse_days(within)
    except ValueError as e:
        fail(f"--within: {e}", EXIT_USAGE)
    loaded = load(policy)
    state = state_store(loaded.policy)
    with handle_errors():  # a damaged held.json or run summary: exit 1, with the file
        held = state.held()
        summary = state.read_run_summary()
    report = status_report(
        loaded.every_entry, loaded.lock, held, summary, now=now_utc(), within_days=days,
        lock_problems=loaded.problems,
    )
    if as_json:
        print_json(report.to_json())
    else:
        _print(report, policy)
    if report.attention:
        raise typer.Exit(EXIT_CHANGES)


def _age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


def _line(text: str) -> None:
    console.print(terminal_safe(text), highlight=False)


def _held_lines(items: tuple[HeldTag, ...], now: datetime, *, locked: bool) -> None:
    for h in items:
        _line(f"  {h.entry}  {h.tag}")
        if locked:
            _line(f"      locked    {h.locked}")
        _line(f"      upstream  {h.upstream}")
        _line(f"      since     {h.since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} ({_age(h.since, now)})")


def _print(report: StatusReport, policy: Path) -> None:
    now = report.now
    if report.held:
        console.print(f"[magenta]held[/] under pinned: upstream moved away from the lock ({len(report.held)})",
                      highlight=False)
        _held_lines(report.held, now, locked=True)
    if report.new_tags:
        console.print(f"[magenta]new upstream tags[/] waiting for approval ({len(report.new_tags)})",
                      highlight=False)
        _held_lines(report.new_tags, now, locked=False)
    if report.held or report.new_tags:
        _line(f"  review, then: imagevet approve -p {policy} ENTRY [TAG...] --reason TEXT")
    if report.approved:
        _line(f"approved, the next sync copies them ({len(report.approved)})")
        for h in report.approved:
            _line(f"  {h.entry}  {h.tag}  {h.upstream}")
    if report.approvals:
        _line(f"approvals expiring within {report.within_days} days ({len(report.approvals)})")
        for a in report.approvals:
            ticket = f", {a.ticket}" if a.ticket else ""
            when = (
                f"EXPIRED on {a.expires.isoformat()}" if a.expired
                else f"expires {a.expires.isoformat()} (in {a.days_left} days)"
            )
            _line(f"  {a.entry}  {when}; approved by {a.approved_by}{ticket}")
    if report.failing:
        ran = report.last_run.get("now") if report.last_run else None
        console.print(f"[red]failing[/] entries (last run {terminal_safe(ran or '-')})", highlight=False)
        for f in report.failing:
            tag = f" {f.tag}" if f.tag else ""
            now_note = " (now)" if f.current else ""
            _line(f"  {f.entry}{tag}{now_note} ({f.where}): {f.message}")
    budget = report.pull_budget
    if budget is not None and (budget["remaining"] or budget["deferred"]):
        left = ", ".join(f"{r} {n} left" for r, n in budget["remaining"].items()) or "no limit seen"
        deferred = f"; {budget['deferred']} copies deferred" if budget["deferred"] else ""
        exhausted = f"; EXHAUSTED: {', '.join(report.exhausted)}" if report.exhausted else ""
        _line(f"pull budget (last run): {left} (reserve {budget['reserve']}){deferred}{exhausted}")
    if report.last_run is None:
        _line("no sync has run yet")
    n = report.attention
    _line(f"status: {n} item{'s' if n != 1 else ''} need{'s' if n == 1 else ''} a person" if n
          else "status: nothing needs a person")
