"""Resolve a policy against its sources: which tags are selected and which digest each holds.

Cost, per entry: one tag listing, one manifest HEAD per selected tag (HEADs are not Docker Hub
pulls), and a manifest GET only for a digest the old lock has never seen (to record its
platforms and the digests of their manifests), plus the referrers listing of that digest.
Re-locking with no upstream change makes no GET at all and rewrites identical bytes.  A record
of an old lock that names platforms but not their manifests' digests costs one GET, once: the
lock is written with them, and the next run needs none.

An entry whose source cannot be read keeps its old lock records and is reported as a problem:
a registry outage never empties the lock.  Upstream values become lock records only through
:class:`~imagevet.lock.LockedImage`, which refuses a value the lock could not read back (a
media type that is not ``type/subtype``): that entry is a problem, the others go on.  Platforms
arrive normalised (:class:`~imagevet.manifest.Platform`), and a listed tag that is not a valid
tag name is left out (it cannot be pulled by name).  Unreadable entries of the old lock are
resolved again from scratch, or kept as they were read when that fails.

The source is read through :class:`imagevet.engine.observe.Upstream` (the same reader
``observe`` uses).

An entry with a ``verify:`` rule gets its signatures checked (``verifiers``, see
:mod:`imagevet.engine.verify`): each new or changed digest, and each record not yet verified under
the rule, costs the signature lookup; a record verified under the rule costs nothing.  A digest
whose signature does not verify is not locked: the tag keeps its previous record (or is left out)
and is listed in :attr:`Resolution.held` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from imagevet.digest import Digest
from imagevet.engine.evidence import EvidenceKeeper, collect_evidence
from imagevet.engine.observe import HEAD_CONCURRENCY, Inspected, Upstream
from imagevet.engine.verify import Checker, Verifier, VerifyHold, verify_lock_entry
from imagevet.errors import ImagevetError, NotFoundError
from imagevet.lock import (
    Lock,
    LockedImage,
    LockEntry,
    carry_resolved_at,
)
from imagevet.plan import EntryProblem, SourceState
from imagevet.policy import Entry, Policy, missing_tags
from imagevet.policy.model import VerifyRule
from imagevet.store import ImageStore

__all__ = ["Resolution", "resolve_lock"]

log = logging.getLogger(__name__)


@dataclass
class Resolution:
    """The new lock and what could not be resolved."""

    lock: Lock
    problems: list[EntryProblem] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    """Entry name -> explicit tags of its rules that upstream does not have."""
    held: list[VerifyHold] = field(default_factory=list)
    """Selected digests whose signature did not verify under their entry's ``verify:`` rule."""


async def _resolve_entry(
    upstream: Upstream, entry: Entry, old: LockEntry | None, now: datetime, complete: bool,
    keeper: EvidenceKeeper | None = None,
) -> tuple[LockEntry, SourceState]:
    state = await upstream.select(entry)
    known: dict[Digest, LockedImage] = {}
    inspected: dict[Digest, Inspected] = {}
    kept: dict[Digest, LockedImage] = {}

    async def record(digest: Digest) -> LockedImage:
        previous = old.find_digest(digest) if old is not None else None
        if previous is not None and complete and previous.lacks_manifests:
            return await _completed(upstream, entry, previous)
        if previous is not None:
            return previous
        if digest not in known:
            async with upstream.gate:
                if keeper is None:
                    known[digest] = await upstream.describe(entry, digest, now)
                else:  # the same reads, kept for the evidence
                    inspected[digest] = await upstream.inspect(entry, digest, now)
                    known[digest] = inspected[digest].image
        return known[digest]

    async def image(digest: Digest) -> LockedImage:
        if keeper is None:
            return await record(digest)
        if digest not in kept:
            kept[digest] = await _with_evidence(upstream, entry, await record(digest),
                                                inspected.get(digest), keeper, now)
        return kept[digest]

    tags = {tag: await image(d) for tag, d in sorted(state.tags.items())}
    digests: dict[Digest, LockedImage] = {}
    for digest in entry.tags.digests:
        try:
            digests[digest] = await image(digest)
        except NotFoundError:
            log.warning("%s: digest %s is not at %s", entry.name, digest, entry.source)
    images = {i.digest: i for i in (*tags.values(), *digests.values())}
    return LockEntry(entry.source, entry.target, tags, digests), SourceState(state.tags, images)


async def _with_evidence(
    upstream: Upstream, entry: Entry, image: LockedImage, inspected: Inspected | None,
    keeper: EvidenceKeeper, now: datetime,
) -> LockedImage:
    """``image`` naming its evidence (:class:`~imagevet.engine.evidence.EvidenceKeeper`):
    collected from what was just read for a new digest, or read again (one GET) when the lock
    names an evidence file that is missing or damaged; scanned when the entry asks for it."""
    if inspected is None and keeper.needs_collecting(image):
        try:
            async with upstream.gate:
                inspected = await upstream.inspect(entry, image.digest, now)
        except ImagevetError as e:
            keeper.problems.append(f"{entry.name}: cannot collect the evidence of {image.digest}: {e}")
            return image
    found = None
    if inspected is not None:
        found = await collect_evidence(
            upstream.store, entry.source, inspected.manifest, inspected.referrers,
            inspected.listed, gate=upstream.gate,
        )
    return await keeper.keep(entry, image, found)


async def _completed(upstream: Upstream, entry: Entry, previous: LockedImage) -> LockedImage:
    """``previous`` (a record without its platform manifests' digests: a lock written before
    they were recorded) with them, read from its manifest: one GET per digest and run, shared by
    every entry of the same source.  When that fails the record stays as it was (it reads as it
    always did; the next ``imagevet lock`` tries again)."""
    try:
        manifest = await upstream.index(entry.source, previous.digest)
        return replace(
            previous,
            platforms=tuple(manifest.platforms()),
            manifests=tuple(manifest.platform_manifests().items()),
        )
    except ImagevetError as e:
        log.warning(
            "%s: cannot read the platform manifests of %s: %s", entry.name, previous.digest, e
        )
        return previous


async def resolve_lock(
    source: ImageStore,
    policy: Policy,
    old: Lock,
    *,
    now: datetime,
    entries: Sequence[Entry] | None = None,
    complete: bool = True,
    evidence: EvidenceKeeper | None = None,
    verifiers: Mapping[VerifyRule, Verifier] | None = None,
) -> Resolution:
    """Resolve every entry (or only ``entries``) against upstream; see the module docstring.

    ``complete=False`` leaves old records without their platform manifests' digests as they are
    (no GET): for a run that writes nothing (``imagevet lock --check``).

    ``evidence``: keep the evidence of each record (see :mod:`imagevet.engine.evidence`): new
    digests' evidence is collected from the reads above (plus at most a few small manifest
    GETs), old records keep their files, and entries with ``scan`` are scanned once per digest;
    the new files wait in the keeper until the caller writes the lock.  None: no evidence is
    touched (records keep what they name).

    ``verifiers``: the keys of each ``verify:`` rule (an entry whose rule has none locks nothing
    new)."""
    upstream = Upstream(source, asyncio.Semaphore(HEAD_CONCURRENCY), None)
    chosen = list(entries) if entries is not None else list(policy.entries)
    checker = Checker(source)
    held: dict[str, list[VerifyHold]] = {}

    async def one(
        entry: Entry,
    ) -> tuple[Entry, LockEntry | None, SourceState | None, ImagevetError | None]:
        try:
            locked, state = await _resolve_entry(
                upstream, entry, old.entry(entry.key), now, complete, evidence
            )
            locked, held[entry.name] = await verify_lock_entry(
                checker, entry, locked, old.entry(entry.key), verifiers or {}
            )
            return entry, locked, state, None
        except ImagevetError as e:
            return entry, None, None, e

    resolution = Resolution(lock=Lock())
    new_entries: list[LockEntry] = []
    for entry, locked, state, error in await asyncio.gather(*(one(e) for e in chosen)):
        resolution.held.extend(held.get(entry.name, ()))
        if locked is None or state is None:
            resolution.problems.append(
                EntryProblem(entry.name, str(entry.source), str(error or ""), error)
            )
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
