"""The router forwards a mount to the registry client only for two repositories of one registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

from imagevet.digest import Digest
from imagevet.manifest import Descriptor
from imagevet.reference import Reference
from imagevet.registry import RegistryClient, RetryPolicy
from imagevet.store import StoreRouter
from tests.support.images import random_blob
from tests.support.registry_process import RunningRegistry


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_mount_is_forwarded_within_one_registry_only(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    data = random_blob(10_000, "router/mount")
    digest = Digest.of(data)
    client = RegistryClient(retry=RetryPolicy.no_wait(attempts=2))
    async with StoreRouter(client) as router:
        src = Reference.parse(f"{plain_registry.host}/{unique_repo}-src")
        dst = Reference.parse(f"{plain_registry.host}/{unique_repo}-dst")
        await router.push_blob(src, Descriptor("x", digest, len(data)), chunks(data))
        assert await router.mount_blob(dst, digest, src)
        assert await router.head_blob(dst, digest) == len(data)
        before = len(client.stats)
        elsewhere = Reference.parse(f"127.0.0.1:1/{unique_repo}-src")
        assert not await router.mount_blob(dst, digest, elsewhere)
        assert len(client.stats) == before  # not even asked
