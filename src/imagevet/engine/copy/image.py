"""One image's copy: resolve the source, skip what the target holds, walk and push, tag last.

An :class:`ImageCopy` is one :meth:`CopySession.copy` call.  Shared work (a manifest and all
below it, one digest tag, one blob, one PUT) runs on a worker of its own (:meth:`worker`: the
session's options, fresh counters) and returns facts; the image that asked applies its own
options and counts to them (:meth:`take`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from contextlib import AsyncExitStack, nullcontext
from typing import TYPE_CHECKING, Any

from imagevet.digest import Digest
from imagevet.engine.copy import attachments, graph
from imagevet.engine.copy.options import CopyOptions
from imagevet.engine.copy.results import CopyResult, Counters, Facts
from imagevet.errors import CopyError, DigestMismatchError, ImagevetError, NotFoundError
from imagevet.manifest import Descriptor, ManifestFormatError, RawManifest, subset_index
from imagevet.reference import Reference
from imagevet.store import ManifestHead

if TYPE_CHECKING:
    from imagevet.engine.copy.session import CopySession

__all__ = ["ImageCopy"]

log = logging.getLogger(__name__)


class ImageCopy:
    """One copy_image call: walks the source graph and pushes it bottom-up."""

    def __init__(
        self, session: CopySession, source: Reference, target: Reference, options: CopyOptions
    ) -> None:
        self.session = session
        self.options = options
        self.source_store = session.source
        self.target_store = session.target
        self.source = source
        self.target = target
        self.counters = Counters()
        self.attachments: list[str] = []
        self.digest_tags: list[str] = []
        self.sparse: list[str] = []
        self.listed: set[Digest] = set()
        """Manifests listed by the indexes of this image and its attachments (``max_manifests``)."""
        self._lookups: list[asyncio.Future[Any]] = []
        self._referrers: dict[Digest, asyncio.Future[list[Descriptor]]] = {}
        """Referrers requests sent ahead (:meth:`_discover`), each taken once by :meth:`source_referrers`."""
        self._asked: set[Digest] = set()
        """Subjects whose referrers this image asked for itself (never sent ahead again)."""

    def worker(self) -> ImageCopy:
        """A context for shared work: what it does must not depend on which image asked first."""
        return ImageCopy(self.session, self.source, self.target, self.session.options)

    def take(self, facts: Facts, mine: bool, *, sparse_ok: bool) -> None:
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
            raise CopyError(str(self.source), str(self.target), str(e), cause=e) from e
        finally:
            await self._drop_lookups()
        result.seconds = time.monotonic() - started
        return result

    def _target_tag(self) -> str | None:
        """The tag to write: the target's, else the source's when neither names a digest."""
        if self.target.tag:
            return self.target.tag
        if self.target.digest is None and self.source.digest is None:
            return self.source.tag
        return None

    async def _run(self) -> CopyResult:
        opts = self.options
        src_digest, src_type = await self._resolve_source()
        if opts.referrers:  # both paths list the source's tags to find digest tags: start now
            self._ahead(self.session.source_tags(self.source))
        target_tag = self._target_tag()
        target = self.target.with_tag(target_tag) if target_tag else self.target.repo()
        result = CopyResult(self.source, target, src_digest, src_digest, media_type=src_type)
        if not opts.force and opts.platforms is None and await self._up_to_date(
            target if target_tag else target.with_digest(src_digest), src_digest, target_tag
        ):
            result.noop = True
            self._fill(result)
            return result

        top = await self.get_source(self.source.repo().with_digest(src_digest))
        result.media_type = top.media_type
        result.source_platforms = top.platforms()
        result.source_manifests = top.platform_manifests()
        if opts.platforms is not None and top.is_index:
            result.source_index = top
            top = subset_index(top, opts.platforms)
            result.index_rewritten = top.digest != src_digest
            result.digest = top.digest
        result.platforms = top.platforms()
        if opts.referrers:
            self._ahead(self._discover({src_digest, top.digest} | {d.digest for d in top.children()}))

        # by digest, once per session: complete (children, blobs, itself) before any tag
        facts, mine = await graph.ensure_manifest(self, top.digest, graph.MAX_INDEX_DEPTH, top)
        self.take(facts, mine, sparse_ok=True)  # a top index may be as sparse as the source
        if opts.referrers:
            subjects = {src_digest, top.digest} | {d.digest for d in top.children()} | facts.below
            await attachments.copy_attachments(self, subjects, level=0)
        if target_tag:
            await self.put(target, top)  # the tag, last
        self._fill(result)
        return result

    async def _up_to_date(self, have_ref: Reference, src_digest: Digest, tag: str | None) -> bool:
        """Whether the target holds the source digest already (then only attachments that moved
        upstream are brought, with HEADs and a referrers list: no manifest GET at the source)."""
        have = await self.head_target(have_ref, gate=src_digest)
        if have is None and not tag:
            graph.seen_absent(self, src_digest)  # that HEAD was by digest: not asked again
        if have is None or have.digest != src_digest:
            return False
        if self.options.referrers:
            await attachments.sync_digest_tags_cheaply(self, src_digest)
            await attachments.sync_native_referrers(self, src_digest)
        return True

    # -- looking for attachments ahead (reads only: every write still waits for its subject) ----

    def _ahead(self, lookup: Awaitable[object]) -> None:
        """Start ``lookup`` now; its answer is taken later (or dropped when the copy ends)."""
        task = asyncio.ensure_future(lookup)
        task.add_done_callback(_retrieved)
        self._lookups.append(task)

    async def _discover(self, subjects: Iterable[Digest]) -> None:
        """Send the referrers requests the attachment walk will make for ``subjects`` (its first
        level: the manifests of the image) while the walk of the image copies its blobs: one
        per subject the source has no referrers fallback tag for (the walk asks the same).
        Bounded: no more than the image may list (``max_manifests``), each a manifest slot."""
        wanted = sorted(set(subjects), key=str)
        if len(wanted) > self.options.max_manifests + 2:
            return  # the walk refuses this image: send nothing ahead for it
        tags = await self.session.source_tags(self.source)
        for subject in wanted:
            if subject.tag() not in tags and subject not in self._referrers and subject not in self._asked:
                task = asyncio.ensure_future(self._source_referrers_now(subject))
                task.add_done_callback(_retrieved)
                self._referrers[subject] = task

    async def _drop_lookups(self) -> None:
        """Cancel what was sent ahead and not taken (the copy failed, or ended without it)."""
        left = [*self._lookups, *self._referrers.values()]
        self._lookups.clear()
        self._referrers.clear()
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)

    def _fill(self, result: CopyResult) -> None:
        self.counters.fill(result)
        result.attachments = sorted(set(self.attachments))
        result.digest_tags = sorted(set(self.digest_tags))
        result.sparse = sorted(self.sparse)

    async def _resolve_source(self) -> tuple[Digest, str]:
        head = await self.head_source(self.source)
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

    async def head_source(self, ref: Reference) -> ManifestHead | None:
        async with self.session.manifest_slots:
            return await self.source_store.head_manifest(ref)

    async def head_target(self, ref: Reference, *, gate: Digest | None = None) -> ManifestHead | None:
        """HEAD a manifest; ``gate``: the target digest it reads (waits out a PUT rewriting it)."""
        s = self.session
        reading = s.gate(self.target.name, gate).read() if gate is not None else nullcontext()
        async with reading, s.manifest_slots:
            return await self.target_store.head_manifest(ref)

    async def get_source(self, ref: Reference) -> RawManifest:
        async with self.session.manifest_slots:
            return await self.source_store.get_manifest(ref)

    async def get_target(self, ref: Reference) -> RawManifest:
        async with self.session.manifest_slots:
            return await self.target_store.get_manifest(ref)

    async def source_referrers(self, subject: Digest) -> list[Descriptor]:
        """The source's referrers of ``subject`` by its referrers API only (no manifest GET);
        the answer to a request sent ahead (:meth:`_discover`) when there is one."""
        ahead = self._referrers.pop(subject, None)
        if ahead is not None:
            return await ahead
        self._asked.add(subject)
        return await self._source_referrers_now(subject)

    async def _source_referrers_now(self, subject: Digest) -> list[Descriptor]:
        async with self.session.manifest_slots:
            return list(
                await self.source_store.referrers(self.source.repo(), subject, tag_schema=False)
            )

    async def target_referrers(self, subject: Digest) -> list[Descriptor]:
        """The target's referrers of ``subject`` (a registry falls back to the tag schema)."""
        async with self.session.manifest_slots:
            return list(await self.target_store.referrers(self.target.repo(), subject))

    async def put(self, ref: Reference, manifest: RawManifest) -> None:
        """PUT ``manifest`` at ``ref`` at most once per session (tag or digest, same bytes)."""
        key = (ref.name, ref.tag or str(ref.digest or manifest.digest), manifest.digest)
        await self.session.shared(self.session.puts, key, lambda: self._put_now(ref, manifest))

    async def _put_now(self, ref: Reference, manifest: RawManifest) -> None:
        """The PUT itself: no other PUT of this manifest, nor of any child it lists, meanwhile."""
        s, repo = self.session, ref.name
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(s.gate(repo, manifest.digest).write())
            for child in sorted({d.digest for d in manifest.children()} - {manifest.digest}, key=str):
                await stack.enter_async_context(s.gate(repo, child).read())
            async with s.manifest_slots:
                # a refusal keeps the registry's own code and detail (RegistryError shows both)
                await self.target_store.put_manifest(ref, manifest)
        self.counters.manifests_pushed += 1


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a lookup's error as seen: whoever takes its answer gets it; nobody else must."""
    if not task.cancelled():
        task.exception()
