"""OCI image layout directories as an image store: ``oci:PATH[:TAG|@DIGEST]``.

The layout follows image-spec ``image-layout.md`` (v1.1):

* ``oci-layout`` holds ``{"imageLayoutVersion": "1.0.0"}``;
* ``index.json`` is an OCI image index whose ``manifests`` are the stored top-level manifests; a
  tag is the ``org.opencontainers.image.ref.name`` annotation of one entry (a tag moves: the entry
  with that name is replaced); a manifest stored by digest is an entry without a name, so it is
  kept (the children of an index copied into a layout are such entries);
* every blob, manifests included, is ``blobs/<alg>/<hex>``.

Behaviour, beyond the :mod:`store protocol <imagevet.store.protocol>` contract:

* **Absent.** A path with neither ``index.json`` nor ``oci-layout`` (missing, or an empty
  directory) is an absent layout: ``head_manifest``/``head_blob`` return None,
  ``get_manifest``/``open_blob`` raise :class:`~imagevet.errors.NotFoundError`, and
  ``list_tags`` raises NotFoundError too, as a registry answers ``NAME_UNKNOWN`` for a repository
  that does not exist.  Nothing is created by a read; the directory (with ``oci-layout``) is
  created by the first write.
* **Tags.** ``list_tags`` returns the ``ref.name`` annotations that are valid tag names (the
  spec also allows full reference names there; they are not tags and are left out).
* **No tag, no digest.** ``oci:DIR`` means ``latest`` or, when there is no such tag and the
  index holds exactly one manifest, that manifest (what skopeo reads).
* **Delete.** Deleting a tag removes its entry; deleting a digest removes every entry of that
  digest and the manifest's blob.  Other blobs are never removed (no garbage collection).
* **Writes.** A blob is streamed to a temporary file in the layout, checked against its digest and
  size, synced, then renamed: a partial or wrong blob never has its final name.  ``index.json`` is
  rewritten atomically (temporary file, fsync, rename, directory fsync) under one asyncio lock per
  layout and an ``flock`` on the layout directory, so concurrent tasks and processes never lose
  each other's tags.  Files are read and written in 1 MiB steps off the event loop.
* **Hostile layouts.** ``index.json`` larger than :data:`MAX_INDEX_SIZE`, with more than
  :data:`MAX_INDEX_ENTRIES` entries, not JSON or not an index; a manifest larger than
  :data:`MAX_MANIFEST_SIZE`; a path inside the layout that resolves outside it (a symlinked
  ``blobs/`` or blob); a blob that is not a regular file: each raises
  :class:`~imagevet.errors.LayoutError` naming the file.  A blob whose size or digest is not what
  its descriptor says raises :class:`~imagevet.errors.DigestMismatchError`.  Nothing is written
  outside the layout directory, and never through a symlink.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager

from imagevet.digest import Digest
from imagevet.errors import LayoutError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.store.layout.files import CHUNK_SIZE
from imagevet.store.layout.index import LAYOUT_VERSION, MAX_INDEX_ENTRIES, MAX_INDEX_SIZE, REF_NAME
from imagevet.store.layout.reader import MAX_MANIFEST_SIZE
from imagevet.store.layout.writer import DirLayout
from imagevet.store.protocol import BlobReader, ManifestHead

__all__ = [
    "CHUNK_SIZE",
    "LAYOUT_VERSION",
    "MAX_INDEX_ENTRIES",
    "MAX_INDEX_SIZE",
    "MAX_MANIFEST_SIZE",
    "REF_NAME",
    "LayoutStore",
]


class LayoutStore:
    """Every ``oci:`` reference: each distinct path is one layout directory, opened on first use.

    Implements :class:`~imagevet.store.ImageStore` and :class:`~imagevet.store.BlobMounter`
    (a blob "mounted" from another layout of this store is hard-linked, or copied and verified).
    """

    scheme = "oci"

    def __init__(self) -> None:
        self._layouts: dict[str, DirLayout] = {}
        self._closed = False

    def layout(self, ref: Reference) -> DirLayout:
        if self._closed:
            raise LayoutError(ref.name, "the layout store is closed")
        if ref.scheme != self.scheme:
            raise LayoutError(str(ref), f"not an {self.scheme}: reference")
        found = self._layouts.get(ref.repository)
        if found is None:
            found = self._layouts[ref.repository] = DirLayout(ref.repository, ref.name)
        return found

    async def ping(self, ref: Reference) -> None:
        """A layout that is there must be readable; one that is not must be creatable."""
        layout = self.layout(ref)
        if await asyncio.to_thread(layout.files.present):
            await layout.index()
            return
        parent = os.path.abspath(ref.repository)
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise LayoutError(ref.name, f"cannot be created: {parent} is not a writable directory")

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        return await self.layout(ref).head(ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        return await self.layout(ref).get(ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        return await self.layout(ref).put_manifest(ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        await self.layout(ref).delete(ref)

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        return await self.layout(ref).blob_size(digest)

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        return self.layout(ref).open_blob(desc)

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        await self.layout(ref).push_blob(desc, chunks)

    async def mount_blob(self, ref: Reference, digest: Digest, from_ref: Reference) -> bool:
        target, source = self.layout(ref), self.layout(from_ref)
        if target is source:
            return await target.blob_size(digest) is not None
        return await target.link_blob(digest, source)

    async def list_tags(self, ref: Reference) -> list[str]:
        return await self.layout(ref).tags()

    async def referrers(self, ref: Reference, subject: Digest, *, tag_schema: bool = True) -> list[Descriptor]:
        return await self.layout(ref).referrers(subject, tag_schema=tag_schema)

    async def aclose(self) -> None:
        self._closed = True
        self._layouts.clear()

    def __repr__(self) -> str:
        return f"<LayoutStore {len(self._layouts)} layouts>"
