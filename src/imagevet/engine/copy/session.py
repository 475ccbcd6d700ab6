"""The session many copies share: each blob moved and each manifest pushed at most once per
target repository, PUTs ordered so the registry never sees a half-written child, bounded
requests in flight (see the package docstring)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from imagevet.digest import Digest
from imagevet.engine.copy.gate import Gate
from imagevet.engine.copy.image import ImageCopy
from imagevet.engine.copy.options import CopyOptions, CopyProgress
from imagevet.engine.copy.results import CopyResult, Facts, TagFacts
from imagevet.errors import LimitExceededError, NotFoundError
from imagevet.reference import Reference
from imagevet.store import ImageStore

__all__ = ["CopySession", "copy_image"]

_T = TypeVar("_T")


class CopySession:
    """Shared state for many copies: each blob moved and each manifest pushed at most once per
    target repository, PUTs ordered so the registry never sees a half-written child, bounded
    requests in flight (see the package docstring).

    ``source`` serves the references copied from, ``target`` those copied to: any two
    :class:`~imagevet.store.ImageStore` (the same object for both ends is fine: a registry
    client serving every registry, or a router).  Blobs are mounted only when ``target`` is a
    :class:`~imagevet.store.BlobMounter` and both ends are that one store, on one registry.

    The maps below are the package's own: the shared, deduplicated work of every image.
    """

    def __init__(
        self,
        source: ImageStore,
        target: ImageStore,
        options: CopyOptions | None = None,
        *,
        progress: CopyProgress | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.options = options or CopyOptions()
        self.progress = progress
        self.blob_slots = asyncio.Semaphore(max(1, self.options.jobs))
        self.manifest_slots = asyncio.Semaphore(max(1, self.options.jobs))
        self.blobs: dict[Any, asyncio.Future[str]] = {}
        self.blob_locks: dict[tuple[str, Digest], asyncio.Lock] = {}
        self.manifests: dict[Any, asyncio.Future[Facts]] = {}
        self.manifest_rooms: dict[tuple[str, Digest], set[int]] = {}
        self.present: dict[Any, asyncio.Future[bool]] = {}
        self.puts: dict[Any, asyncio.Future[None]] = {}
        self.gates: dict[tuple[str, Digest], Gate] = {}
        self.attachment_tags: dict[Any, asyncio.Future[TagFacts]] = {}
        self.referrer_lists: dict[Any, asyncio.Future[None]] = {}
        self.source_tag_lists: dict[Any, asyncio.Future[frozenset[str]]] = {}

    async def copy(
        self, source: Reference, target: Reference, *, options: CopyOptions | None = None
    ) -> CopyResult:
        """Copy ``source`` (tag or digest) to ``target`` (tag, or repository only).

        ``options`` overrides the session's for this image (``jobs`` stays the session's).
        """
        return await ImageCopy(self, source, target, options or self.options).run()

    async def shared(
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

    def gate(self, repo: str, digest: Digest) -> Gate:
        return self.gates.setdefault((repo, digest), Gate())

    def blob_lock(self, repo: str, digest: Digest) -> asyncio.Lock:
        return self.blob_locks.setdefault((repo, digest), asyncio.Lock())

    async def source_tags(self, source: Reference) -> frozenset[str]:
        """The source repository's tags, listed once per session (for digest-tag discovery)."""
        tags, _ = await self.shared(
            self.source_tag_lists, source.name, lambda: self._list_tags(source)
        )
        return tags

    async def _list_tags(self, source: Reference) -> frozenset[str]:
        try:
            async with self.manifest_slots:
                return frozenset(await self.source.list_tags(source.repo()))
        except NotFoundError:
            return frozenset()


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a shared task's error as seen: its callers (if any are left) get it through a shield."""
    if not task.cancelled():
        task.exception()


def _worth_again(error: BaseException | None) -> bool:
    """Whether shared work that ended in ``error`` is started again for the next caller."""
    if error is None:
        return False
    return not (isinstance(error, LimitExceededError) or getattr(error, "exhausted", False))


async def copy_image(
    source_store: ImageStore,
    target_store: ImageStore,
    source: Reference,
    target: Reference,
    *,
    options: CopyOptions | None = None,
    progress: CopyProgress | None = None,
) -> CopyResult:
    """Copy one image from ``source`` (in ``source_store``) to ``target`` (in ``target_store``)
    byte for byte (see the package docstring)."""
    session = CopySession(source_store, target_store, options, progress=progress)
    return await session.copy(source, target)
