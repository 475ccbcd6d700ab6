"""Resolve a policy against its sources: which tags are selected and which digest each holds.

Cost, per entry: one tag listing, one manifest HEAD per selected tag (HEADs are not Docker Hub
pulls), and a manifest GET only for a digest the old lock has never seen (to record its
platforms), plus the referrers listing of that digest.  Re-locking with no upstream change makes
no GET at all and rewrites identical bytes.

An entry whose source cannot be read keeps its old lock records and is reported as a problem:
a registry outage never empties the lock.  Upstream values become lock records only through
:class:`~imagevet.lock.LockedImage`, which refuses a value the lock could not read back (a
media type that is not ``type/subtype``): that entry is a problem, the others go on.  Platforms
arrive normalised (:class:`~imagevet.manifest.Platform`), and a listed tag that is not a valid
tag name is left out (it cannot be pulled by name).  Unreadable entries of the old lock are
resolved again from scratch, or kept as they were read when that fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from imagevet.digest import Digest
from imagevet.errors import ImagevetError, NotFoundError
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    LockRecordError,
    carry_resolved_at,
)
from imagevet.manifest import RawManifest, subset_index
from imagevet.manifest_cache import ManifestCache
from imagevet.plan import EntryProblem, SourceState
from imagevet.policy import Entry, Policy, missing_tags, select_tags
from imagevet.reference import Reference, is_valid_tag
from imagevet.registry import RegistryClient

__all__ = ["HEAD_CONCURRENCY", "Resolution", "Upstream", "resolve_lock", "valid_tags"]

log = logging.getLogger(__name__)

HEAD_CONCURRENCY = 16
"""Manifest HEADs in flight at once, across all entries."""


@dataclass
class Resolution:
    """The new lock and what could not be resolved."""

    lock: Lock
    problems: list[EntryProblem] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Entry name -> explicit tags of its rules that upstream does not have."""


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
    """What sources hold, read once per run however many entries share a repository: one tag
    listing per repository, one HEAD per (repository, tag), one GET per index to derive a
    platform subset from (through the manifest cache).  Each entry selects from it by its own
    rules.  ``lock`` resolves with it, ``sync`` observes with it."""

    def __init__(
        self, client: RegistryClient, gate: asyncio.Semaphore, cache: ManifestCache | None
    ) -> None:
        self.client = client
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
        good, warning = valid_tags(repo, await self.client.list_tags(repo), "source")
        if warning:
            self.warnings[repo.name] = warning
        return good

    async def head(self, repo: Reference, tag: str) -> Digest | None:
        return await self._once(self._heads, (repo.name, tag), lambda: self._head(repo, tag))

    async def _head(self, repo: Reference, tag: str) -> Digest | None:
        async with self.gate:
            found = await self.client.head_manifest(repo.with_tag(tag))
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
            manifest = await self.client.get_manifest(repo.with_digest(digest))
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


async def _describe(
    client: RegistryClient, repo: Reference, digest: Digest, entry: Entry, now: datetime,
    listed: frozenset[str],
) -> LockedImage:
    """Read a digest never seen before: media type, platforms (GET), referrers."""
    manifest = await client.get_manifest(repo.with_digest(digest))
    platforms = tuple(manifest.platforms())
    referrers: tuple[Digest, ...] = ()
    if entry.referrers:
        fallback = digest.tag() in listed  # else no manifest GET for it
        found = await client.referrers(repo, digest, tag_schema=fallback)
        referrers = tuple(d.digest for d in found)
    try:
        return LockedImage(digest, manifest.media_type, now, platforms, referrers)
    except LockRecordError as e:
        raise LockRecordError(f"{repo.with_digest(digest)}: {e}") from None


async def _resolve_entry(
    upstream: Upstream, entry: Entry, old: LockEntry | None, now: datetime,
) -> tuple[LockEntry, SourceState]:
    client, gate = upstream.client, upstream.gate
    state = await upstream.select(entry)
    listed = frozenset(await upstream.tags(entry.source))
    known: dict[Digest, LockedImage] = {}

    async def image(digest: Digest) -> LockedImage:
        previous = old.find_digest(digest) if old is not None else None
        if previous is not None:
            return previous
        if digest not in known:
            async with gate:
                known[digest] = await _describe(client, entry.source, digest, entry, now, listed)
        return known[digest]

    tags = {tag: await image(d) for tag, d in sorted(state.tags.items())}
    digests: dict[Digest, LockedImage] = {}
    for digest in entry.tags.digests:
        try:
            digests[digest] = await image(digest)
        except NotFoundError:
            log.warning("%s: digest %s is not at %s", entry.name, digest, entry.source)
    images = {i.digest: i for i in (*tags.values(), *digests.values())}
    return LockEntry(entry.source, entry.target, tags, digests), SourceState(state.tags, images)


async def resolve_lock(
    client: RegistryClient,
    policy: Policy,
    old: Lock,
    *,
    now: datetime,
    entries: Sequence[Entry] | None = None,
) -> Resolution:
    """Resolve every entry (or only ``entries``) against upstream; see the module docstring."""
    upstream = Upstream(client, asyncio.Semaphore(HEAD_CONCURRENCY), None)
    chosen = list(entries) if entries is not None else list(policy.entries)

    async def one(entry: Entry) -> tuple[Entry, LockEntry | None, SourceState | None, str | None]:
        try:
            locked, state = await _resolve_entry(upstream, entry, old.entry(entry.key), now)
            return entry, locked, state, None
        except ImagevetError as e:
            return entry, None, None, str(e)

    resolution = Resolution(lock=Lock())
    new_entries: list[LockEntry] = []
    for entry, locked, state, error in await asyncio.gather(*(one(e) for e in chosen)):
        if locked is None or state is None:
            resolution.problems.append(EntryProblem(entry.name, str(entry.source), error or ""))
            kept = old.entry(entry.key)
            if kept is not None:
                new_entries.append(kept)
            continue
        new_entries.append(locked)
        absent = missing_tags(state.tags, entry.tags)
        if absent:
            resolution.missing[entry.name] = absent
    for warning in upstream.warnings.values():
        log.warning("%s", warning)
    # entries not resolved this time (``entries`` given) keep their records
    done = {e.key for e in new_entries} | {e.key for e in chosen}
    keep = [e for e in old.entries if e.key not in done and e.key in {x.key for x in policy.entries}]
    # an unreadable old entry stays as it was read unless a readable one replaces it
    resolution.lock = carry_resolved_at(Lock(tuple(new_entries + keep), unreadable=old.unreadable), old)
    return resolution
