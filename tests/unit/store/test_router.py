"""The store router: one ImageStore over every scheme, stores created on first use, mounts only
inside one store, everything closed (archives written) by one aclose."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagevet.digest import Digest
from imagevet.errors import StoreError
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import RegistryClient
from imagevet.store import (
    ArchiveStore,
    BlobMounter,
    ImageStore,
    LayoutStore,
    RateLimited,
    StoreRouter,
)
from tests.support.images import make_image


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def desc(data: bytes) -> Descriptor:
    return Descriptor("application/octet-stream", Digest.of(data), len(data))


async def test_dispatches_by_scheme_and_creates_stores_on_first_use(tmp_path: Path) -> None:
    router = StoreRouter()
    assert isinstance(router, ImageStore) and isinstance(router, BlobMounter)
    assert "layouts=None" in repr(router) and "archives=None" in repr(router)
    layout = Reference.parse(f"oci:{tmp_path}/dir:v1")
    archive = Reference.parse(f"oci-archive:{tmp_path}/a.tar:v1")
    assert isinstance(router.store_for(layout), LayoutStore)
    assert isinstance(router.store_for(archive), ArchiveStore)
    assert router.store_for(layout) is router.store_for(layout.with_tag("v2"))
    with pytest.raises(StoreError, match="no registry client"):
        await router.head_manifest(Reference.parse("localhost:5000/app:v1"))


async def test_aclose_writes_archives_and_closes_everything(tmp_path: Path) -> None:
    image = make_image(seed="router/close")
    router = StoreRouter()
    for text in (f"oci:{tmp_path}/dir:v1", f"oci-archive:{tmp_path}/a.tar:v1"):
        ref = Reference.parse(text)
        for digest, data in image.blobs.items():
            await router.push_blob(ref, Descriptor("x", digest, len(data)), chunks(data))
        await router.put_manifest(ref, image.top)
    assert not (tmp_path / "a.tar").exists()
    await router.aclose()
    assert (tmp_path / "a.tar").is_file()
    with pytest.raises(StoreError, match="closed"):
        await router.list_tags(Reference.parse(f"oci:{tmp_path}/dir"))
    again = StoreRouter()
    assert await again.list_tags(Reference.parse(f"oci-archive:{tmp_path}/a.tar")) == ["v1"]
    await again.aclose()


async def test_mounts_only_inside_one_store(tmp_path: Path) -> None:
    data = b"shared layer bytes"
    router = StoreRouter()
    a = Reference.parse(f"oci:{tmp_path}/a")
    await router.push_blob(a, desc(data), chunks(data))
    b = Reference.parse(f"oci:{tmp_path}/b")
    assert await router.mount_blob(b, Digest.of(data), a)
    assert await router.head_blob(b, Digest.of(data)) == len(data)
    arc = Reference.parse(f"oci-archive:{tmp_path}/x.tar")
    assert not await router.mount_blob(arc, Digest.of(data), a)  # another store: copy instead
    assert not await router.mount_blob(a, Digest.of(data), Reference.parse("localhost:5000/x"))
    assert await router.head_blob(arc, Digest.of(data)) is None
    await router.aclose()


async def test_rate_limits_come_from_the_registry_client() -> None:
    async with RegistryClient() as client:
        assert isinstance(client, ImageStore) and isinstance(client, BlobMounter)
        assert isinstance(LayoutStore(), BlobMounter) and not isinstance(ArchiveStore(), BlobMounter)
        router = StoreRouter(client)
        assert isinstance(router, RateLimited)
        assert router.ratelimits is client.ratelimits
    assert StoreRouter().ratelimits == {}
