"""What the policy commands share: loading policy and lock, the Hub manager, rendering plans."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import typer

from imagevet.cli.common import console, err_console, handle_errors, print_json, terminal_safe
from imagevet.digest import Digest
from imagevet.engine.state import FileStateStore, state_dir_for
from imagevet.lock import Lock, lock_path_for, read_lock
from imagevet.plan import (
    Action,
    ActionKind,
    Copy,
    CreateRepo,
    Defer,
    EntryProblem,
    Hold,
    Plan,
    Prune,
    Update,
    UpdateRepo,
)
from imagevet.policy import Policy, load_policy
from imagevet.reference import Reference
from imagevet.repository_spec import RepositoryManager

__all__ = [
    "POLICY_OPTION",
    "Loaded",
    "hub_manager",
    "load",
    "lock_problems",
    "print_plan",
    "print_plan_report",
    "state_store",
]

POLICY_OPTION = typer.Option(
    Path("imagevet.yaml"), "--policy", "-p", help="The policy file; the lock sits next to it."
)

_STYLE = {
    ActionKind.CREATE_REPO: "green", ActionKind.UPDATE_REPO: "yellow", ActionKind.COPY: "green",
    ActionKind.UPDATE: "yellow", ActionKind.HOLD: "magenta", ActionKind.PRUNE: "red",
    ActionKind.NOOP: "dim", ActionKind.DEFER: "cyan",
}


@dataclass(frozen=True, slots=True)
class Loaded:
    policy: Policy
    """The entries whose lock records can be read: what plan and sync work on."""
    lock_path: Path
    lock: Lock
    problems: tuple[EntryProblem, ...] = ()
    """One per entry left out of ``policy`` because its lock records cannot be read, and one per
    lock entry of no readable source -> target (each message with file:line:column); a command
    reports them and exits 1 at the end, after doing its work for every other entry."""
    declared: Policy | None = None
    """Every entry of the policy file (None: the same as ``policy``)."""

    @property
    def every_entry(self) -> Policy:
        """The policy as declared, entries with unreadable lock records included."""
        return self.declared or self.policy


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def load(policy_path: Path) -> Loaded:
    """Read and check the policy and its lock; errors exit 2 with file:line:column.

    A lock entry that cannot be read is not such an error: its policy entry is left out of
    ``Loaded.policy`` and reported in ``Loaded.problems`` (one bad entry never stops the others).
    """
    with handle_errors():
        policy = load_policy(policy_path, env=os.environ, today=now_utc().date())
        lock_path = lock_path_for(policy_path)
        lock = read_lock(lock_path)
    problems = lock_problems(policy, lock)
    if not problems:
        return Loaded(policy, lock_path, lock)
    usable = tuple(e for e in policy.entries if not lock.problems(e.key))
    return Loaded(replace(policy, entries=usable), lock_path, lock, problems, policy)


def lock_problems(policy: Policy, lock: Lock) -> tuple[EntryProblem, ...]:
    """The unreadable lock entries: one problem per policy entry they belong to (every error of
    its records), and one per entry of no readable source -> target."""
    out: list[EntryProblem] = []
    for entry in policy.entries:
        errors = lock.problems(entry.key)
        if errors:
            why = "; ".join(str(e) for e in errors)
            out.append(EntryProblem(
                entry.name, str(entry.source),
                f"lock records unreadable (`imagevet lock` resolves them again): {why}",
            ))
    for bad in lock.unreadable:
        if bad.key is None:
            why = "; ".join(str(e) for e in bad.errors)
            out.append(EntryProblem(
                "(lock)", "no readable source -> target", f"{why} (fix or remove this lock entry)"
            ))
    return tuple(out)


STATE_DIR_ENV = "IMAGEVET_STATE_DIR"


def state_store(policy: Policy) -> FileStateStore:
    """Where sync keeps its run state (ledger, run summaries, held updates, the verified
    source-index cache): ``.imagevet/`` next to the policy, or the directory ``IMAGEVET_STATE_DIR``
    names (relative to the current directory) — a deployment keeps the policy on a read-only
    mount and its state on a volume of its own.

    Plan and sync never read the ledger: what a mirror must hold is derived from source bytes.
    """
    return FileStateStore(state_dir(policy))


def state_dir(policy: Policy) -> Path:
    """The state directory of :func:`state_store` (where the run lock is taken too)."""
    named = os.environ.get(STATE_DIR_ENV, "")
    return Path(named) if named else state_dir_for(policy.path)


@asynccontextmanager
async def hub_manager(policy: Policy) -> AsyncIterator[RepositoryManager | None]:
    """A Docker Hub repository manager when the target is on Docker Hub (or a Hub is configured).

    ``IMAGEVET_HUB_URL`` names the Hub API for a target registry that is not docker.io (tests,
    and registries that Docker Hub's API fronts); Hub credentials come from
    ``DOCKER_HUB_USERNAME``/``DOCKER_HUB_TOKEN``.
    """
    # an OCI layout target is never a Docker Hub namespace, whatever IMAGEVET_HUB_URL says
    on_hub = not policy.target.is_layout and (
        policy.target.is_docker_hub or bool(os.environ.get("IMAGEVET_HUB_URL"))
    )
    if not on_hub:
        yield None
        return
    # only now: a target that is not Docker Hub never loads the Hub client's modules
    from imagevet.hub import HubClient, HubRepositoryManager, hub_settings_from_env

    url, credentials = hub_settings_from_env(os.environ)
    if credentials is None:
        err_console.print(
            "[yellow]note:[/] no DOCKER_HUB_USERNAME/DOCKER_HUB_TOKEN: repositories are not "
            "created or configured (pushing may still create them)", highlight=False,
        )
        yield None
        return
    async with HubClient(url, credentials) as client:
        yield HubRepositoryManager(client)


_MARK = {
    ActionKind.CREATE_REPO: "+", ActionKind.UPDATE_REPO: "~", ActionKind.COPY: "+",
    ActionKind.UPDATE: "~", ActionKind.HOLD: "!", ActionKind.PRUNE: "-", ActionKind.NOOP: "=",
    ActionKind.DEFER: ">",
}
_VERB = {
    ActionKind.CREATE_REPO: "create", ActionKind.UPDATE_REPO: "update", ActionKind.COPY: "copy",
    ActionKind.UPDATE: "update", ActionKind.HOLD: "hold", ActionKind.PRUNE: "prune?",
    ActionKind.NOOP: "ok", ActionKind.DEFER: "defer",
}
_WIDTH = 100
"""No line of a typical plan is wider (a 120-column terminal shows it unwrapped)."""
_TAG_WIDTH = 20
"""Tags up to this width line up in a column; a longer one pushes its own line only."""


def _short(digest: Digest | None) -> str:
    return f"{digest.algorithm}:{digest.hex[:12]}" if digest is not None else "-"


def _repository(ref: Reference) -> str:
    """``bitnami/redis`` on Docker Hub, ``host/path`` elsewhere; no tag, no digest."""
    return dataclasses.replace(ref, tag=None, digest=None).familiar


def _transfer(action: Copy | Update) -> str:
    subset = (
        f"  {', '.join(str(p) for p in action.platforms)} only"
        if action.platforms is not None
        else ""
    )
    note = f"; {action.note}" if action.note else ""
    if isinstance(action, Update):
        detail = f"{_short(action.old_digest)} -> {_short(action.digest)}  backup {action.backup.tag}"
    else:
        detail = _short(action.digest)
    return f"{detail}{subset}{note}"


def _pulls(plan: Plan) -> str:
    """``pulls: docker.io ~9, host ~2``: what the copies and updates cost, per registry."""
    total: dict[str, int] = {}
    for action in plan.actions:
        if isinstance(action, Copy | Update):
            for registry, n in action.costs().items():
                total[registry] = total.get(registry, 0) + n
    return ", ".join(f"{registry} ~{n}" for registry, n in total.items() if n)


def _what(action: Action) -> tuple[str, str]:
    """The name column (a tag, ``repository``, or a short digest) and the rest of the line."""
    if isinstance(action, CreateRepo):
        return "repository", f"({'private' if action.spec.private else 'public'})"
    if isinstance(action, UpdateRepo):
        return "repository", "; ".join(c.detail for c in action.changes)
    target = action.action.target if isinstance(action, Defer) else action.target
    name = target.tag or _short(target.digest)
    if isinstance(action, Copy | Update):
        return name, _transfer(action)
    if isinstance(action, Defer):
        return name, f"{action.reason}: {_transfer(action.action)}"
    if isinstance(action, Hold):
        upstream = f" (upstream now {_short(action.upstream)})" if action.upstream else ""
        return name, f"{action.reason}{upstream}"
    if isinstance(action, Prune):
        return name, f"{_short(action.digest)}  {action.reason}; deleted with --prune"
    return name, _short(action.digest)


def _source(action: Action) -> Reference | None:
    if isinstance(action, Defer):
        return action.action.source
    return action.source if isinstance(action, Copy | Update) else None


def print_plan(plan: Plan, *, verbose: bool = False) -> None:
    """The plan as the lock diff reads: a ``source -> target`` line per entry, then one action a
    line (``+`` create or copy, ``~`` update, ``!`` hold, ``-`` prune candidate, ``>`` deferred,
    ``=`` up to date, listed only when ``verbose``) with short digests; then warnings and a
    summary.  Text from registries and the ledger is escaped (:func:`terminal_safe`)."""
    groups: dict[tuple[str, str], list[Action]] = {}
    sources: dict[tuple[str, str], str] = {}
    for action in plan.actions:
        target = action.action.target if isinstance(action, Defer) else action.target
        key = (action.entry, _repository(target))
        groups.setdefault(key, [])
        source = _source(action)
        if source is not None:
            sources.setdefault(key, _repository(source))
        if action.kind is not ActionKind.NOOP or verbose:
            groups[key].append(action)
    for key, actions in groups.items():
        if not actions:
            continue
        entry, repository = key
        console.print(terminal_safe(f"{sources.get(key, entry)} -> {repository}"), highlight=False)
        rows = [(a, *_what(a)) for a in actions]
        width = min(_TAG_WIDTH, max(len(name) for _, name, _ in rows))
        for action, name, rest in rows:
            style = _STYLE.get(action.kind, "")
            mark = f"[{style}]{_MARK[action.kind]}[/]" if style else _MARK[action.kind]
            line = f"{name:<{width}}  {_VERB[action.kind]:<6}  {rest}"
            console.print(f"  {mark} {terminal_safe(line)}", highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {terminal_safe(warning)}", highlight=False)
    pulls = _pulls(plan)
    if pulls:
        console.print(f"pulls (estimated): {terminal_safe(pulls)}", highlight=False)
    counts = {k: v for k, v in plan.summary().items() if v}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no entries"
    verdict = "changes pending" if plan.has_changes else "nothing to do"
    line = f"plan: {verdict} ({summary})"
    if len(line) > _WIDTH:  # every kind at once: the counts go on a line of their own
        line = f"plan: {verdict}\n  ({summary})"
    console.print(line, highlight=False)


def print_plan_report(
    plan: Plan, problems: Sequence[EntryProblem], *, as_json: bool, verbose: bool = False
) -> None:
    """What ``plan`` and ``sync --dry-run`` print: the plan (or its JSON with ``problems``), then
    each entry that could not be planned, with why, on stderr."""
    if as_json:
        out = plan.to_json()
        out["problems"] = [{"entry": p.entry, "source": p.source, "message": p.message} for p in problems]
        print_json(out)
        return
    print_plan(plan, verbose=verbose)
    for p in problems:
        err_console.print(f"[red]error:[/] {terminal_safe(f'{p.entry} ({p.source}): {p.message}')}", highlight=False)
