"""Sync: carry out a plan with the copy engine, and record what happened.

One image, from policy entry to pushed tag::

    policy entry --resolve--> lock record (tag -> digest)       imagevet.engine.resolve
                 --observe--> source/target HEADs, repo diff      imagevet.engine.observe
                 --plan-----> Copy / Update / Hold / ...          imagevet.plan.plan_sync
                 --apply----> repository settings, then images    apply_plan() here
                 --record---> run summary (JSON) + audit ledger   SyncReport, imagevet.ledger

Observation costs HEAD requests and tag listings only.  Applying goes repository first (a
:class:`~imagevet.repository_spec.RepositoryManager` creates and configures Docker Hub
repositories; plain OCI registries need none), then images a few at a time through one
:class:`~imagevet.engine.copy.CopySession` (each blob moves once per run).  A failing image is reported
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
from datetime import UTC
from typing import Any, Protocol

from imagevet.digest import Digest
from imagevet.engine.copy import (
    DEFAULT_JOBS,
    CopyOptions,
    CopyProgress,
    CopyResult,
    CopySession,
)
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
    Update,
    UpdateRepo,
)
from imagevet.policy import Entry, Mode, Policy
from imagevet.reference import Reference
from imagevet.repository_spec import RepositoryManager, RepoSpec
from imagevet.store import CountsRequests, ImageStore

__all__ = [
    "ActionOutcome",
    "SyncOptions",
    "SyncReport",
    "apply_plan",
    "follow_lock",
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
    error: ImagevetError | None = field(default=None, repr=False, compare=False)
    """A failure's typed error (a :class:`~imagevet.errors.CopyError` keeps its own ``cause``);
    ``message`` is its text."""

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


# ---- applying --------------------------------------------------------------------------------


async def _backup(target: ImageStore, action: Update) -> None:
    """Keep the digest a tag is about to leave under the backup tag (same repository)."""
    old = await target.get_manifest(action.target.repo().with_digest(action.old_digest))
    await target.put_manifest(action.backup, old)


async def _prune(target: ImageStore, action: Prune, keep: Mapping[Reference, set[Digest]]) -> str:
    if action.digest is None:
        return "not deleted: its digest is unknown"
    if action.digest in keep.get(action.target.repo(), set()):
        return "not deleted: another tag still points at the same manifest"
    try:
        await target.delete_manifest(action.target.repo().with_digest(action.digest))
    except NotFoundError:
        return "deleted (it was already gone)"
    return "deleted"


async def apply_plan(
    source: ImageStore,
    target: ImageStore,
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
    session = CopySession(source, target, CopyOptions(jobs=opts.jobs), progress=progress)

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
                outcomes[i] = ActionOutcome(action, "failed", str(e), error=e)

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
                    await _backup(target, action)
                result = await session.copy(action.source, action.target, options=copy_options)
                outcomes[i] = ActionOutcome(action, "done", result=result)
                if cache is not None and result.source_index is not None:
                    await asyncio.to_thread(cache.put, result.source_index, result.source_digest)
            except ImagevetError as e:
                outcomes[i] = ActionOutcome(action, "failed", str(e), error=e)
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
                outcomes[i] = ActionOutcome(action, "done", await _prune(target, action, keep))
            except ImagevetError as e:
                outcomes[i] = ActionOutcome(action, "failed", str(e), error=e)
        else:
            outcomes[i] = ActionOutcome(action, "reported", action.describe())

    return SyncReport(
        plan, tuple(outcomes[i] for i in range(len(plan.actions))),
        seconds=time.monotonic() - started,
    )


def summarize_requests(*stores: ImageStore) -> dict[str, int]:
    """Requests made so far by the stores that count them, by method and kind (``HEAD
    manifest``: 12, ...); a store passed twice (source and target) counts once."""
    out: dict[str, int] = {}
    for store in {id(s): s for s in stores}.values():
        if isinstance(store, CountsRequests):
            for key, n in store.request_counts().items():
                out[key] = out.get(key, 0) + n
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
                    manifests=tuple(result.source_manifests.items()),
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
