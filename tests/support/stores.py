"""Putting images into any :class:`~imagevet.store.ImageStore` and reading blobs back, for the
store tests (contract, layout, archive, interop): written once, so every store is fed alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.store import ImageStore
from tests.support.images import Image


async def chunks(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    """``data`` in chunks of ``size`` bytes, as a network body or a file read would come."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def put_image(store: ImageStore, ref: Reference, image: Image) -> None:
    """Blobs, then every manifest by digest (children first), then the top at ``ref.tag``."""
    for digest, data in image.blobs.items():
        await store.push_blob(ref, Descriptor("application/octet-stream", digest, len(data)), chunks(data))
    for m in image.manifests:
        await store.put_manifest(ref.repo().with_digest(m.digest), m)
    if ref.tag is not None:
        await store.put_manifest(ref, image.top)


async def read_blob(store: ImageStore, ref: Reference, desc: Descriptor) -> bytes:
    """A whole blob, read through the store's verifying stream."""
    out = bytearray()
    async with store.open_blob(ref, desc) as reader:
        async for chunk in reader:
            out += chunk
    return bytes(out)
