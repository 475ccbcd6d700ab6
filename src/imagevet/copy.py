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
  :data:`MAX_INDEX_DEPTH` deep (beyond, a clear error fails that image only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from imagevet.digest import Digest
from imagevet.errors import (
    CopyError,
    Diagnostic,
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
    "digest_tag_subject",
    "is_digest_tag",
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

_DIGEST_TAG_RE = re.compile(r"^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(\.[a-z]+)?\Z")


def is_digest_tag(tag: str) -> bool:
    """Whether ``tag`` is an attachment tag (``sha256-<hex>[.sig|.att|.sbom]``), not an image tag."""
    return _DIGEST_TAG_RE.match(tag) is not None


def digest_tag_subject(tag: str) -> Digest | None:
    """The manifest a digest tag is attached to (``sha256-<hex>.sig`` -> ``sha256:<hex>``);
    None when ``tag`` is not a digest tag or names no whole digest (a cut sha512 tag)."""
    m = _DIGEST_TAG_RE.match(tag)
    if m is None or len(m.group(2)) != {"sha256": 64, "sha512": 128}[m.group(1)]:
        return None
    return Digest.parse(f"{m.group(1)}:{m.group(2)}")


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
    """Manifests one image may list through its indexes; more fails the image before fan-out."""


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
        self._blobs: dict[Any, asyncio.Task[str]] = {}
        self._blob_locks: dict[tuple[str, Digest], asyncio.Lock] = {}
        self._manifests: dict[Any, asyncio.Task[None]] = {}
        self._puts: dict[Any, asyncio.Task[None]] = {}
        self._gates: dict[tuple[str, Digest], _Gate] = {}
        self._attachment_tags: dict[Any, asyncio.Task[str]] = {}
        self._referrer_lists: dict[Any, asyncio.Task[None]] = {}
        self._source_tags: dict[Any, asyncio.Task[frozenset[str]]] = {}

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
        cache: dict[Any, asyncio.Task[_T]],
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
        """
        task = cache.get(key)
        created = False
        if task is None or (task.done() and (task.cancelled() or _worth_again(task.exception()))):
            task = asyncio.ensure_future(make())
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
    """One copy_image call: walks the source graph and pushes it bottom-up."""

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
        self.subjects: set[Digest] = set()
        """Every manifest digest met in the walk: each may carry referrers or digest tags."""
        self.manifests_seen = 0
        """Manifests listed by the indexes this copy walked (bounded by ``max_manifests``)."""

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
        await self._ensure_manifest(top.digest, lambda: self._push_tree(top))
        if opts.referrers:
            await self._copy_attachments(top, src_digest, depth=0)
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
                try:
                    await self.client.put_manifest(ref, manifest)
                except DigestMismatchError as e:
                    # a 400 DIGEST_INVALID/SIZE_INVALID on a manifest PUT is the registry's verdict
                    # on something it read (a child, a blob), not on these bytes (verified before
                    # the PUT): report it in the registry's own words, code and detail
                    if isinstance(e.__cause__, RegistryError):
                        raise _with_detail(e.__cause__) from None
                    raise
                except RegistryError as e:
                    raise _with_detail(e) from None
        self.counters.manifests_pushed += 1

    # -- manifests ------------------------------------------------------------------------------

    async def _ensure_manifest(self, digest: Digest, make: Callable[[], Awaitable[None]]) -> None:
        """Make manifest ``digest`` (and all below it) exist at the target: once per session."""
        await self.s._shared(self.s._manifests, (self.target.name, digest), make)

    async def _push_tree(self, top: RawManifest, depth: int = 0) -> None:
        await self._copy_tree(top, depth=depth)
        await self._put(self.target.repo().with_digest(top.digest), top)

    async def _copy_tree(self, manifest: RawManifest, *, depth: int) -> None:
        """Make every child manifest and blob of ``manifest`` exist at the target (not itself)."""
        if manifest.is_index:
            children = manifest.children()
            if depth >= MAX_INDEX_DEPTH:
                raise ManifestFormatError(
                    f"index {manifest.digest}: indexes nested more than {MAX_INDEX_DEPTH} deep"
                )
            self.manifests_seen += len(children)
            limit = self.options.max_manifests
            if self.manifests_seen > limit:
                raise ManifestFormatError(
                    f"index {manifest.digest} lists {len(children)} manifests: this image lists "
                    f"more than the limit of {limit}"
                )
            self.subjects.update(d.digest for d in children)
            await _each(children, lambda d: self._copy_child(d, depth=depth))
        else:
            await _each([d for d in manifest.blobs() if _distributable(d)], self._copy_blob)

    async def _copy_child(self, desc: Descriptor, *, depth: int) -> None:
        await self._ensure_manifest(desc.digest, lambda: self._copy_manifest(desc.digest, depth))

    async def _copy_manifest(self, digest: Digest, depth: int) -> None:
        """Copy one manifest (and everything below it) by digest, unless the target has it."""
        dst = self.target.repo().with_digest(digest)
        if await self._head(dst, gate=digest) is not None:
            return
        try:
            manifest = await self._get(self.source.repo().with_digest(digest))
        except NotFoundError:
            if depth == 0:
                # A sparse index: the source lists a child it does not hold. Copy what exists;
                # the index bytes stay the same, so the target is exactly as sparse.
                log.warning("%s: child %s is absent at the source (sparse index)", self.source, digest)
                self.sparse.append(str(digest))
                return
            raise
        await self._copy_tree(manifest, depth=depth + 1)
        await self._put(dst, manifest)  # by the digest the parent names (it may be sha512)

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

    async def _copy_attachments(self, top: RawManifest, src_top: Digest, *, depth: int) -> None:
        """Copy referrers and digest tags of ``top`` and of every manifest below it."""
        if depth >= MAX_ATTACHMENT_DEPTH:
            return
        subjects = {src_top, top.digest} | {d.digest for d in top.children()}
        if depth == 0:
            subjects |= self.subjects
        tags = await self.s.source_tags(self.source)
        await _each(sorted(subjects, key=str), lambda d: self._attachments_of(d, tags, depth))

    async def _attachments_of(self, subject: Digest, tags: frozenset[str], depth: int) -> None:
        # 1. digest tags present at the source (cosign .sig/.att/.sbom, referrers fallback index)
        for suffix in DIGEST_TAG_SUFFIXES:
            tag = subject.tag(suffix)
            if tag is not None and tag in tags:
                await self._copy_attachment_tag(tag, depth)
        # 2. referrers through the OCI 1.1 API (the client falls back to the tag schema itself;
        #    manifests already copied above are deduplicated by the session)
        if subject.tag() in tags:
            return  # the fallback index was copied byte for byte as a tag: it lists them all
        # the tag list shows there is no fallback tag: ask the API only (no manifest GET)
        referrers = await self._referrers(self.source.repo(), subject, tag_schema=False)
        if not referrers:
            return
        for desc in referrers:
            await self._copy_child(desc, depth=depth + 1)
            self.attachments.append(str(desc.digest))
        await self._ensure_target_lists_referrers(subject, referrers)

    async def _copy_attachment_tag(self, tag: str, depth: int) -> None:
        """Copy one digest tag: once per session for every image whose walk meets it."""
        key = (self.target.name, tag)
        how, _ = await self.s._shared(
            self.s._attachment_tags, key, lambda: self._copy_attachment_tag_now(tag, depth)
        )
        if how == "copied":
            self.attachments.append(tag)
        if how != "absent":
            self.digest_tags.append(tag)

    async def _copy_attachment_tag_now(self, tag: str, depth: int) -> str:
        """``"copied"``, ``"present"`` (the target has it already) or ``"absent"`` (the source
        has it no more)."""
        head = await self._head(self.source.repo().with_tag(tag))
        if head is None:
            return "absent"
        dst = self.target.repo().with_tag(tag)
        have = await self._head(dst, gate=head.digest)
        if have is not None and have.digest == head.digest:
            return "present"
        manifest = await self._get(self.source.repo().with_digest(head.digest))
        await self._ensure_manifest(head.digest, lambda: self._push_tree(manifest, depth + 1))
        await self._copy_attachments(manifest, head.digest, depth=depth + 1)
        await self._put(dst, manifest)
        return "copied"

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
        for desc in missing:
            await self._copy_child(desc, depth=1)
            self.attachments.append(str(desc.digest))
        await self._ensure_target_lists_referrers(subject, found)

    async def _sync_digest_tags_cheaply(self, subject: Digest) -> None:
        """No-op path: bring digest tags of the top manifest up to date using HEADs only."""
        tags = await self.s.source_tags(self.source)
        for suffix in DIGEST_TAG_SUFFIXES:
            tag = subject.tag(suffix)
            if tag is not None and tag in tags:
                await self._copy_attachment_tag(tag, depth=1)


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


def _with_detail(e: RegistryError) -> RegistryError:
    """``e`` with each diagnostic's ``detail`` in its message (the registry's own words)."""
    if not any(d.detail for d in e.diagnostics):
        return e
    diagnostics = tuple(
        Diagnostic(d.code, f"{d.message} ({_short(d.detail)})" if d.detail else d.message, d.detail)
        for d in e.diagnostics
    )
    out = type(e)(e.status, e.method, e.url, diagnostics, e.body, retry_after=e.retry_after)
    for name, value in vars(e).items():  # exhausted, remaining, ...: all but the words
        if name != "diagnostics":
            setattr(out, name, value)
    return out


def _short(detail: object) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"), default=str)
    return text if len(text) <= 300 else text[:300] + "..."


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
