"""Sync: observe the targets, plan, and carry out the plan with the copy engine.

One image, from policy entry to pushed tag::

    policy entry --resolve--> lock record (tag -> digest)       imagevet.resolve
                 --observe--> source/target HEADs, repo diff      observe() here
                 --plan-----> Copy / Update / Hold / ...          imagevet.plan.plan_sync
                 --apply----> repository settings, then images    apply_plan() here
                 --record---> run summary (JSON) + audit ledger   SyncReport, imagevet.ledger

Observation costs HEAD requests and tag listings only.  Applying goes repository first (a
:class:`~imagevet.repository_spec.RepositoryManager` creates and configures Docker Hub
repositories; plain OCI registries need none), then images a few at a time through one
:class:`~imagevet.copy.CopySession` (each blob moves once per run).  A failing image is reported
with its reason and the others go on.  An ``Update`` first writes the backup tag (the replaced
digest), then re-points the tag.  Prune candidates are deleted only when asked, and only when no
other tag of the target still points at the same manifest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from imagevet.copy import (
    DEFAULT_JOBS,
    CopyOptions,
    CopyProgress,
    CopyResult,
    CopySession,
)
from imagevet.digest import Digest, is_digest_tag
from imagevet.errors import ImagevetError, NotFoundError
from imagevet.lock import Lock, LockedImage, LockEntry, valid_media_type
from imagevet.manifest_cache import ManifestCache
from imagevet.plan import (
    Action,
    ActionKind,
    Copy,
    CreateRepo,
    EntryProblem,
    Observed,
    Plan,
    Prune,
    SourceState,
    TargetState,
    Update,
    UpdateRepo,
    desired_tags,
    plan_sync,
)
from imagevet.policy import Entry, Mode, Policy
from imagevet.reference import Reference
from imagevet.registry import RegistryClient
from imagevet.repository_spec import RepositoryManager, RepoSpec
from imagevet.resolve import HEAD_CONCURRENCY, Upstream, valid_tags

__all__ = [
    "ActionOutcome",
    "SyncOptions",
    "SyncReport",
    "apply_plan",
    "follow_lock",
    "observe",
    "plan_policy",
    "repo_specs",
    "summarize_requests",
]

log = logging.getLogger(__name__)



class OverviewRenderer(Protocol):
    """Writes a repository overview (Markdown); Docker Hub's is ``imagevet.hub.render_overview``."""

    def __call__(
        self, *, upstream: str, policy_entry: str, approver: str, approval_expiry: Any,
        tags: Iterable[tuple[str, str, Any]], last_sync: Any,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """How a sync runs."""

    jobs: int = DEFAULT_JOBS
    """Blob transfers at once, across all images."""
    images: int = 4
    """Images copied at once."""
    prune: bool = False
    """Delete target tags the policy no longer selects (otherwise they are only reported)."""


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What happened to one planned action."""

    action: Action
    status: str
    """``done``, ``failed``, ``skipped`` (an earlier step of its entry failed) or ``reported``."""
    message: str = ""
    result: CopyResult | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"status": self.status, "message": self.message, **self.action.to_json()}
        if self.result is not None:
            out["copy"] = self.result.to_json()
        return out


@dataclass(frozen=True, slots=True)
class SyncReport:
    """The outcome of one sync: every action, and what it cost."""

    plan: Plan
    outcomes: tuple[ActionOutcome, ...] = ()
    problems: tuple[EntryProblem, ...] = ()
    seconds: float = 0.0
    requests: Mapping[str, int] = field(default_factory=dict)

    @property
    def bytes_copied(self) -> int:
        """Bytes of blobs moved by this run's copies."""
        return sum(o.result.bytes_copied for o in self.outcomes if o.result is not None)

    @property
    def failed(self) -> list[ActionOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            key = str(o.action.kind) if o.status in ("done", "reported") else o.status
            out[key] = out.get(key, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "ok": self.ok,
            "now": self.plan.now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "requests": dict(self.requests),
            "warnings": list(self.plan.warnings),
            "problems": [
                {"entry": p.entry, "source": p.source, "message": p.message} for p in self.problems
            ],
            "actions": [o.to_json() for o in self.outcomes],
        }

    def ledger_events(self) -> list[dict[str, Any]]:
        """One event per action that did or failed something, plus the run itself."""
        events: list[dict[str, Any]] = [{"kind": "run", "counts": self.counts(), "ok": self.ok}]
        for o in self.outcomes:
            if o.action.kind is ActionKind.NOOP:
                continue
            event = o.to_json()
            event["action"] = event.pop("kind")
            event["kind"] = o.action.kind.value
            events.append(event)
        return events


# ---- observation -----------------------------------------------------------------------------


async def _observe_target(
    client: RegistryClient,
    entry: Entry,
    spec: RepoSpec,
    manager: RepositoryManager | None,
    gate: asyncio.Semaphore,
) -> tuple[TargetState, str | None]:
    changes = tuple(await manager.diff(spec)) if manager is not None else ()
    try:
        listed = await client.list_tags(entry.target)
    except NotFoundError:
        return TargetState(exists=False, listed=True, changes=changes), None
    valid, warning = valid_tags(entry.target, listed, "target")

    async def head(ref: Reference) -> Digest | None:
        async with gate:
            found = await client.head_manifest(ref)
        return found.digest if found is not None else None

    names = [t for t in valid if not is_digest_tag(t)]
    digests = await asyncio.gather(*(head(entry.target.with_tag(t)) for t in names))
    explicit = await asyncio.gather(*(head(entry.target.with_digest(d)) for d in entry.tags.digests))
    state = TargetState(
        exists=True,
        tags=dict(zip(names, digests, strict=True)),
        listed=True,
        digests=frozenset(d for d in explicit if d is not None),
        changes=changes,
    )
    return state, warning


async def observe(
    client: RegistryClient,
    policy: Policy,
    *,
    lock: Lock | None = None,
    specs: Mapping[str, RepoSpec] | None = None,
    manager: RepositoryManager | None = None,
    cache: ManifestCache | None = None,
) -> tuple[Observed, list[EntryProblem]]:
    """HEAD what the plan needs: each entry's upstream tags and every target tag.

    Sources are read once however many entries share one (:class:`Upstream`); each entry gets
    its own selection.  For an entry with a platform subset whose target tag holds something,
    the digest it must hold is derived from the source index's bytes (``cache``, else one GET)
    for the digest the entry wants there (``lock`` under ``pinned``, upstream under ``follow``).
    One entry's failure (its source, its target, a subset that cannot be derived) is that entry's
    problem; the others go on.  Tags a listing holds that no reference can name are skipped
    with a warning.
    """
    gate = asyncio.Semaphore(HEAD_CONCURRENCY)
    upstream = Upstream(client, gate, cache)
    problems: dict[str, list[EntryProblem]] = {e.name: [] for e in policy.entries}
    target_warnings: dict[str, str] = {}

    async def source(entry: Entry) -> tuple[str, SourceState | None]:
        try:
            return entry.name, await upstream.select(entry)
        except ImagevetError as e:
            problems[entry.name].append(EntryProblem(entry.name, str(entry.source), str(e)))
            return entry.name, None

    async def target(entry: Entry, src: SourceState | None) -> tuple[Reference, TargetState]:
        spec = (specs or {}).get(entry.name) or entry.repo_spec()
        try:
            state, warning = await _observe_target(client, entry, spec, manager, gate)
        except ImagevetError as e:
            problems[entry.name].append(EntryProblem(entry.name, str(entry.target), str(e)))
            return entry.target, TargetState(error=str(e))
        if warning:
            target_warnings[entry.name] = warning
        if entry.platforms is None:
            return entry.target, state
        wanted = desired_tags(entry, lock.entry(entry.key) if lock else None, src)
        held = {wanted[t] for t, d in state.tags.items() if d is not None and t in wanted}
        subsets: dict[Digest, Digest] = {}
        unverified: dict[Digest, str] = {}

        async def derive(digest: Digest) -> None:
            try:
                subsets[digest] = await upstream.subset(entry, digest)
            except ImagevetError as e:
                unverified[digest] = str(e)

        await asyncio.gather(*(derive(d) for d in held))
        for digest in sorted(unverified, key=str):
            problems[entry.name].append(EntryProblem(
                entry.name, str(entry.source),
                f"cannot derive the platform subset of {digest}: {unverified[digest]}",
            ))
        return entry.target, replace(state, subsets=subsets, unverified=unverified)

    async def one(entry: Entry) -> tuple[tuple[str, SourceState | None], tuple[Reference, TargetState]]:
        src = await source(entry)
        return src, await target(entry, src[1])

    results = await asyncio.gather(*(one(e) for e in policy.entries))
    sources = {name: state for (name, state), _ in results if state is not None}
    targets = dict(t for _, t in results)
    remaining = {
        registry: rl.remaining
        for registry, rl in client.ratelimits.items()
        if rl.remaining is not None
    }
    warnings = (
        *(upstream.warnings[k] for k in sorted(upstream.warnings)),
        *(target_warnings[e.name] for e in policy.entries if e.name in target_warnings),
    )
    found = [p for e in policy.entries for p in problems[e.name]]
    return Observed(sources, targets, remaining, warnings), found


async def plan_policy(
    client: RegistryClient,
    policy: Policy,
    lock: Lock,
    *,
    now: datetime,
    manager: RepositoryManager | None = None,
    specs: Mapping[str, RepoSpec] | None = None,
    cache: ManifestCache | None = None,
    budget_reserve: int = 0,
) -> tuple[Plan, Observed, list[EntryProblem]]:
    """Observe and plan: what ``sync`` would do now (``plan`` and ``sync --dry-run`` print it).

    ``cache`` keeps source index bytes to check platform-subset mirrors against (see
    :func:`observe`); without it each such check costs a manifest GET.
    """
    observed, problems = await observe(
        client, policy, lock=lock, specs=specs, manager=manager, cache=cache
    )
    plan = plan_sync(policy, lock, observed, now=now, budget_reserve=budget_reserve)
    return plan, observed, problems


# ---- applying --------------------------------------------------------------------------------


async def _backup(client: RegistryClient, action: Update) -> None:
    """Keep the digest a tag is about to leave under the backup tag (same repository)."""
    old = await client.get_manifest(action.target.repo().with_digest(action.old_digest))
    await client.put_manifest(action.backup, old)


async def _prune(client: RegistryClient, action: Prune, keep: Mapping[Reference, set[Digest]]) -> str:
    if action.digest is None:
        return "not deleted: its digest is unknown"
    if action.digest in keep.get(action.target.repo(), set()):
        return "not deleted: another tag still points at the same manifest"
    try:
        await client.delete_manifest(action.target.repo().with_digest(action.digest))
    except NotFoundError:
        return "deleted (it was already gone)"
    return "deleted"


async def apply_plan(
    client: RegistryClient,
    plan: Plan,
    observed: Observed,
    *,
    manager: RepositoryManager | None = None,
    specs: Mapping[str, RepoSpec] | None = None,
    options: SyncOptions | None = None,
    progress: CopyProgress | None = None,
    cache: ManifestCache | None = None,
) -> SyncReport:
    """Carry out ``plan``: repositories first, then images; see the module docstring.

    ``specs`` are the repository specs the plan was observed with (:func:`repo_specs`, with the
    overview); an entry not in it uses the plan's own.  ``cache`` keeps the source index of each
    platform subset copied, so the next run checks that mirror without a manifest GET.
    """
    opts = options or SyncOptions()
    started = time.monotonic()
    outcomes: dict[int, ActionOutcome] = {}
    broken: set[str] = set()  # entries whose repository step failed
    session = CopySession(client, CopyOptions(jobs=opts.jobs), progress=progress)

    for i, action in enumerate(plan.actions):
        if isinstance(action, CreateRepo | UpdateRepo):
            if manager is None:
                outcomes[i] = ActionOutcome(action, "reported", "no repository manager for this registry")
                continue
            try:
                await manager.apply((specs or {}).get(action.entry, action.spec), action.changes)
                outcomes[i] = ActionOutcome(action, "done")
            except ImagevetError as e:
                broken.add(action.entry)
                outcomes[i] = ActionOutcome(action, "failed", str(e))

    gate = asyncio.Semaphore(max(1, opts.images))

    async def image(i: int, action: Copy | Update) -> None:
        if action.entry in broken:
            outcomes[i] = ActionOutcome(action, "skipped", "its repository could not be prepared")
            return
        copy_options = CopyOptions(
            jobs=opts.jobs, referrers=action.referrers, platforms=action.platforms
        )
        async with gate:
            try:
                if isinstance(action, Update):
                    await _backup(client, action)
                result = await session.copy(action.source, action.target, options=copy_options)
                outcomes[i] = ActionOutcome(action, "done", result=result)
                if cache is not None and result.source_index is not None:
                    await asyncio.to_thread(cache.put, result.source_index, result.source_digest)
            except ImagevetError as e:
                outcomes[i] = ActionOutcome(action, "failed", str(e))
            except Exception as e:  # a bug must not abort the run before its summary is written
                log.exception("%s: unexpected error", action.target)
                outcomes[i] = ActionOutcome(action, "failed", f"unexpected {type(e).__name__}: {e}")

    await asyncio.gather(*(
        image(i, a) for i, a in enumerate(plan.actions) if isinstance(a, Copy | Update)
    ))

    # A manifest may be deleted only if nothing that stays points at it: tags not pruned
    # (backup tags included), the policy's explicit digests, and what this run just pushed.
    keep: dict[Reference, set[Digest]] = {}
    pruned = {(a.target.repo(), a.target.tag) for a in plan.actions if isinstance(a, Prune)}
    for repo, state in observed.targets.items():
        keep[repo] = {d for t, d in state.tags.items() if d is not None and (repo, t) not in pruned}
        keep[repo] |= set(state.digests)
    for outcome in outcomes.values():
        if isinstance(outcome.action, Copy | Update) and outcome.status == "done":
            pushed = keep.setdefault(outcome.action.target.repo(), set())
            pushed.add(outcome.action.digest)
            if outcome.result is not None:
                pushed.add(outcome.result.digest)
    for i, action in enumerate(plan.actions):
        if i in outcomes:
            continue
        if isinstance(action, Prune) and opts.prune:
            try:
                outcomes[i] = ActionOutcome(action, "done", await _prune(client, action, keep))
            except ImagevetError as e:
                outcomes[i] = ActionOutcome(action, "failed", str(e))
        else:
            outcomes[i] = ActionOutcome(action, "reported", action.describe())

    return SyncReport(
        plan, tuple(outcomes[i] for i in range(len(plan.actions))),
        seconds=time.monotonic() - started,
    )


def summarize_requests(client: RegistryClient) -> dict[str, int]:
    """Requests made so far, by method and kind (``HEAD manifest``: 12, ...)."""
    out: dict[str, int] = {}
    for record in client.stats:
        key = f"{record.method} {record.kind}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def follow_lock(policy: Policy, lock: Lock, report: SyncReport, observed: Observed) -> Lock:
    """The lock with what ``follow`` entries now mirror, built from this run's copy results.

    Under ``mode: follow`` upstream changes are mirrored without a new ``imagevet lock``, so the
    lock (what ``check`` and the Hub overview read as vetted) is brought along: a tag copied or
    updated this run gets a record from its copy result (no extra request), a tag still at its
    locked digest keeps its record, a tag held, deferred or failed keeps its old one, and a tag
    gone upstream is dropped.  ``pinned`` entries are never touched.
    """
    copied: dict[Reference, CopyResult] = {}
    for outcome in report.outcomes:
        action = outcome.action
        if outcome.status == "done" and isinstance(action, Copy | Update) and outcome.result:
            copied[action.target] = outcome.result
    for entry in policy.entries:
        if entry.mode is not Mode.FOLLOW:
            continue
        state = observed.source(entry)
        if state is None:
            continue  # source not read this run: keep what the lock says
        old = lock.entry(entry.key)
        tags: dict[str, LockedImage] = {}
        for tag, digest in state.tags.items():
            previous = old.tags.get(tag) if old is not None else None
            result = copied.get(entry.target.with_tag(tag))
            if previous is not None and previous.digest == digest:
                tags[tag] = previous
            elif result is not None and result.source_digest == digest and valid_media_type(result.media_type):
                tags[tag] = LockedImage(
                    digest, result.media_type, report.plan.now, tuple(result.source_platforms),
                    tuple(Digest.parse(a) for a in result.attachments if ":" in a),
                )
            elif previous is not None:
                tags[tag] = previous
        digests = dict(old.digests) if old is not None else {}
        lock = lock.with_entry(LockEntry(entry.source, entry.target, tags, digests))
    return lock


def repo_specs(
    policy: Policy, lock: Lock, overview: OverviewRenderer | None = None
) -> dict[str, RepoSpec]:
    """The desired state of every target repository; ``overview`` writes its full description.

    The overview is made from the lock (tags, source digests, when each was resolved) and the
    approval, so it changes only when what is vetted changes: a no-op sync stays a no-op.
    """
    out: dict[str, RepoSpec] = {}
    for entry in policy.entries:
        spec = entry.repo_spec()
        locked = lock.entry(entry.key)
        if overview is not None:
            tags = [(t, str(i.digest), i.resolved_at) for t, i in (locked.tags.items() if locked else [])]
            last = max((i.resolved_at for i in locked.tags.values()), default=None) if locked else None
            spec = replace(spec, full_description=overview(
                upstream=str(entry.source), policy_entry=entry.name,
                approver=entry.approval.describe(),
                approval_expiry=entry.approval.expires.isoformat() if entry.approval.expires else None,
                tags=tags, last_sync=last,
            ))
        out[entry.name] = spec
    return out


def entries_by_name(policy: Policy, names: Sequence[str]) -> list[Entry]:
    """The entries called ``names`` (all when empty); KeyError naming an unknown one."""
    if not names:
        return list(policy.entries)
    return [policy.entry(n) for n in names]
