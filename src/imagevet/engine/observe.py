"""Observe: what the sources and the targets hold now, read once per run, HEADs where possible.

One image, from policy entry to pushed tag::

    policy entry --resolve--> lock record (tag -> digest)       imagevet.engine.resolve
                 --observe--> source/target HEADs, repo diff      observe() here
                 --plan-----> Copy / Update / Hold / ...          imagevet.plan.plan_sync
                 --apply----> repository settings, then images    imagevet.sync.apply_plan

Source and target are two image stores (:class:`~imagevet.store.ImageStore`; the same object
when one registry client serves both ends).  Sources (:class:`Upstream`): one tag listing per
repository, one HEAD per (repository, tag), one GET per index a platform subset is derived from
(through the manifest cache), however many entries share a repository; each entry selects from
it by its own rules.  ``imagevet lock`` also reads a digest it has never seen
(:meth:`Upstream.describe`: one GET, the referrers).  Targets (:func:`observe`): the
repository's tag listing and one HEAD per tag, no manifest GET.  Pull budgets left come from
the stores that report them (:class:`~imagevet.store.RateLimited`).  One entry's failure is
that entry's :class:`~imagevet.plan.EntryProblem` (with its typed cause); the others go on.
Tags a listing holds that no reference can name are skipped with a warning.

An entry with a ``verify:`` rule gets a verdict for each digest it would mirror
(:func:`imagevet.engine.verify.entry_verdicts`: the lock's record verified under the rule, else,
under ``follow``, the signature lookup now), which the planner turns into a Hold when it is not
verified.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from imagevet.digest import Digest, is_digest_tag
from imagevet.engine.evidence import scan_verdicts_for
from imagevet.engine.verify import Checker, Verifier, entry_verdicts
from imagevet.errors import ImagevetError, NotFoundError
from imagevet.lock import Lock, LockedImage, LockEntry, LockRecordError, Verified
from imagevet.manifest import Descriptor, RawManifest, subset_index
from imagevet.manifest_cache import ManifestCache
from imagevet.plan import (
    EntryProblem,
    Observed,
    Plan,
    SourceState,
    TargetState,
    desired_tags,
    plan_sync,
)
from imagevet.policy import Entry, Policy, select_tags
from imagevet.policy.model import VerifyRule
from imagevet.reference import Reference, is_valid_tag
from imagevet.repository_spec import RepositoryManager, RepoSpec
from imagevet.store import ImageStore, RateLimited

__all__ = ["HEAD_CONCURRENCY", "Inspected", "Upstream", "observe", "plan_policy", "pulls_left", "valid_tags"]

HEAD_CONCURRENCY = 16
"""Manifest HEADs in flight at once, across all entries."""

_K = TypeVar("_K")
_V = TypeVar("_V")

_SHOWN_INVALID = 5
"""Invalid tags named in a listing's warning; the rest are counted."""


def valid_tags(repo: Reference, listed: Iterable[object], what: str) -> tuple[list[str], str | None]:
    """The listed tags that are tag names, and a warning naming the others (left out): a
    registry's listing is input like any other, and one odd tag never stops the rest."""
    good: list[str] = []
    bad: list[object] = []
    for tag in listed:
        if is_valid_tag(tag):
            good.append(tag)
        else:
            bad.append(tag)
    if not bad:
        return good, None
    shown = ", ".join(repr(t if isinstance(t, str) else str(t))[:80] for t in bad[:_SHOWN_INVALID])
    more = f" and {len(bad) - _SHOWN_INVALID} more" if len(bad) > _SHOWN_INVALID else ""
    return good, (
        f"{what} {repo.name} lists {len(bad)} invalid tag{'s' if len(bad) > 1 else ''}, "
        f"skipped: {shown}{more}"
    )


class Upstream:
    """What the source store holds, read once per run however many entries share a repository:
    one tag listing per repository, one HEAD per (repository, tag), one GET per index to derive a
    platform subset from (through the manifest cache).  Each entry selects from it by its own
    rules.  ``lock`` resolves with it, ``sync`` observes with it."""

    def __init__(
        self, store: ImageStore, gate: asyncio.Semaphore, cache: ManifestCache | None
    ) -> None:
        self.store = store
        self.gate = gate
        self.cache = cache
        self.warnings: dict[str, str] = {}
        self._listings: dict[str, asyncio.Task[list[str]]] = {}
        self._heads: dict[tuple[str, str], asyncio.Task[Digest | None]] = {}
        self._indexes: dict[tuple[str, Digest], asyncio.Task[RawManifest]] = {}

    @staticmethod
    def _once(tasks: dict[_K, asyncio.Task[_V]], key: _K, make: Callable[[], Awaitable[_V]]) -> Awaitable[_V]:
        task = tasks.get(key)
        if task is None:
            task = tasks[key] = asyncio.ensure_future(make())
        return asyncio.shield(task)

    async def tags(self, repo: Reference) -> list[str]:
        return await self._once(self._listings, repo.name, lambda: self._list(repo))

    async def _list(self, repo: Reference) -> list[str]:
        good, warning = valid_tags(repo, await self.store.list_tags(repo), "source")
        if warning:
            self.warnings[repo.name] = warning
        return good

    async def head(self, repo: Reference, tag: str) -> Digest | None:
        return await self._once(self._heads, (repo.name, tag), lambda: self._head(repo, tag))

    async def _head(self, repo: Reference, tag: str) -> Digest | None:
        async with self.gate:
            found = await self.store.head_manifest(repo.with_tag(tag))
        return found.digest if found is not None else None

    async def index(self, repo: Reference, digest: Digest) -> RawManifest:
        """The source manifest ``digest`` (cached, else one verified GET, then cached)."""
        return await self._once(self._indexes, (repo.name, digest), lambda: self._index(repo, digest))

    async def _index(self, repo: Reference, digest: Digest) -> RawManifest:
        if self.cache is not None:
            cached = await asyncio.to_thread(self.cache.get, digest)
            if cached is not None:
                return cached
        async with self.gate:
            manifest = await self.store.get_manifest(repo.with_digest(digest))
        if self.cache is not None:
            await asyncio.to_thread(self.cache.put, manifest, digest)
        return manifest

    async def select(self, entry: Entry) -> SourceState:
        """The entry's own selection of its source's tags, each with its digest (HEAD)."""
        selected = select_tags(await self.tags(entry.source), entry.tags)
        digests = await asyncio.gather(*(self.head(entry.source, t) for t in selected))
        # a tag deleted between the listing and its HEAD is simply not there any more
        return SourceState({t: d for t, d in zip(selected, digests, strict=True) if d is not None})

    async def subset(self, entry: Entry, digest: Digest) -> Digest:
        """The digest of the index ``entry``'s platforms make of the source's ``digest``."""
        assert entry.platforms is not None
        manifest = await self.index(entry.source, digest)
        if not manifest.is_index:
            return digest  # an image manifest is copied as it is
        return subset_index(manifest, entry.platforms).digest

    async def describe(self, entry: Entry, digest: Digest, now: datetime) -> LockedImage:
        """Read a digest never seen before: media type, platforms and the digest of each
        platform's manifest (one GET), referrers."""
        return (await self.inspect(entry, digest, now)).image

    async def inspect(self, entry: Entry, digest: Digest, now: datetime) -> Inspected:
        """What :meth:`describe` reads, with the manifest, the referrers' descriptors and the
        repository's tags it was read from (for the evidence kept with the lock)."""
        repo = entry.source
        listed = frozenset(await self.tags(repo))
        manifest = await self.store.get_manifest(repo.with_digest(digest))
        platforms = tuple(manifest.platforms())
        children = tuple(manifest.platform_manifests().items())
        found: list[Descriptor] = []
        if entry.referrers:
            fallback = digest.tag() in listed  # else no manifest GET for it
            found = await self.store.referrers(repo, digest, tag_schema=fallback)
        referrers = tuple(d.digest for d in found)
        try:
            image = LockedImage(digest, manifest.media_type, now, platforms, referrers, children)
        except LockRecordError as e:
            raise LockRecordError(f"{repo.with_digest(digest)}: {e}") from e
        return Inspected(image, manifest, tuple(found), listed)


@dataclass(frozen=True, slots=True)
class Inspected:
    """A digest read upstream: its lock record, manifest, referrers and the repository's tags."""

    image: LockedImage
    manifest: RawManifest
    referrers: tuple[Descriptor, ...]
    listed: frozenset[str]


async def _observe_target(
    store: ImageStore,
    entry: Entry,
    spec: RepoSpec,
    manager: RepositoryManager | None,
    gate: asyncio.Semaphore,
) -> tuple[TargetState, str | None]:
    """One target repository: the manager's diff, the tag listing, one HEAD per tag and per
    explicit digest (no GET); and a warning naming listed tags that are not tag names."""
    changes = tuple(await manager.diff(spec)) if manager is not None else ()
    try:
        listed = await store.list_tags(entry.target)
    except NotFoundError:
        return TargetState(exists=False, listed=True, changes=changes), None
    valid, warning = valid_tags(entry.target, listed, "target")

    async def head(ref: Reference) -> Digest | None:
        async with gate:
            found = await store.head_manifest(ref)
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


@dataclass(frozen=True, slots=True)
class _EntrySeen:
    """What observing one entry found: its selection upstream, its target, what went wrong."""

    source: SourceState | None
    target: TargetState
    warning: str | None
    problems: tuple[EntryProblem, ...]
    verdicts: Mapping[Digest, Verified | str] | None = None


async def observe(
    source: ImageStore,
    target: ImageStore,
    policy: Policy,
    *,
    lock: Lock | None = None,
    specs: Mapping[str, RepoSpec] | None = None,
    manager: RepositoryManager | None = None,
    cache: ManifestCache | None = None,
    verifiers: Mapping[VerifyRule, Verifier] | None = None,
) -> tuple[Observed, list[EntryProblem]]:
    """HEAD what the plan needs: each entry's upstream tags (``source``) and every target tag
    (``target``; the same store as ``source`` when one client serves both).

    Sources are read once however many entries share one (:class:`Upstream`); each entry gets
    its own selection.  For an entry with a platform subset whose target tag holds something,
    the digest it must hold is derived from the source index's bytes (``cache``, else one GET)
    for the digest the entry wants there (``lock`` under ``pinned``, upstream under ``follow``).
    One entry's failure (its source, its target, a subset that cannot be derived) is that entry's
    problem; the others go on.  Tags a listing holds that no reference can name are skipped
    with a warning.  ``verifiers``: the keys of each ``verify:`` rule (see the module docstring).
    """
    gate = asyncio.Semaphore(HEAD_CONCURRENCY)
    upstream = Upstream(source, gate, cache)
    checker = Checker(source)

    async def one(entry: Entry) -> _EntrySeen:
        spec = (specs or {}).get(entry.name) or entry.repo_spec()
        locked = lock.entry(entry.key) if lock else None
        seen = await _observe_entry(upstream, target, entry, spec, manager, locked)
        if entry.verify is None:
            return seen
        wanted = desired_tags(entry, locked, seen.source)
        verdicts = await entry_verdicts(
            checker, entry, (verifiers or {}).get(entry.verify), locked,
            [*wanted.values(), *entry.tags.digests],
        )
        return replace(seen, verdicts=verdicts)

    seen = await asyncio.gather(*(one(e) for e in policy.entries))
    entries = list(zip(policy.entries, seen, strict=True))
    sources = {e.name: s.source for e, s in entries if s.source is not None}
    targets = {e.target: s.target for e, s in entries}
    warnings = (
        *(upstream.warnings[k] for k in sorted(upstream.warnings)),
        *(s.warning for s in seen if s.warning),
    )
    problems = [p for s in seen for p in s.problems]
    verdicts = {e.name: s.verdicts for e, s in entries if s.verdicts is not None}
    return Observed(sources, targets, pulls_left(source, target), warnings, verdicts), problems


async def _observe_entry(
    upstream: Upstream,
    target: ImageStore,
    entry: Entry,
    spec: RepoSpec,
    manager: RepositoryManager | None,
    locked: LockEntry | None,
) -> _EntrySeen:
    """One entry: its source selection and its target, read at the same time (the target's
    listing does not depend on the source: behind latency that is one round trip of depth, not
    two), then the platform subsets it needs (which do)."""

    async def source_side() -> tuple[SourceState | None, EntryProblem | None]:
        try:
            return await upstream.select(entry), None
        except ImagevetError as e:
            return None, EntryProblem(entry.name, str(entry.source), str(e), e)

    async def target_side() -> tuple[TargetState, str | None] | EntryProblem:
        try:
            return await _observe_target(target, entry, spec, manager, upstream.gate)
        except ImagevetError as e:
            return EntryProblem(entry.name, str(entry.target), str(e), e)

    (selected, failed), observed = await asyncio.gather(source_side(), target_side())
    problems = [failed] if failed is not None else []
    if isinstance(observed, EntryProblem):
        problems.append(observed)
        return _EntrySeen(selected, TargetState(error=observed.message), None, tuple(problems))
    state, warning = observed
    if entry.platforms is not None:
        wanted = desired_tags(entry, locked, selected)
        state, unverified = await _with_subsets(upstream, entry, state, wanted)
        problems += unverified
    return _EntrySeen(selected, state, warning, tuple(problems))


async def _with_subsets(
    upstream: Upstream, entry: Entry, state: TargetState, wanted: Mapping[str, Digest]
) -> tuple[TargetState, list[EntryProblem]]:
    """``state`` with the digest the mirror must hold for each wanted digest a target tag holds
    something for, derived from the source index's bytes; a problem per one not derived."""
    held = {wanted[t] for t, d in state.tags.items() if d is not None and t in wanted}
    subsets: dict[Digest, Digest] = {}
    failed: dict[Digest, ImagevetError] = {}

    async def derive(digest: Digest) -> None:
        try:
            subsets[digest] = await upstream.subset(entry, digest)
        except ImagevetError as e:
            failed[digest] = e

    await asyncio.gather(*(derive(d) for d in held))
    problems = [
        EntryProblem(
            entry.name, str(entry.source),
            f"cannot derive the platform subset of {digest}: {failed[digest]}", failed[digest],
        )
        for digest in sorted(failed, key=str)
    ]
    unverified = {d: str(e) for d, e in failed.items()}
    return replace(state, subsets=subsets, unverified=unverified), problems


def pulls_left(*stores: ImageStore) -> dict[str, int]:
    """Pulls left per registry host, from the stores that report rate limits (the lowest when
    two stores report the same host); a host not listed is unlimited."""
    out: dict[str, int] = {}
    seen: list[ImageStore] = []
    for store in stores:
        if any(store is s for s in seen) or not isinstance(store, RateLimited):
            continue
        seen.append(store)
        for registry, rl in store.ratelimits.items():
            if rl.remaining is not None:
                out[registry] = min(rl.remaining, out.get(registry, rl.remaining))
    return out


async def plan_policy(
    source: ImageStore,
    target: ImageStore,
    policy: Policy,
    lock: Lock,
    *,
    now: datetime,
    manager: RepositoryManager | None = None,
    specs: Mapping[str, RepoSpec] | None = None,
    cache: ManifestCache | None = None,
    budget_reserve: int = 0,
    verifiers: Mapping[VerifyRule, Verifier] | None = None,
) -> tuple[Plan, Observed, list[EntryProblem]]:
    """Observe and plan: what ``sync`` would do now (``plan`` and ``sync --dry-run`` print it).

    ``cache`` keeps source index bytes to check platform-subset mirrors against (see
    :func:`observe`); without it each such check costs a manifest GET.
    """
    observed, problems = await observe(
        source, target, policy, lock=lock, specs=specs, manager=manager, cache=cache,
        verifiers=verifiers,
    )
    scans = await asyncio.to_thread(scan_verdicts_for, policy, lock)  # None: no entry scans
    plan = plan_sync(policy, lock, observed, now=now, budget_reserve=budget_reserve, scans=scans)
    return plan, observed, problems
