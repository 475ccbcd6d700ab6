"""``imagevet lock``: resolve the tag rules upstream and pin tag -> digest in imagevet.lock."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from imagevet.cli._policy import POLICY_OPTION, load, lock_problems, now_utc
from imagevet.cli.common import (
    EXIT_CHANGES,
    EXIT_FAILURE,
    console,
    err_console,
    make_store,
    print_json,
    run,
    terminal_safe,
)
from imagevet.cli.verify import policy_verifiers
from imagevet.engine.resolve import Resolution, resolve_lock
from imagevet.errors import StateError
from imagevet.lock import Lock, diff_locks, write_lock
from imagevet.plan import EntryProblem
from imagevet.sync import entries_by_name

if TYPE_CHECKING:
    from imagevet.engine.evidence import EvidenceKeeper

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
    rescan: bool = typer.Option(
        False, "--rescan", help="Run the scan of entries with scan: again for every locked digest."
    ),
) -> None:
    """Resolve every entry's tags (tag listing + HEAD) and write the lock; print the diff.

    An entry that fails keeps its previous records and is reported with its reason (exit 1);
    an entry whose lock records cannot be read is resolved again from upstream.  Under a
    verify: rule, a digest whose cosign signature does not verify is held (not locked; the tag
    keeps its previous digest) and reported with the reason (exit 1).
    """
    loaded = load(policy)
    declared = loaded.every_entry
    verifiers = policy_verifiers(declared)  # a key that cannot be read stops here (exit 2)
    try:
        chosen = entries_by_name(declared, entry)
    except KeyError as e:
        err_console.print(f"[red]error:[/] no policy entry called {terminal_safe(repr(e.args[0]))}")
        raise typer.Exit(2) from None

    # evidence kept beside the lock (docs/evidence.md); --check writes nothing, so reads none
    from imagevet.engine.evidence import EvidenceKeeper, evidence_dir
    from imagevet.engine.scan import run_scanner

    keeper = None if check else EvidenceKeeper(evidence_dir(loaded.lock_path), run_scanner, rescan=rescan)

    async def _go() -> Resolution:
        async with make_store(insecure=insecure) as store:
            return await resolve_lock(store, declared, loaded.lock, now=now_utc(), entries=chosen,
                                      complete=not check, evidence=keeper, verifiers=verifiers)

    resolution = run(_go)
    new = resolution.lock.only(e.key for e in declared.entries)
    diff = diff_locks(loaded.lock, new)
    # entries whose unreadable records a readable entry now replaces, and those still unreadable
    repaired = [x for x in declared.entries if loaded.lock.problems(x.key) and not new.problems(x.key)]
    failed = {p.entry: p for p in resolution.problems}
    for p in lock_problems(declared, new):
        if p.entry in failed:
            first = failed[p.entry]
            failed[p.entry] = EntryProblem(
                p.entry, p.source, f"{first.message}; {p.message}", first.cause or p.cause
            )
        else:
            failed[p.entry] = p
    changed = diff.has_changes or new.unreadable != loaded.lock.unreadable
    exists = loaded.lock_path.exists()
    # records that only gained their platform manifests' digests: written, never a --check failure
    write = not check and (changed or bool(diff.completed) or bool(diff.verified) or (not exists and not failed))
    if as_json:
        print_json({
            "lock": str(loaded.lock_path),
            "written": write,
            "diff": diff.to_json(),
            "missing_tags": resolution.missing,
            "repaired": [x.name for x in repaired],
            "problems": [{"entry": p.entry, "source": p.source, "message": p.message}
                         for p in failed.values()],
            "evidence_problems": keeper.problems if keeper is not None else [],
            "scans": [{"ref": ref, "result": said} for ref, said in keeper.scanned] if keeper else [],
            **_held_json(resolution),
        })
    else:
        if diff.has_changes:
            console.print(terminal_safe(diff.render(), markup=False, multiline=True), highlight=False,
                          markup=False, end="")
        for name, tags in resolution.missing.items():
            console.print(f"[yellow]warning:[/] {terminal_safe(name)}: tags not found upstream: {terminal_safe(', '.join(tags))}")
        for fixed in repaired:
            was = "; ".join(str(x) for x in loaded.lock.problems(fixed.key))
            err_console.print(
                f"[yellow]note:[/] {terminal_safe(fixed.name)}: its lock records could not be read; "
                f"resolved again from upstream: {terminal_safe(was)}",
                highlight=False,
            )
        for p in failed.values():
            err_console.print(f"[red]failed:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
        for ref, said in keeper.scanned if keeper is not None else ():
            console.print(f"scan {terminal_safe(ref)}: {terminal_safe(said)}", highlight=False, markup=False)
        for problem in keeper.problems if keeper is not None else ():
            err_console.print(f"[yellow]warning:[/] evidence: {terminal_safe(problem)}", highlight=False)
        for h in resolution.held:
            err_console.print(f"[magenta]held:[/] {terminal_safe(h.describe())}", highlight=False)
        total = len({x.name for x in chosen} | set(failed))
        if diff.completed and not diff.has_changes and not check:
            console.print(terminal_safe(diff.render(), markup=False, multiline=True), highlight=False,
                          markup=False, end="")
        line = _summary(loaded.lock_path, total, list(failed), changed=changed or write,
                        written=write, check=check, exists=exists)
        if resolution.held:  # "up to date" only when it is true: upstream has what the lock refused
            n = len(resolution.held)
            line = (line.replace(": up to date", ": unchanged")
                    + f"; {n} digest{'s' if n != 1 else ''} held, not verified (see held: above)")
        console.print(line, highlight=False, markup=False)
    if keeper is not None:  # the files the lock on disk will name (a damaged one is repaired)
        _write_evidence(keeper, new if write else loaded.lock)
    if write:
        write_lock(loaded.lock_path, new)
        if keeper is not None:
            from imagevet.engine.evidence import lock_evidence, prune_evidence

            prune_evidence(keeper.directory, lock_evidence(new))
    if failed or resolution.held:
        raise typer.Exit(EXIT_FAILURE)
    if check and changed:
        raise typer.Exit(EXIT_CHANGES)


def _write_evidence(keeper: EvidenceKeeper, new: Lock) -> None:
    """Write the evidence files the new lock names, before the lock (it never names a file
    that is not there); a failure leaves the lock as it was (exit 1)."""
    from imagevet.engine.evidence import lock_evidence

    try:
        keeper.write(lock_evidence(new))
    except (StateError, OSError) as e:
        err_console.print(
            f"[red]error:[/] cannot write the evidence files in {terminal_safe(str(keeper.directory))}: "
            f"{terminal_safe(str(e))}; the lock is left as it was",
            highlight=False,
        )
        raise typer.Exit(EXIT_FAILURE) from None


def _held_json(resolution: Resolution) -> dict[str, Any]:
    """``held``: the digests not locked because their signature did not verify (only with a
    verify: rule, so other locks' JSON stays as it was)."""
    if not resolution.held:
        return {}
    return {"held": [
        {"entry": h.entry, "tag": h.tag, "digest": str(h.digest), "reason": h.reason,
         "kept": str(h.kept) if h.kept is not None else None}
        for h in resolution.held
    ]}


def _summary(
    path: Path, entries: int, failed: list[str], *, changed: bool, written: bool, check: bool,
    exists: bool,
) -> str:
    """The last line: what happened to the lock file; "up to date" only when it is true."""
    if not failed and not changed and exists:
        return f"{path}: up to date"
    if written:
        state = "written"
    elif check:
        state = "not written (--check)"
    else:
        state = "not written (nothing was resolved)" if not exists else "unchanged"
    if not failed:
        return f"{path}: {state}"
    n = len(failed)
    return (
        f"{path}: {state}; {n} of {entries} entr{'y' if entries == 1 else 'ies'} failed, "
        f"their lock records are left as they were: {', '.join(failed)}"
    )
