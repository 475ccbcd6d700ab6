"""What the policy commands share: loading policy and lock, the Hub manager, rendering plans."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from imagevet.cli.common import console, err_console, handle_errors
from imagevet.lock import Lock, lock_path_for, read_lock
from imagevet.manifest_cache import ManifestCache
from imagevet.plan import ActionKind, Plan
from imagevet.policy import Policy, load_policy
from imagevet.reference import DOCKER_HUB
from imagevet.repository_spec import RepositoryManager
from imagevet.resolve import SourceProblem

__all__ = [
    "LEDGER_NAME",
    "POLICY_OPTION",
    "Loaded",
    "hub_manager",
    "load",
    "lock_problems",
    "manifest_cache",
    "print_plan",
    "state_dir",
]

POLICY_OPTION = typer.Option(
    Path("imagevet.yaml"), "--policy", "-p", help="The policy file; the lock sits next to it."
)
LEDGER_NAME = "ledger.jsonl"

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
    problems: tuple[SourceProblem, ...] = ()
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


def lock_problems(policy: Policy, lock: Lock) -> tuple[SourceProblem, ...]:
    """The unreadable lock entries: one problem per policy entry they belong to (every error of
    its records), and one per entry of no readable source -> target."""
    out: list[SourceProblem] = []
    for entry in policy.entries:
        errors = lock.problems(entry.key)
        if errors:
            why = "; ".join(str(e) for e in errors)
            out.append(SourceProblem(
                entry.name, str(entry.source),
                f"lock records unreadable (`imagevet lock` resolves them again): {why}",
            ))
    for bad in lock.unreadable:
        if bad.key is None:
            why = "; ".join(str(e) for e in bad.errors)
            out.append(SourceProblem(
                "(lock)", "no readable source -> target", f"{why} (fix or remove this lock entry)"
            ))
    return tuple(out)


def state_dir(policy: Policy) -> Path:
    """Where sync keeps its ledger and run summaries: ``.imagevet/`` next to the policy."""
    return policy.path.parent / ".imagevet"


def manifest_cache(policy: Policy) -> ManifestCache:
    """The source index bytes that platform-subset mirrors are checked against (state directory).

    Plan and sync never read the ledger: what a mirror must hold is derived from source bytes.
    """
    return ManifestCache(state_dir(policy))


@asynccontextmanager
async def hub_manager(policy: Policy) -> AsyncIterator[RepositoryManager | None]:
    """A Docker Hub repository manager when the target is on Docker Hub (or a Hub is configured).

    ``IMAGEVET_HUB_URL`` names the Hub API for a target registry that is not docker.io (tests,
    and registries that Docker Hub's API fronts); Hub credentials come from
    ``DOCKER_HUB_USERNAME``/``DOCKER_HUB_TOKEN``.
    """
    from imagevet.hub import HubClient, HubRepositoryManager, hub_settings_from_env

    on_hub = policy.target.registry == DOCKER_HUB or bool(os.environ.get("IMAGEVET_HUB_URL"))
    if not on_hub:
        yield None
        return
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


def print_plan(plan: Plan, *, verbose: bool = False) -> None:
    """One line per action (up-to-date tags folded into the count unless ``verbose``), then warnings."""
    for action in plan.actions:
        if action.kind is ActionKind.NOOP and not verbose:
            continue
        style = _STYLE.get(action.kind, "")
        console.print(f"[{style}]{str(action.kind):<12}[/] {escape(action.describe())}", highlight=False)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    counts = {k: v for k, v in plan.summary().items() if v}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no entries"
    verdict = "changes pending" if plan.has_changes else "nothing to do"
    console.print(f"plan: {verdict} ({summary})", highlight=False)
