"""The copy engine: one image, byte for byte, from a source repository to a target repository.

What "byte for byte" means here (and why ``docker pull`` + ``docker push`` is not it):

* the index and every platform manifest are pushed with the exact bytes the source served, so
  every digest, and every signature over a digest, stays valid;
* every config and layer blob is streamed from source to target (never whole in memory, no temp
  file), hashed on the way and refused on a digest or size mismatch;
* the OCI referrers of each manifest (signatures, SBOMs, attestations) and the cosign-style
  digest tags (``sha256-<hex>.sig``/``.att``/``.sbom``, and the referrers fallback tag
  ``sha256-<hex>``) travel with the image.

Order makes a failed copy harmless: blobs before the manifest that lists them, children before
their index, attachments after their subject, **the tag last**.  A copy that dies half way leaves
no tag pointing at a partial image, and the next run resumes (what is there is skipped).

Cost: when the target tag already holds the source digest the copy is a no-op made of HEAD
requests only (no manifest or blob GET on the source, so no Docker Hub pull is spent).  Blobs
already at the target are skipped after a HEAD; on the same registry they are mounted
(``?mount=&from=``) rather than moved.

A :class:`CopySession` shared by many copies is what makes concurrent copies into one repository
safe and bounded:

* each blob is moved at most once per (target repository, digest, size): the size is part of the
  key, so a descriptor that states a wrong size is checked on its own, never against (or in place
  of) the transfer of a correct one, and work on one digest is serialized, so the outcome for
  each image is the same whatever order the images run in;
* each manifest is pushed at most once per (target repository, reference, digest), and a PUT
  never overlaps another PUT of the same manifest or of an index that lists it (distribution
  rewrites a manifest's link file on every PUT, and an index PUT that reads it half-written is
  refused with ``DIGEST_INVALID`` or ``MANIFEST_BLOB_UNKNOWN``);
* blob transfers (``jobs``) and manifest requests (``jobs`` more) in flight are bounded, and so is
  fan-out: children and attachments are walked by a few workers, never one task each, and an
  image may reach at most ``max_manifests`` manifests through indexes nested at most
  :data:`MAX_INDEX_DEPTH` deep (beyond, a clear error fails that image only);
* shared work returns facts (manifests listed below, how deep, children absent at the source)
  and each image applies its own rules to them, so an image's outcome never depends on which
  image came first; no shared work waits on work that may wait on it (each image walks its own
  attachments, each subject once), so a digest tag naming its own subject cannot hang a copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from imagevet.digest import Digest, digest_tag_subject
from imagevet.errors import (
    CopyError,
    DigestMismatchError,
    ImagevetError,
    LimitExceededError,
    NotFoundError,
    RegistryError,
    TransportError,
)
from imagevet.manifest import Descriptor, ManifestFormatError, Platform, RawManifest, subset_index
from imagevet.reference import Reference
from imagevet.registry import ManifestHead, RegistryClient

__all__ = [
    "DEFAULT_JOBS",
    "DIGEST_TAG_SUFFIXES",
    "FANOUT",
    "MAX_INDEX_DEPTH",
    "MAX_MANIFESTS",
    "CopyOptions",
    "CopyProgress",
    "CopyResult",
    "CopySession",
    "copy_digest_tags",
    "copy_image",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_I = TypeVar("_I")

DEFAULT_JOBS = 8
"""Concurrent blob transfers per session (skopeo: 6 layers per image, images one at a time)."""

DIGEST_TAG_SUFFIXES = ("", ".sig", ".att", ".sbom")
"""Tags attached to a manifest digest: the referrers fallback index and cosign's three kinds."""

MAX_ATTACHMENT_DEPTH = 3
"""How deep attachments of attachments are followed (a signature of an SBOM of an image...)."""

MAX_INDEX_DEPTH = 8
"""How deep indexes may nest (an index of indexes of ...): beyond, the image fails clearly."""

MAX_MANIFESTS = 10_000
"""Default for :attr:`CopyOptions.max_manifests`: manifests one image may list through its indexes."""

FANOUT = 16
"""Workers walking one index's children (or one manifest's blobs, or one image's attachments)."""

BLOB_ATTEMPTS = 3
"""Whole-blob transfer attempts (each re-opens the source stream) when a transfer broke after its
request was answered: a body cut, stalled or too slow (:class:`TransferTimeoutError`), or the
one-shot upload failing.  A request the client already retried (``exhausted``) is not sent again,
so a blob GET answered 5xx every time is sent ``RetryPolicy.attempts`` times, not 3 times that."""

class CopyProgress(Protocol):
    """Receives progress events; the CLI renders them, tests may count them."""

    def blob_started(self, digest: Digest, size: int) -> None: ...
    def blob_advanced(self, digest: Digest, nbytes: int) -> None: ...
    def blob_finished(self, digest: Digest, how: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CopyOptions:
    """How a copy behaves; every field has the default a careful user wants."""

    jobs: int = DEFAULT_JOBS
    """Blob transfers at once, across every image of the session."""
    referrers: bool = True
    """Copy OCI referrers and cosign digest tags of every manifest."""
    platforms: tuple[Platform, ...] | None = None
    """Copy only these platforms of an index; the target index is rewritten (new digest)."""
    force: bool = False
    """Copy even when the target tag already holds the source digest."""
    max_manifests: int = MAX_MANIFESTS
    """Manifests one image may list through its indexes; more fails the image before fan-out.
    (Work shared by the images of a session is bounded by the session's value.)"""


@dataclass
class CopyResult:
    """What one :func:`copy_image` call did."""

    source: Reference
    target: Reference
    digest: Digest
    """The digest the target now holds (differs from ``source_digest`` only for a platform subset)."""
    source_digest: Digest
    media_type: str = ""
    noop: bool = False
    """The target already held the image: only HEAD requests were made."""
    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0
    platforms: list[str] = field(default_factory=list)
    """Platforms the target now holds (attestation entries left out)."""
    source_platforms: list[str] = field(default_factory=list)
    """Platforms of the source image (differs from ``platforms`` for a subset)."""
    attachments: list[str] = field(default_factory=list)
    """Referrer digests and digest tags copied with the image."""
    digest_tags: list[str] = field(default_factory=list)
    """Digest tags of the image's manifests that the target holds as the source does after this
    copy (copied now or already there): ``copy --all-tags`` copies no other way what is here."""
    index_rewritten: bool = False
    sparse: list[str] = field(default_factory=list)
    """Children an index lists that the source does not hold (copied as sparse as it is)."""
    seconds: float = 0.0
    source_index: RawManifest | None = field(default=None, repr=False, compare=False)
    """The source index a platform subset was made from (sync keeps it to check the mirror)."""

    def to_json(self) -> dict[str, object]:
        return {
            "source": str(self.source),
            "target": str(self.target),
            "source_digest": str(self.source_digest),
            "digest": str(self.digest),
            "media_type": self.media_type,
            "noop": self.noop,
            "manifests_pushed": self.manifests_pushed,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "blobs_skipped": self.blobs_skipped,
            "bytes_copied": self.bytes_copied,
            "platforms": self.platforms,
            "source_platforms": self.source_platforms,
            "attachments": self.attachments,
            "index_rewritten": self.index_rewritten,
            "sparse": self.sparse,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Counters:
    manifests_pushed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_copied: int = 0

    def add(self, other: _Counters) -> None:
        self.manifests_pushed += other.manifests_pushed
        self.blobs_copied += other.blobs_copied
        self.blobs_mounted += other.blobs_mounted
        self.blobs_skipped += other.blobs_skipped
        self.bytes_copied += other.bytes_copied


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the shared work on one manifest found below it.

    The same for every image that meets the manifest, whatever order they run in: each image
    applies its own rules to these facts (whether a child may be absent, how many manifests it
    may list), never the first image's rules to the work.
    """

    below: frozenset[Digest] = frozenset()
    """Every manifest listed by the indexes below (present at the source or not)."""
    height: int = 0
    """Index levels walked from it down (0: an image manifest, or not walked)."""
    sparse: tuple[tuple[Digest, NotFoundError], ...] = ()
    """Its own children the source does not hold (only an image's top index may be sparse)."""
    absent: NotFoundError | None = None
    """The source does not hold the manifest itself."""
    counters: _Counters = field(default_factory=_Counters)
    """The work done, counted by the image that started it."""


@dataclass(frozen=True, slots=True)
class _TagFacts:
    """What the shared work on one digest tag found."""

    how: str
    """``"copy"`` (its manifest is at the target by digest now; the tag is to PUT), ``"present"``
    (the target's tag names the source's manifest already) or ``"absent"`` (the source has the
    tag no more)."""
    manifest: RawManifest | None = None
    facts: _Facts | None = None
    counters: _Counters = field(default_factory=_Counters)


class _Gate:
    """Many readers or one writer, for one manifest digest in one target repository.

    A PUT of a manifest (by digest or by tag) writes; a PUT of an index reads each child it lists,
    and so does a HEAD of the manifest at the target.  Release never awaits, so a cancelled
    holder cannot leave the gate closed.
    """

    __slots__ = ("readers", "writer", "_waiters")

    def __init__(self) -> None:
        self.readers = 0
        self.writer = False
        self._waiters: list[asyncio.Future[None]] = []

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready():
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        await self._until(lambda: not self.writer)
        self.readers += 1
        try:
            yield
        finally:
            self.readers -= 1
            self._wake()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        await self._until(lambda: not self.writer and self.readers == 0)
        self.writer = True
        try:
            yield
        finally:
            self.writer = False
            self._wake()


class CopySession:
    """Shared state for many copies: each blob moved and each manifest pushed at most once per
    target repository, PUTs ordered so the registry never sees a half-written child, bounded
    requests in flight (see the module docstring)."""

    def __init__(
        self,
        client: RegistryClient,
        options: CopyOptions | None = None,
        *,
        progress: CopyProgress | None = None,
    ) -> None:
        self.client = client
        self.options = options or CopyOptions()
        self.progress = progress
        self._slots = asyncio.Semaphore(max(1, self.options.jobs))
        self._manifest_slots = asyncio.Semaphore(max(1, self.options.jobs))
        self._blobs: dict[Any, asyncio.Future[str]] = {}
        self._blob_locks: dict[tuple[str, Digest], asyncio.Lock] = {}
        self._manifests: dict[Any, asyncio.Future[_Facts]] = {}
        self._manifest_rooms: dict[tuple[str, Digest], set[int]] = {}
        self._present: dict[Any, asyncio.Future[bool]] = {}
        self._puts: dict[Any, asyncio.Future[None]] = {}
        self._gates: dict[tuple[str, Digest], _Gate] = {}
        self._attachment_tags: dict[Any, asyncio.Future[_TagFacts]] = {}
        self._referrer_lists: dict[Any, asyncio.Future[None]] = {}
        self._source_tags: dict[Any, asyncio.Future[frozenset[str]]] = {}

    async def copy(
        self, source: Reference, target: Reference, *, options: CopyOptions | None = None
    ) -> CopyResult:
        """Copy ``source`` (tag or digest) to ``target`` (tag, or repository only).

        ``options`` overrides the session's for this image (``jobs`` stays the session's).
        """
        return await _ImageCopy(self, source, target, options or self.options).run()

    # -- shared, deduplicated work ------------------------------------------------------------

    async def _shared(
        self,
        cache: dict[Any, asyncio.Future[_T]],
        key: object,
        make: Callable[[], Awaitable[_T]],
    ) -> tuple[_T, bool]:
        """Run ``make()`` once per key for the whole session; return its result and whether this
        call started it.

        Every caller awaits the same task through :func:`asyncio.shield`: an image cancelled
        because its own copy failed does not cancel the work other images wait on.  A cancelled
        task, or one that failed in a way worth trying again, is replaced by the next caller; a
        final failure (its retries already spent, a limit crossed) is the session's answer, so
        the next image does not send the same requests again.

        ``make()`` must never await shared work that may await its own key (directly or through
        other shared work): asyncio does not see a task waiting on itself, it waits forever.
        Manifest work awaits only the work on the manifests below it (a hash cannot list itself)
        and PUTs; the walk of attachments, where a tag may name its own subject, is each image's.

        A task whose every caller was cancelled and which then fails keeps its error for the
        next caller; it is marked retrieved so asyncio prints no "never retrieved" warning.
        """
        task = cache.get(key)
        created = False
        if task is None or (task.done() and (task.cancelled() or _worth_again(task.exception()))):
            task = asyncio.ensure_future(make())
            task.add_done_callback(_retrieved)
            cache[key] = task
            created = True
        return await asyncio.shield(task), created

    def _gate(self, repo: str, digest: Digest) -> _Gate:
        return self._gates.setdefault((repo, digest), _Gate())

    def _blob_lock(self, repo: str, digest: Digest) -> asyncio.Lock:
        return self._blob_locks.setdefault((repo, digest), asyncio.Lock())

    async def source_tags(self, source: Reference) -> frozenset[str]:
        """The source repository's tags, listed once per session (for digest-tag discovery)."""
        tags, _ = await self._shared(self._source_tags, source.name, lambda: self._list_tags(source))
        return tags

    async def _list_tags(self, source: Reference) -> frozenset[str]:
        try:
            async with self._manifest_slots:
                return frozenset(await self.client.list_tags(source.repo()))
        except NotFoundError:
            return frozenset()


class _ImageCopy:
    """One copy_image call: walks the source graph and pushes it bottom-up.

    Shared work (a manifest and all below it, one digest tag, one blob, one PUT) runs on a
    worker of its own (:meth:`_worker`: the session's options, fresh counters) and returns facts;
    the image that asked applies its own options and counts to them.
    """

    def __init__(
        self, session: CopySession, source: Reference, target: Reference, options: CopyOptions
    ) -> None:
        self.s = session
        self.options = options
        self.client = session.client
        self.source = source
        self.target = target
        self.counters = _Counters()
        self.attachments: list[str] = []
        self.digest_tags: list[str] = []
        self.sparse: list[str] = []
        self.listed: set[Digest] = set()
        """Manifests listed by the indexes of this image and its attachments (``max_manifests``)."""

    def _worker(self) -> _ImageCopy:
        """A context for shared work: what it does must not depend on which image asked first."""
        return _ImageCopy(self.s, self.source, self.target, self.s.options)

    def _take(self, facts: _Facts, mine: bool, *, sparse_ok: bool) -> None:
        """Apply this image's rules to the facts shared work found (and count it, if ours)."""
        if facts.absent is not None:
            raise facts.absent.with_traceback(None)
        if facts.sparse and not sparse_ok:
            raise facts.sparse[0][1].with_traceback(None)
        for digest, _ in facts.sparse:
            log.warning("%s: child %s is absent at the source (sparse index)", self.source, digest)
            self.sparse.append(str(digest))
        self.listed |= facts.below
        limit = self.options.max_manifests
        if len(self.listed) > limit:
            raise ManifestFormatError(
                f"{self.source}: this image lists {len(self.listed)} manifests through its "
                f"indexes, more than the limit of {limit}"
            )
        if mine:
            self.counters.add(facts.counters)

    async def run(self) -> CopyResult:
        started = time.monotonic()
        try:
            result = await self._run()
        except ImagevetError as e:
            raise CopyError(str(self.source), str(self.target), str(e)) from e
        result.seconds = time.monotonic() - started
        return result

    async def _run(self) -> CopyResult:
        opts = self.options
        src_digest, src_type = await self._resolve_source()
        target_tag = self.target.tag if self.target.tag else (
            self.source.tag if self.target.digest is None and self.source.digest is None else None
        )
        target = self.target.with_tag(target_tag) if target_tag else self.target.repo()
        result = CopyResult(self.source, target, src_digest, src_digest, media_type=src_type)

        if not opts.force and opts.platforms is None:
            have = await self._head(
                target if target_tag else target.with_digest(src_digest), gate=src_digest
            )
            if have is None and not target_tag:
                self._seen_absent(src_digest)  # that HEAD was by digest: not asked again
            if have is not None and have.digest == src_digest:
                if opts.referrers:
                    await self._sync_digest_tags_cheaply(src_digest)
                    await self._sync_native_referrers(src_digest)
                result.noop = True
                self._fill(result)
                return result

        top = await self._get(self.source.repo().with_digest(src_digest))
        result.media_type = top.media_type
        result.source_platforms = top.platforms()
        if opts.platforms is not None and top.is_index:
            result.source_index = top
            top = subset_index(top, opts.platforms)
            result.index_rewritten = top.digest != src_digest
            result.digest = top.digest
        result.platforms = top.platforms()

        # by digest, once per session: complete (children, blobs, itself) before any tag
        facts, mine = await self._ensure_manifest(top.digest, MAX_INDEX_DEPTH, top)
        self._take(facts, mine, sparse_ok=True)  # a top index may be as sparse as the source
        if opts.referrers:
            subjects = {src_digest, top.digest} | {d.digest for d in top.children()} | facts.below
            await self._copy_attachments(subjects, level=0)
        if target_tag:
            await self._put(target, top)  # the tag, last
        self._fill(result)
        return result

    def _fill(self, result: CopyResult) -> None:
        c = self.counters
        result.manifests_pushed = c.manifests_pushed
        result.blobs_copied = c.blobs_copied
        result.blobs_mounted = c.blobs_mounted
        result.blobs_skipped = c.blobs_skipped
        result.bytes_copied = c.bytes_copied
        result.attachments = sorted(set(self.attachments))
        result.digest_tags = sorted(set(self.digest_tags))
        result.sparse = sorted(self.sparse)

    async def _resolve_source(self) -> tuple[Digest, str]:
        head = await self._head(self.source)
        if head is None:
            raise NotFoundError(404, "HEAD", f"{self.source}", body="manifest unknown")
        if self.source.digest is None:
            return head.digest, head.media_type
        if head.digest.algorithm == self.source.digest.algorithm and head.digest != self.source.digest:
            # a registry answering a digest HEAD with another digest is lying: refuse
            raise DigestMismatchError(str(self.source), str(self.source.digest), str(head.digest))
        # (a registry may name sha512 content by its canonical sha256: the GET verifies the bytes)
        return self.source.digest, head.media_type

    # -- requests (bounded) ----------------------------------------------------------------------

    async def _head(self, ref: Reference, *, gate: Digest | None = None) -> ManifestHead | None:
        """HEAD a manifest; ``gate``: the target digest it reads (waits out a PUT rewriting it)."""
        reading = self.s._gate(self.target.name, gate).read() if gate is not None else nullcontext()
        async with reading, self.s._manifest_slots:
            return await self.client.head_manifest(ref)

    async def _get(self, ref: Reference) -> RawManifest:
        async with self.s._manifest_slots:
            return await self.client.get_manifest(ref)

    async def _referrers(
        self, repo: Reference, subject: Digest, *, tag_schema: bool = True
    ) -> list[Descriptor]:
        async with self.s._manifest_slots:
            return list(await self.client.referrers(repo, subject, tag_schema=tag_schema))

    async def _put(self, ref: Reference, manifest: RawManifest) -> None:
        """PUT ``manifest`` at ``ref`` at most once per session (tag or digest, same bytes)."""
        key = (ref.name, ref.tag or str(ref.digest or manifest.digest), manifest.digest)
        await self.s._shared(self.s._puts, key, lambda: self._put_now(ref, manifest))

    async def _put_now(self, ref: Reference, manifest: RawManifest) -> None:
        """The PUT itself: no other PUT of this manifest, nor of any child it lists, meanwhile."""
        repo = ref.name
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.s._gate(repo, manifest.digest).write())
            for child in sorted({d.digest for d in manifest.children()} - {manifest.digest}, key=str):
                await stack.enter_async_context(self.s._gate(repo, child).read())
            async with self.s._manifest_slots:
                # a refusal keeps the registry's own code and detail (RegistryError shows both)
                await self.client.put_manifest(ref, manifest)
        self.counters.manifests_pushed += 1

    # -- manifests ------------------------------------------------------------------------------

    async def _ensure_manifest(
        self, digest: Digest, room: int, manifest: RawManifest | None = None
    ) -> tuple[_Facts, bool]:
        """Make manifest ``digest`` (and all below it) exist at the target: once per session for a
        target repository, digest and ``room`` (index levels it may still nest: an image's top
        has :data:`MAX_INDEX_DEPTH`, its children one less).  ``manifest``: its bytes, when the
        caller has them (a top, a platform subset); otherwise they are read from the source.

        Returns the facts found (the same for every caller) and whether this call did the work.
        The walk with the most room answers every caller (each checks the height found against
        its own room), and so does a walk with less room that was not too deep for it: a
        manifest reached at two depths is walked once, unless nested too deep for the first.
        """
        rooms = self.s._manifest_rooms.setdefault((self.target.name, digest), set())
        walk = max(rooms, default=room)
        if walk < room:
            try:
                facts, mine = await self._manifest_walk(digest, walk, manifest)
            except _NestedTooDeep:
                walk = room  # too deep for that room: walk it with this caller's
        if walk >= room:
            rooms.add(walk)
            facts, mine = await self._manifest_walk(digest, walk, manifest)
        if facts.height > room:
            raise _NestedTooDeep(
                f"index {digest}: indexes nested more than {MAX_INDEX_DEPTH} deep"
            )
        return facts, mine

    async def _manifest_walk(
        self, digest: Digest, room: int, manifest: RawManifest | None
    ) -> tuple[_Facts, bool]:
        key = (self.target.name, digest, room)
        return await self.s._shared(
            self.s._manifests, key, lambda: self._worker()._manifest_now(digest, room, manifest)
        )

    async def _present(self, digest: Digest) -> bool:
        """Whether the target held manifest ``digest`` when this session first asked (one HEAD).

        Asked once, before any walk of it in the session pushes it, so every walk of the
        manifest (a top, a child, at any room) stops or goes on alike, whichever came first:
        one that found it there finds nothing below (the target has it all).
        """
        key = (self.target.name, digest)
        dst = self.target.repo().with_digest(digest)

        async def head() -> bool:
            return await self._head(dst, gate=digest) is not None

        present, _ = await self.s._shared(self.s._present, key, head)
        return present

    def _seen_absent(self, digest: Digest) -> None:
        """Record a HEAD by digest that found nothing at the target, unless the session knows."""
        key = (self.target.name, digest)
        if key not in self.s._present:
            known: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            known.set_result(False)
            self.s._present[key] = known

    async def _manifest_now(self, digest: Digest, room: int, manifest: RawManifest | None) -> _Facts:
        """The shared work on one manifest: what it does depends on its key only."""
        if await self._present(digest):
            return _Facts(counters=self.counters)  # the target has it, and all below it
        if manifest is None:
            try:
                manifest = await self._get(self.source.repo().with_digest(digest))
            except NotFoundError as e:
                return _Facts(absent=e)
        below: set[Digest] = set()
        sparse: list[tuple[Digest, NotFoundError]] = []
        height = 0
        if manifest.is_index:
            children = manifest.children()
            if room <= 0:
                raise _NestedTooDeep(
                    f"index {manifest.digest}: indexes nested more than {MAX_INDEX_DEPTH} deep"
                )
            limit = self.s.options.max_manifests
            if len(children) > limit:
                raise ManifestFormatError(
                    f"index {manifest.digest} lists {len(children)} manifests: this image lists "
                    f"more than the limit of {limit}"
                )

            async def child(desc: Descriptor) -> None:
                nonlocal height
                facts, mine = await self._ensure_manifest(desc.digest, room - 1)
                height = max(height, facts.height + 1)
                if facts.absent is not None:
                    sparse.append((desc.digest, facts.absent))
                elif facts.sparse:  # a grandchild absent: no image may be that sparse
                    raise facts.sparse[0][1].with_traceback(None)
                below.add(desc.digest)
                below.update(facts.below)
                if len(below) > limit:
                    raise ManifestFormatError(
                        f"index {manifest.digest}: the indexes below it list more than the "
                        f"limit of {limit} manifests"
                    )
                if mine:
                    self.counters.add(facts.counters)

            height = max(height, 1)
            await _each(children, child)
        else:
            await _each([d for d in manifest.blobs() if _distributable(d)], self._copy_blob)
        # by the digest the parent names (it may be sha512)
        await self._put(self.target.repo().with_digest(digest), manifest)
        return _Facts(
            frozenset(below),
            height,
            tuple(sorted(sparse, key=lambda x: str(x[0]))),
            counters=self.counters,
        )

    # -- blobs ----------------------------------------------------------------------------------

    async def _copy_blob(self, desc: Descriptor) -> None:
        # The size is part of the key: a descriptor stating a wrong size gets its own check and
        # its own failure, and never decides the outcome of an image whose descriptor is right.
        key = (self.target.name, desc.digest, desc.size)
        how, mine = await self.s._shared(self.s._blobs, key, lambda: self._transfer_blob(desc))
        if not mine:  # another image of this run moved it: count it once, there
            self.counters.blobs_skipped += 1
        elif how == "copied":
            self.counters.blobs_copied += 1
            self.counters.bytes_copied += desc.size
        elif how == "mounted":
            self.counters.blobs_mounted += 1
        else:
            self.counters.blobs_skipped += 1

    async def _transfer_blob(self, desc: Descriptor) -> str:
        """Skip, mount or stream one blob; returns ``"skipped"``, ``"mounted"`` or ``"copied"``.

        One digest is worked on by one task at a time (whatever the sizes callers state), so a
        second descriptor of it finds the blob there and is checked against the real size.
        """
        src, dst = self.source.repo(), self.target.repo()
        progress = self.s.progress
        async with self.s._blob_lock(dst.name, desc.digest), self.s._slots:
            have = await self.client.head_blob(dst, desc.digest)
            if have is not None:
                _check_size(desc, have, src, dst)
                how = "skipped"
            elif src.registry == dst.registry and src.repository != dst.repository and (
                await self.client.mount_blob(dst, desc.digest, src)
            ):
                # a mount does not say the size: check the descriptor against the mounted blob
                mounted = await self.client.head_blob(dst, desc.digest)
                _check_size(desc, mounted, src, dst)
                how = "mounted"
            else:
                await self._stream_blob(desc)
                how = "copied"
        if progress is not None:
            progress.blob_finished(desc.digest, how)
        return how

    async def _stream_blob(self, desc: Descriptor) -> None:
        src, dst = self.source.repo(), self.target.repo()
        progress = self.s.progress
        for attempt in range(1, BLOB_ATTEMPTS + 1):
            if progress is not None:
                progress.blob_started(desc.digest, desc.size)
            try:
                async with self.client.open_blob(src, desc) as stream:
                    if progress is None:
                        await self.client.push_blob(dst, desc, stream)
                    else:
                        await self.client.push_blob(dst, desc, _reporting(stream, desc, progress))
                return
            except (TransportError, RegistryError) as e:
                if not e.temporary or e.exhausted or attempt == BLOB_ATTEMPTS:
                    raise
                log.warning("blob %s: %s; retrying (%d/%d)", desc.digest, e, attempt, BLOB_ATTEMPTS)
                await asyncio.sleep(0.2 * attempt)

    # -- attachments: referrers and digest tags -------------------------------------------------

    async def _copy_attachments(
        self, first: set[Digest], *, level: int, native_first: bool = True
    ) -> None:
        """Referrers and digest tags of every manifest in ``first``, then of the manifests they
        brought, and so on, at most :data:`MAX_ATTACHMENT_DEPTH` levels down.

        This image's own flat walk, each subject once: the shared work it awaits (one tag, one
        manifest, one PUT) never awaits a walk, so a tag naming its own subject, or two tags
        naming each other, end like any other.  Each tag is PUT last, after the attachments of
        the manifest it names, deepest first (a walk that fails leaves that tag for the next run).
        ``native_first``: ask the referrers API for the first level too (the no-op path asks it
        on its own).
        """
        tags = await self.s.source_tags(self.source)
        visited: set[Digest] = set()
        frontier = first
        pending: list[list[tuple[str, RawManifest]]] = []
        native = native_first
        while frontier and level < MAX_ATTACHMENT_DEPTH:
            visited |= frontier
            found, puts = await self._attachment_level(frontier, tags, native=native)
            pending.append(puts)
            frontier = found - visited
            level += 1
            native = True
        for puts in reversed(pending):
            await _each(
                sorted(puts, key=lambda p: p[0]),
                lambda p: self._put(self.target.repo().with_tag(p[0]), p[1]),
            )

    async def _attachment_level(
        self, subjects: set[Digest], tags: frozenset[str], *, native: bool
    ) -> tuple[set[Digest], list[tuple[str, RawManifest]]]:
        """One level of the walk: the manifests brought, and the digest tags to PUT."""
        found: set[Digest] = set()
        puts: list[tuple[str, RawManifest]] = []

        async def visit(subject: Digest) -> None:
            found.update(await self._attachments_of(subject, tags, puts, native=native))

        await _each(sorted(subjects, key=str), visit)
        return found, puts

    async def _attachments_of(
        self, subject: Digest, tags: frozenset[str], puts: list[tuple[str, RawManifest]], *, native: bool
    ) -> set[Digest]:
        """Copy what is attached to ``subject``; returns the manifests brought (to walk next) and
        adds the digest tags to PUT to ``puts``."""
        found: set[Digest] = set()
        # 1. digest tags present at the source (cosign .sig/.att/.sbom, referrers fallback index)
        for suffix in DIGEST_TAG_SUFFIXES:
            tag = subject.tag(suffix)
            if tag is None or tag not in tags:
                continue
            got, mine = await self._attachment_tag(tag)
            if got.how == "absent":
                continue
            self.digest_tags.append(tag)
            if got.manifest is None or got.facts is None:
                continue  # present at the target already
            self._take(got.facts, False, sparse_ok=False)
            if mine:
                self.counters.add(got.counters)
            self.attachments.append(tag)
            found |= {got.manifest.digest} | {d.digest for d in got.manifest.children()}
            found |= got.facts.below
            puts.append((tag, got.manifest))
        # 2. referrers through the OCI 1.1 API (the client falls back to the tag schema itself;
        #    manifests already copied above are deduplicated by the session)
        if not native or subject.tag() in tags:
            return found  # the fallback index was copied byte for byte as a tag: it lists them all
        # the tag list shows there is no fallback tag: ask the API only (no manifest GET)
        referrers = await self._referrers(self.source.repo(), subject, tag_schema=False)
        if referrers:
            await self._copy_referrers(subject, referrers, referrers)
        return found

    async def _copy_referrers(
        self, subject: Digest, copy: Sequence[Descriptor], listed: Sequence[Descriptor]
    ) -> None:
        """Copy the referrers ``copy`` of ``subject`` and make the target list ``listed``."""
        for desc in copy:
            facts, mine = await self._ensure_manifest(desc.digest, MAX_INDEX_DEPTH)
            self._take(facts, mine, sparse_ok=False)
            self.attachments.append(str(desc.digest))
        await self._ensure_target_lists_referrers(subject, listed)

    async def _attachment_tag(self, tag: str) -> tuple[_TagFacts, bool]:
        """One digest tag's shared work: once per session and target repository."""
        worker = self._worker()
        return await self.s._shared(
            self.s._attachment_tags, (self.target.name, tag), lambda: worker._attachment_tag_now(tag)
        )

    async def _attachment_tag_now(self, tag: str) -> _TagFacts:
        """The shared work on one digest tag: its manifest at the target by digest (the image
        that walks to it PUTs the tag itself, after what is attached to that manifest)."""
        head = await self._head(self.source.repo().with_tag(tag))
        if head is None:
            return _TagFacts("absent")
        have = await self._head(self.target.repo().with_tag(tag), gate=head.digest)
        if have is not None and have.digest == head.digest:
            return _TagFacts("present")
        manifest = await self._get(self.source.repo().with_digest(head.digest))
        facts, mine = await self._ensure_manifest(head.digest, MAX_INDEX_DEPTH, manifest)
        if mine:
            self.counters.add(facts.counters)
        return _TagFacts("copy", manifest, facts, self.counters)

    async def _ensure_target_lists_referrers(
        self, subject: Digest, referrers: Sequence[Descriptor]
    ) -> None:
        """Where the target has no referrers API, maintain its ``sha256-<hex>`` fallback index.

        Once per session for a subject and a set of referrers (a read-modify-write of one tag).
        """
        key = (self.target.name, subject, frozenset(d.digest for d in referrers))
        await self.s._shared(
            self.s._referrer_lists, key, lambda: self._ensure_target_lists_now(subject, referrers)
        )

    async def _ensure_target_lists_now(
        self, subject: Digest, referrers: Sequence[Descriptor]
    ) -> None:
        listed = {d.digest for d in await self._referrers(self.target.repo(), subject)}
        missing = [d for d in referrers if d.digest not in listed]
        if not missing:
            return
        tag_ref = self.target.repo().with_tag(subject.tag())
        existing: list[dict[str, object]] = []
        try:
            current = await self._get(tag_ref)
            existing = list(current.json.get("manifests") or [])
        except NotFoundError:
            pass
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": existing + [d.to_json() for d in missing],
        }
        data = json.dumps(index, separators=(",", ":")).encode()
        await self._put(tag_ref, RawManifest.from_bytes(data))

    async def _sync_native_referrers(self, subject: Digest) -> None:
        """No-op path: referrers attached upstream (OCI 1.1 API) since the image was mirrored.

        One ``/referrers`` request at the source (not a manifest GET, so no Docker Hub pull; on a
        registry without the API the answer is cached per registry), and only when something is
        listed, the target's list.
        """
        found = await self._referrers(self.source.repo(), subject, tag_schema=False)
        if not found:
            return
        have = {d.digest for d in await self._referrers(self.target.repo(), subject)}
        missing = [d for d in found if d.digest not in have]
        if not missing:
            return
        await self._copy_referrers(subject, missing, found)

    async def _sync_digest_tags_cheaply(self, subject: Digest) -> None:
        """No-op path: bring digest tags of the top manifest up to date using HEADs only (a tag
        moved upstream is copied with what is attached to it, two levels down)."""
        await self._copy_attachments({subject}, level=1, native_first=False)


class _NestedTooDeep(ManifestFormatError):
    """Indexes nested deeper than :data:`MAX_INDEX_DEPTH` below an image's top."""


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a shared task's error as seen: its callers (if any are left) get it through a shield."""
    if not task.cancelled():
        task.exception()


def _worth_again(error: BaseException | None) -> bool:
    """Whether shared work that ended in ``error`` is started again for the next caller."""
    if error is None:
        return False
    return not (isinstance(error, LimitExceededError) or getattr(error, "exhausted", False))


def _distributable(desc: Descriptor) -> bool:
    """Foreign (non-distributable) layers are not pushed to registries; their URLs stay as-is."""
    return "nondistributable" not in desc.media_type and "foreign" not in desc.media_type


async def _reporting(
    stream: AsyncIterable[bytes], desc: Descriptor, progress: CopyProgress
) -> AsyncIterator[bytes]:
    async for chunk in stream:
        progress.blob_advanced(desc.digest, len(chunk))
        yield chunk


def _check_size(desc: Descriptor, have: int | None, src: Reference, dst: Reference) -> None:
    """Refuse a blob whose real size is not the one its descriptor states (0: not reported).

    Worded as a read from the source refuses it, so the image fails with the same message
    whether its blob was already at the target or not.
    """
    if have is None:
        raise NotFoundError(404, "HEAD", f"{dst.name}/blobs/{desc.digest}", body="blob unknown")
    if have != desc.size and have != 0:
        raise DigestMismatchError(
            f"blob {desc.digest} of {src.name}", f"{desc.digest} ({desc.size} bytes)", f"{have} bytes"
        )


async def _each(items: Sequence[_I], fn: Callable[[_I], Awaitable[object]], limit: int = FANOUT) -> None:
    """``fn(item)`` for every item, at most ``limit`` at once; the first failure cancels the rest."""
    it = iter(items)

    async def worker() -> None:
        for item in it:
            await fn(item)

    await _gather(worker() for _ in range(min(limit, len(items))))


async def _gather(aws: Iterable[Awaitable[object]]) -> None:
    """Run awaitables concurrently; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def copy_digest_tags(
    session: CopySession,
    src: Reference,
    dst: Reference,
    digest_tags: Sequence[str],
    *,
    brought: Iterable[str] = (),
    any_failed: bool = False,
) -> tuple[list[CopyResult], list[CopyError], list[tuple[str, str]]]:
    """``copy --all-tags``: every digest tag of ``src`` the image copies did not bring (``brought``).

    Its subject at the target, or a tag naming no whole digest: the tag is copied (a no-op when
    it is there).  Its subject not in the source repository at all: the tag is copied as it is,
    as sparse as the source.  Its subject in the source but not at the target (no tag names it,
    or, with ``any_failed``, its copy failed): skipped, with that reason.  Returns (copied,
    failed, skipped as (tag, reason)); no tag is left out of all three.
    """
    done = set(brought)
    copied: list[CopyResult] = []
    failed: list[CopyError] = []
    skipped: list[tuple[str, str]] = []
    why = "no tag names it, or its copy failed" if any_failed else "no tag names it"
    client = session.client
    for tag in digest_tags:
        if tag in done:
            continue
        subject = digest_tag_subject(tag)
        if (
            subject is not None
            and await client.head_manifest(dst.repo().with_digest(subject)) is None
            and await client.head_manifest(src.repo().with_digest(subject)) is not None
        ):
            skipped.append((tag, f"its subject {subject} is in the source but was not copied ({why})"))
            continue
        try:
            copied.append(await session.copy(src.repo().with_tag(tag), dst.repo().with_tag(tag)))
        except CopyError as e:
            failed.append(e)
    copied.sort(key=lambda r: str(r.target))
    return copied, failed, skipped


async def copy_image(
    client: RegistryClient,
    source: Reference,
    target: Reference,
    *,
    options: CopyOptions | None = None,
    progress: CopyProgress | None = None,
) -> CopyResult:
    """Copy one image from ``source`` to ``target`` byte for byte (see the module docstring)."""
    return await CopySession(client, options, progress=progress).copy(source, target)
