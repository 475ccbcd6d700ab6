"""``imagevet approve``: move the lock to the observed digest of held tags, and record who, why, when.

Identity: ``--by``, else ``IMAGEVET_APPROVER``, else git's ``user.name``/``user.email`` (as
``git config`` reads them in the policy's directory), else refused.  Exit codes: 0 approved
(or nothing left to approve), 1 upstream moved since it was held (or is not at ``--digest``), a
registry, the lock write or the ledger failed; 2 bad input (an unknown entry or tag, a ``follow``
entry, a damaged lock entry, no identity, an empty or oversized reason).  See docs/approvals.md.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import typer

from imagevet.cli._policy import POLICY_OPTION, load, now_utc, state_store
from imagevet.cli.audit import sync_setup
from imagevet.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    handle_errors,
    make_store,
    terminal_safe,
)
from imagevet.digest import Digest
from imagevet.engine.approve import (
    Approval,
    ApprovalRefusedError,
    UpstreamMovedError,
    prepare_approval,
)
from imagevet.errors import ImagevetError, InvalidDigestError
from imagevet.ledger import record_events
from imagevet.lock import LockRecordError, write_lock

__all__ = ["APPROVER_ENV", "approver_identity", "register"]

APPROVER_ENV = "IMAGEVET_APPROVER"
_GIT_TIMEOUT = 10
_GIT_MAX = 256


def register(app: typer.Typer) -> None:
    app.command("approve")(approve_command)


def _git_config(key: str, cwd: Path) -> str | None:
    """``git config --get KEY`` in ``cwd``; None when git is missing, fails or has nothing."""
    try:
        done = subprocess.run(
            ["git", "config", "--get", key], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    value = done.stdout.decode("utf-8", "replace").strip().splitlines()
    return (value[0].strip()[:_GIT_MAX] or None) if value else None


def approver_identity(by: str | None, env: Mapping[str, str], cwd: Path) -> str | None:
    """Who approves: ``by``, else ``IMAGEVET_APPROVER``, else ``Name <email>`` from git config
    (either alone when only one is set); None when none of them names anyone."""
    if by is not None:
        return by.strip() or None
    named = env.get(APPROVER_ENV, "").strip()
    if named:
        return named
    name, email = _git_config("user.name", cwd), _git_config("user.email", cwd)
    if name and email:
        return f"{name} <{email}>"
    return name or (f"<{email}>" if email else None)


@dataclass
class _Outcome:
    written: bool = False
    seq: int | None = None
    ledger_error: str | None = None


def approve_command(
    entry: str = typer.Argument(..., help="The policy entry (its name)."),
    tag: list[str] = typer.Argument(None, help="The tags to approve (default: every held tag of the entry)."),
    policy: Path = POLICY_OPTION,
    reason: str = typer.Option(
        ..., "--reason", metavar="TEXT", help="Why (recorded in the lock and the audit ledger)."
    ),
    by: str | None = typer.Option(
        None, "--by", metavar="NAME", help=f"Who approves (default: ${APPROVER_ENV}, then git config)."
    ),
    digest: list[str] = typer.Option(
        [], "--digest", help="Approve only if upstream points the tags at this digest (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the lock diff; write nothing."),
    insecure: list[str] = typer.Option([], "--insecure", help="Plain-HTTP registry host (repeatable)."),
) -> None:
    """Move the lock to what upstream points the held tags of the entry NAME at now (after
    review), with who approved, why and when; print the lock diff.  The next sync copies it."""
    wanted: list[Digest] = []
    for text in digest:
        try:
            wanted.append(Digest.parse(text))
        except InvalidDigestError as e:
            fail(f"--digest: {e}", EXIT_USAGE)
    loaded = load(policy)
    try:
        chosen = loaded.every_entry.entry(entry)
    except KeyError:
        fail(f"no policy entry called {entry!r} in {policy}", EXIT_USAGE)
    who = approver_identity(by, os.environ, policy.resolve().parent)
    if who is None:
        fail(
            f"who approves? give --by NAME, set {APPROVER_ENV}, or set git's user.name/user.email",
            EXIT_USAGE,
        )
    with handle_errors():  # a damaged held.json: exit 1, nothing changed
        held = state_store(loaded.policy).held()
    setup = None if dry_run else sync_setup(loaded.policy)  # a bad signing key stops before any work
    if setup is not None:
        check = setup.ledger.verify()
        if not check.ok:
            fail(f"the audit ledger does not verify ({check.reason}); nothing was approved: "
                 "run 'imagevet audit verify'", EXIT_FAILURE)
    before = _read_bytes(loaded.lock_path)
    now = now_utc()

    async def _go() -> tuple[Approval, _Outcome]:
        async with make_store(insecure=insecure) as store:
            approval = await prepare_approval(
                store, chosen, loaded.lock, held, tag or [], by=who, reason=reason, now=now,
                digests=wanted,
            )
            outcome = _Outcome()
            if dry_run or not approval.approved or setup is None:
                return approval, outcome
            if _read_bytes(loaded.lock_path) != before:
                fail(f"{loaded.lock_path} changed while approving; nothing was approved: run it again",
                     EXIT_FAILURE)
            try:
                await asyncio.to_thread(write_lock, loaded.lock_path, approval.lock)
            except OSError as e:
                fail(f"cannot write {loaded.lock_path}: {e.strerror}; nothing was approved", EXIT_FAILURE)
            outcome.written = True
            try:
                recorded = await record_events(
                    setup, store if setup.signer is not None else None, approval.ledger_events(), now=now
                )
                outcome.seq = recorded.seq
            except ImagevetError as e:
                outcome.ledger_error = str(e)
            return approval, outcome

    with handle_errors():
        try:
            approval, outcome = asyncio.run(_go())
        except (ApprovalRefusedError, LockRecordError) as e:
            fail(str(e), EXIT_USAGE)
        except UpstreamMovedError as e:
            fail(str(e), EXIT_FAILURE)
    _report(approval, outcome, loaded.lock_path, dry_run=dry_run)
    if approval.approved and chosen.approval.expired(now) and chosen.approval.expires is not None:
        err_console.print(
            f"[yellow]note:[/] the approval of {terminal_safe(chosen.name)} expired on "
            f"{chosen.approval.expires.isoformat()}: sync holds its new digests until approval.expires "
            "is renewed in the policy", highlight=False,
        )
    if outcome.ledger_error is not None:
        raise typer.Exit(EXIT_FAILURE)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}", EXIT_FAILURE)


def _report(approval: Approval, outcome: _Outcome, lock_path: Path, *, dry_run: bool) -> None:
    name = approval.entry.name
    for tag in approval.already:
        console.print(
            terminal_safe(f"{name} {tag}: already approved in the lock; the next sync copies it"),
            highlight=False,
        )
    if not approval.approved:
        console.print(terminal_safe(f"{name}: nothing to approve"), highlight=False)
        return
    console.print(terminal_safe(approval.diff.render(), markup=False, multiline=True),
                  highlight=False, markup=False, end="")
    first = approval.approved[0].new.approval
    assert first is not None
    console.print(f"approved by {terminal_safe(first.by)}: {terminal_safe(first.reason)}", highlight=False)
    if dry_run:
        console.print(f"{terminal_safe(str(lock_path))}: not written (--dry-run)", highlight=False)
        return
    if outcome.written:
        console.print(
            f"{terminal_safe(str(lock_path))}: written; review the diff, commit it, and the next sync "
            "copies the approved digests", highlight=False,
        )
    if outcome.seq is not None:
        console.print(f"audit ledger: {len(approval.approved)} approve event(s), up to record {outcome.seq}",
                      highlight=False)
    if outcome.ledger_error is not None:
        err_console.print(
            f"[red]error:[/] the lock is written but the approval is not in the audit ledger: "
            f"{terminal_safe(outcome.ledger_error)}", highlight=False,
        )
