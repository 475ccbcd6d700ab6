"""The image-store protocol: what the engine needs from any place images live.

In the spirit of regclient's ``scheme.API``: a small required surface (manifests, blobs, tags,
referrers, ping) that every store implements, and optional abilities as separate small
protocols the engine checks for with ``isinstance`` (:class:`BlobMounter`,
:class:`RateLimited`).  Every method takes a :class:`~imagevet.reference.Reference`; a store
serves the references of its own scheme (plain names for registries, ``oci:`` for a layout
directory, ``oci-archive:`` for a layout in a tar file).

Contract, for every store (``tests/integration/test_store_contract.py`` checks each clause
against the registry client, a layout directory and a layout archive):

* manifests are exact bytes: what ``put_manifest`` received is what ``get_manifest`` returns,
  and ``get_manifest`` verifies the bytes against ``ref.digest`` when the reference has one;
  ``put_manifest`` refuses bytes that do not hash to ``ref.digest``;
* ``head_manifest`` and ``head_blob`` return None for what is absent (a repository or layout that
  does not exist included), never raise for it; ``get_manifest`` and ``open_blob`` raise
  :class:`~imagevet.errors.NotFoundError` for it;
* a blob is readable once it is pushed, and ``open_blob`` verifies digest and size as the bytes
  pass (a wrong byte raises :class:`~imagevet.errors.DigestMismatchError` before the stream ends);
  ``push_blob`` keeps nothing when the bytes do not match the descriptor (DigestMismatchError);
* ``list_tags`` returns every tag, each a valid tag name; a tag put again moves; for a repository
  (or layout) that does not exist it raises NotFoundError, as a registry answers ``NAME_UNKNOWN``;
* ``referrers`` lists the manifests whose ``subject`` is the digest (registries may fall back to
  the ``sha256-<hex>`` tag schema);
* ``delete_manifest`` of a digest makes it absent; of a tag, untags it (registries may refuse a
  tag delete); NotFoundError when there was nothing to delete;
* ``aclose`` releases what the store holds (files, connections) and, for stores that write on
  close (an archive), finishes the write; after it, calls fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from imagevet.digest import Digest
from imagevet.manifest import Descriptor, RawManifest
from imagevet.ratelimit import RateLimit
from imagevet.reference import Reference

__all__ = ["BlobMounter", "BlobReader", "CountsRequests", "ImageStore", "ManifestHead", "RateLimited"]


@dataclass(frozen=True, slots=True)
class ManifestHead:
    """What a manifest HEAD tells: digest, media type, size, and the pull budget if reported."""

    digest: Digest
    media_type: str
    size: int
    ratelimit: RateLimit | None


class BlobReader(Protocol):
    """A blob's bytes as chunks, verified against its descriptor as they pass (read once)."""

    digest: Digest
    size: int

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@runtime_checkable
class ImageStore(Protocol):
    """Manifests, blobs, tags and referrers of the repositories a store serves."""

    async def ping(self, ref: Reference) -> None:
        """Check that the store holding ``ref`` is reachable and usable; raise why not."""
        ...

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        """Digest, media type and size of the manifest ``ref`` names; None when absent."""
        ...

    async def get_manifest(self, ref: Reference) -> RawManifest:
        """The exact bytes of the manifest ``ref`` names, verified against ``ref.digest``."""
        ...

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        """Store ``manifest``'s exact bytes at ``ref.tag``, else ``ref.digest``, else its digest."""
        ...

    async def delete_manifest(self, ref: Reference) -> None:
        """Delete the manifest ``ref`` names (a tag: untag it)."""
        ...

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        """The size of blob ``digest`` in ``ref``'s repository, or None when absent."""
        ...

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        """Stream a blob, verifying digest and size as the bytes pass."""
        ...

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        """Store a blob streamed from ``chunks``; it is kept only if digest and size match."""
        ...

    async def list_tags(self, ref: Reference) -> list[str]:
        """Every tag of ``ref``'s repository."""
        ...

    async def referrers(self, ref: Reference, subject: Digest, *, tag_schema: bool = True) -> list[Descriptor]:
        """Descriptors of the manifests in ``ref``'s repository whose subject is ``subject``."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds; finish pending writes (an archive is written here)."""
        ...


@runtime_checkable
class BlobMounter(Protocol):
    """Optional: cross-repository blob mount inside one store (a registry's ``?mount=``)."""

    async def mount_blob(self, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
        """Make ``digest`` from ``from_ref``'s repository available in ``ref``'s; False if not done."""
        ...


@runtime_checkable
class RateLimited(Protocol):
    """Optional: a store that reports pull budgets (Docker Hub), the last one per registry."""

    ratelimits: dict[str, RateLimit]


@runtime_checkable
class CountsRequests(Protocol):
    """Optional: a store that counts the requests it made (a registry client), for run summaries."""

    def request_counts(self) -> dict[str, int]:
        """Requests made so far, by method and kind (``HEAD manifest``: 12, ...)."""
        ...
