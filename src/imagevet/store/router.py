"""One :class:`~imagevet.store.ImageStore` over every scheme: the store the engine is given.

:class:`StoreRouter` dispatches each call by ``ref.scheme``: plain names (``docker``) to the
registry client it was given, ``oci:`` to a :class:`~imagevet.store.layout.LayoutStore` and
``oci-archive:`` to an :class:`~imagevet.store.archive.ArchiveStore`, both created on first use.
It is a :class:`~imagevet.store.BlobMounter` (a mount is forwarded only between two references
of the same store: the same registry, or two layouts of the layout store; otherwise it answers
False and the caller copies) and :class:`~imagevet.store.RateLimited` (the registry client's
budgets).  :meth:`StoreRouter.aclose` closes every store it holds, the registry client too, and
so writes the archives.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from imagevet.digest import Digest
from imagevet.errors import StoreError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference
from imagevet.store.archive import ArchiveStore
from imagevet.store.layout import LayoutStore
from imagevet.store.protocol import (
    BlobMounter,
    BlobReader,
    CountsRequests,
    ImageStore,
    ManifestHead,
    RateLimited,
)

__all__ = ["StoreRouter"]


class StoreRouter:
    """Dispatch every :class:`ImageStore` call by the reference's scheme.

    ``registry`` serves plain (``docker``) references; without one, such a reference raises
    :class:`~imagevet.errors.StoreError`.  ``layouts``/``archives`` may be passed in (tests);
    otherwise they are created when an ``oci:``/``oci-archive:`` reference first comes.
    """

    def __init__(
        self,
        registry: ImageStore | None = None,
        *,
        layouts: LayoutStore | None = None,
        archives: ArchiveStore | None = None,
    ) -> None:
        self.registry = registry
        self._layouts = layouts
        self._archives = archives
        self.ratelimits: dict[str, RateLimit] = (
            registry.ratelimits if isinstance(registry, RateLimited) else {}
        )
        self._closed = False

    async def __aenter__(self) -> StoreRouter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def store_for(self, ref: Reference) -> ImageStore:
        """The store serving ``ref`` (created on first use for layouts and archives)."""
        if self._closed:
            raise StoreError(str(ref), "the store router is closed")
        if ref.scheme == "oci":
            if self._layouts is None:
                self._layouts = LayoutStore()
            return self._layouts
        if ref.scheme == "oci-archive":
            if self._archives is None:
                self._archives = ArchiveStore()
            return self._archives
        if self.registry is None:
            raise StoreError(str(ref), "no registry client was given for registry references")
        return self.registry

    async def ping(self, ref: Reference) -> None:
        await self.store_for(ref).ping(ref)

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        return await self.store_for(ref).head_manifest(ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        return await self.store_for(ref).get_manifest(ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        return await self.store_for(ref).put_manifest(ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        await self.store_for(ref).delete_manifest(ref)

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        return await self.store_for(ref).head_blob(ref, digest)

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        return self.store_for(ref).open_blob(ref, desc)

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        await self.store_for(ref).push_blob(ref, desc, chunks)

    async def list_tags(self, ref: Reference) -> list[str]:
        return await self.store_for(ref).list_tags(ref)

    async def referrers(
        self, ref: Reference, subject: Digest, *, tag_schema: bool = True
    ) -> list[Descriptor]:
        return await self.store_for(ref).referrers(ref, subject, tag_schema=tag_schema)

    async def mount_blob(self, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
        """Forwarded when both references are of one store that can mount; else False."""
        if ref.scheme != from_ref.scheme:
            return False
        if ref.scheme == "docker" and ref.registry != from_ref.registry:
            return False
        store = self.store_for(ref)
        if not isinstance(store, BlobMounter):
            return False
        return await store.mount_blob(ref, digest, from_ref)

    def request_counts(self) -> dict[str, int]:
        """The registry client's request counts (layouts and archives make no requests)."""
        return self.registry.request_counts() if isinstance(self.registry, CountsRequests) else {}

    async def aclose(self) -> None:
        """Close every store (archives are written here); the first failure is raised last."""
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        for store in (self._archives, self._layouts, self.registry):
            if store is None:
                continue
            try:
                await store.aclose()
            except Exception as e:  # noqa: BLE001 - the other stores are still closed
                first = first or e
        if first is not None:
            raise first

    def __repr__(self) -> str:
        return f"<StoreRouter registry={self.registry!r} layouts={self._layouts!r} archives={self._archives!r}>"
