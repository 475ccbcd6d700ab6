"""The manifest walk: index -> children -> config and layers, pushed bottom-up by digest.

Each manifest is walked once per session, target repository and *room* (index levels it may
still nest: an image's top has :data:`MAX_INDEX_DEPTH`, its children one less), and returns
:class:`~imagevet.engine.copy.results.Facts`: the same for every image that meets it.  Children
go before their index, blobs before their manifest, so a half-done walk leaves nothing that
names what is missing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from imagevet.digest import Digest
from imagevet.engine.copy import blobs
from imagevet.engine.copy.fanout import each
from imagevet.engine.copy.results import Facts
from imagevet.errors import NotFoundError
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest

if TYPE_CHECKING:
    from imagevet.engine.copy.image import ImageCopy

__all__ = ["MAX_INDEX_DEPTH", "ensure_manifest", "seen_absent"]

MAX_INDEX_DEPTH = 8
"""How deep indexes may nest (an index of indexes of ...): beyond, the image fails clearly."""


class _NestedTooDeep(ManifestFormatError):
    """Indexes nested deeper than :data:`MAX_INDEX_DEPTH` below an image's top."""


def _too_deep(digest: Digest) -> _NestedTooDeep:
    return _NestedTooDeep(f"index {digest}: indexes nested more than {MAX_INDEX_DEPTH} deep")


async def ensure_manifest(
    job: ImageCopy, digest: Digest, room: int, manifest: RawManifest | None = None
) -> tuple[Facts, bool]:
    """Make manifest ``digest`` (and all below it) exist at the target: once per session for a
    target repository, digest and ``room``.  ``manifest``: its bytes, when the caller has them
    (a top, a platform subset); otherwise they are read from the source.

    Returns the facts found (the same for every caller) and whether this call did the work.
    The walk with the most room answers every caller (each checks the height found against
    its own room), and so does a walk with less room that was not too deep for it: a
    manifest reached at two depths is walked once, unless nested too deep for the first.
    """
    rooms = job.session.manifest_rooms.setdefault((job.target.name, digest), set())
    walk = max(rooms, default=room)
    if walk < room:
        try:
            facts, mine = await _walk(job, digest, walk, manifest)
        except _NestedTooDeep:
            walk = room  # too deep for that room: walk it with this caller's
    if walk >= room:
        rooms.add(walk)
        facts, mine = await _walk(job, digest, walk, manifest)
    if facts.height > room:
        raise _too_deep(digest)
    return facts, mine


async def _walk(
    job: ImageCopy, digest: Digest, room: int, manifest: RawManifest | None
) -> tuple[Facts, bool]:
    key = (job.target.name, digest, room)
    worker = job.worker()
    return await job.session.shared(
        job.session.manifests, key, lambda: _manifest_now(worker, digest, room, manifest)
    )


async def _present(job: ImageCopy, digest: Digest) -> bool:
    """Whether the target held manifest ``digest`` when this session first asked (one HEAD).

    Asked once, before any walk of it in the session pushes it, so every walk of the
    manifest (a top, a child, at any room) stops or goes on alike, whichever came first:
    one that found it there finds nothing below (the target has it all).
    """
    key = (job.target.name, digest)
    dst = job.target.repo().with_digest(digest)

    async def head() -> bool:
        return await job.head_target(dst, gate=digest) is not None

    present, _ = await job.session.shared(job.session.present, key, head)
    return present


def seen_absent(job: ImageCopy, digest: Digest) -> None:
    """Record a HEAD by digest that found nothing at the target, unless the session knows."""
    key = (job.target.name, digest)
    if key not in job.session.present:
        known: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        known.set_result(False)
        job.session.present[key] = known


async def _manifest_now(
    job: ImageCopy, digest: Digest, room: int, manifest: RawManifest | None
) -> Facts:
    """The shared work on one manifest: what it does depends on its key only."""
    if await _present(job, digest):
        return Facts(counters=job.counters)  # the target has it, and all below it
    if manifest is None:
        try:
            manifest = await job.get_source(job.source.repo().with_digest(digest))
        except NotFoundError as e:
            return Facts(absent=e)
    if manifest.is_index:
        facts = await _children(job, manifest, room)
    else:
        todo = [d for d in manifest.blobs() if blobs.distributable(d)]
        await each(todo, lambda d: blobs.copy_blob(job, d))
        facts = Facts(counters=job.counters)
    # by the digest the parent names (it may be sha512)
    await job.put(job.target.repo().with_digest(digest), manifest)
    return facts


async def _children(job: ImageCopy, index: RawManifest, room: int) -> Facts:
    """Every child of ``index`` at the target (a few at a time), within the nesting and count
    limits; children the source does not hold are facts (``sparse``), not failures."""
    children = index.children()
    if room <= 0:
        raise _too_deep(index.digest)
    limit = job.session.options.max_manifests
    if len(children) > limit:
        raise ManifestFormatError(
            f"index {index.digest} lists {len(children)} manifests: this image lists "
            f"more than the limit of {limit}"
        )
    below: set[Digest] = set()
    sparse: list[tuple[Digest, NotFoundError]] = []
    height = 1

    async def child(desc: Descriptor) -> None:
        nonlocal height
        facts, mine = await ensure_manifest(job, desc.digest, room - 1)
        height = max(height, facts.height + 1)
        if facts.absent is not None:
            sparse.append((desc.digest, facts.absent))
        elif facts.sparse:  # a grandchild absent: no image may be that sparse
            raise facts.sparse[0][1].with_traceback(None)
        below.add(desc.digest)
        below.update(facts.below)
        if len(below) > limit:
            raise ManifestFormatError(
                f"index {index.digest}: the indexes below it list more than the "
                f"limit of {limit} manifests"
            )
        if mine:
            job.counters.add(facts.counters)

    await each(children, child)
    return Facts(
        frozenset(below),
        height,
        tuple(sorted(sparse, key=lambda x: str(x[0]))),
        counters=job.counters,
    )
