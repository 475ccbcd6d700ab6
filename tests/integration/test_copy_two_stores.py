"""The copy engine between two different stores: a source store and a target store, each
reached only through :class:`~imagevet.store.ImageStore`.

Until the layout stores land, the two stores are two :class:`RegistryClient` objects (two
registries, the target behind basic auth, each client with only its own registry's
credentials), and a store known by the protocol alone (a plain forwarder: no mount, no rate
limits), which is all an OCI layout store will offer the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from imagevet.digest import Digest
from imagevet.engine.copy import CopySession, copy_image
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.registry import Credential, RegistryClient, RetryPolicy, StaticCredentials
from imagevet.store import BlobMounter, BlobReader, ImageStore, ManifestHead
from tests.support.images import (
    cosign_tag,
    make_cosign_signature,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
)
from tests.support.pusher import fetch_image, list_tags, push_image, push_manifest
from tests.support.registry_process import RunningRegistry

FAST_RETRY = RetryPolicy.no_wait(4)


def ref(registry: Any, repo: str, tag: str | None = None) -> Reference:
    return Reference.parse(f"{registry.host}/{repo}" + (f":{tag}" if tag else ""))


def own_client(registry: Any) -> RegistryClient:
    """A client holding the credentials of ``registry`` only (none for a registry without)."""
    creds = {}
    if getattr(registry, "username", None):
        creds[registry.host] = Credential(registry.username, registry.password)
    return RegistryClient(credentials=StaticCredentials(creds), retry=FAST_RETRY)


class ProtocolOnlyStore:
    """An image store the engine knows by :class:`ImageStore` alone (as it will a layout):
    every call forwarded to a registry client, and nothing else (no mount, no rate limits)."""

    def __init__(self, client: RegistryClient) -> None:
        self._c = client
        self.calls: list[str] = []

    async def ping(self, ref: Reference) -> None:
        self.calls.append("ping")

    async def head_manifest(self, ref: Reference) -> ManifestHead | None:
        self.calls.append("head_manifest")
        return await self._c.head_manifest(ref)

    async def get_manifest(self, ref: Reference) -> RawManifest:
        self.calls.append("get_manifest")
        return await self._c.get_manifest(ref)

    async def put_manifest(self, ref: Reference, manifest: RawManifest) -> Digest:
        self.calls.append("put_manifest")
        return await self._c.put_manifest(ref, manifest)

    async def delete_manifest(self, ref: Reference) -> None:
        self.calls.append("delete_manifest")
        await self._c.delete_manifest(ref)

    async def head_blob(self, ref: Reference, digest: Digest) -> int | None:
        self.calls.append("head_blob")
        return await self._c.head_blob(ref, digest)

    def open_blob(self, ref: Reference, desc: Descriptor) -> AbstractAsyncContextManager[BlobReader]:
        self.calls.append("open_blob")
        return self._c.open_blob(ref, desc)

    async def push_blob(self, ref: Reference, desc: Descriptor, chunks: AsyncIterable[bytes]) -> None:
        self.calls.append("push_blob")
        await self._c.push_blob(ref, desc, chunks)

    async def list_tags(self, ref: Reference) -> list[str]:
        self.calls.append("list_tags")
        return await self._c.list_tags(ref)

    async def referrers(
        self, ref: Reference, subject: Digest, *, tag_schema: bool = True
    ) -> list[Descriptor]:
        self.calls.append("referrers")
        return await self._c.referrers(ref, subject, tag_schema=tag_schema)

    async def aclose(self) -> None:
        self.calls.append("aclose")


async def seed_signed_image(registry: Any, repo: str, seed: str) -> tuple[Any, list[str], int]:
    """A 2-platform image at ``v1`` with a cosign signature and an SBOM listed by the referrers
    tag schema; returns the image, the digest tags that must travel with it, and how many blobs
    the image and its attachments have."""
    image = make_multiarch(seed=seed, platforms=("linux/amd64", "linux/arm64"))
    sig = make_cosign_signature(image.top, seed=seed)
    sbom = make_referrer(image.top, seed=f"{seed}-sbom")
    await push_image(registry, repo, image, "v1")
    await push_image(registry, repo, sig, cosign_tag(image.digest, "sig"))
    await push_image(registry, repo, sbom)
    fallback = f"{image.digest.algorithm}-{image.digest.hex}"
    await push_manifest(registry, repo, make_referrers_tag_index([sbom]), fallback)
    blobs = set(image.blobs) | set(sig.blobs) | set(sbom.blobs)
    return image, [cosign_tag(image.digest, "sig"), fallback], len(blobs)


async def test_two_clients_two_registries_byte_exact_each_speaking_to_its_own(
    plain_registry: RunningRegistry, basic_registry: RunningRegistry, unique_repo: str
) -> None:
    """Source and target are two store objects: every source request goes through the source
    client to the source registry, every target request through the target client (the only
    one with the target's password) to the target; the copy is byte-exact with attachments."""
    image, digest_tags, blobs = await seed_signed_image(plain_registry, unique_repo, "two-clients")
    async with own_client(plain_registry) as source, own_client(basic_registry) as target:
        result = await CopySession(source, target).copy(
            ref(plain_registry, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
        )
    assert result.digest == image.digest and not result.noop
    assert result.blobs_copied == blobs and result.blobs_mounted == 0
    assert sorted(result.digest_tags) == sorted(digest_tags)
    assert {r.registry for r in source.stats.records} == {plain_registry.host}
    assert {r.registry for r in target.stats.records} == {basic_registry.host}
    assert all(r.method in ("GET", "HEAD") for r in source.stats.records)  # nothing written there
    a = await fetch_image(plain_registry, unique_repo, "v1")
    b = await fetch_image(
        basic_registry, unique_repo, "v1",
        username=basic_registry.username, password=basic_registry.password,
    )
    assert b.top.data == a.top.data
    assert {m.digest: m.data for m in b.manifests} == {m.digest: m.data for m in a.manifests}
    assert b.blobs == a.blobs
    tags = await list_tags(
        basic_registry, unique_repo,
        username=basic_registry.username, password=basic_registry.password,
    )
    assert set(digest_tags) | {"v1"} <= set(tags)


async def test_no_mount_is_attempted_between_two_store_objects(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    """Same registry, two repositories, but two store objects: a mount would ask the target to
    trust a source it was not given, so every blob is streamed and no ``?mount=`` is sent."""
    image = make_multiarch(seed="two-objects-no-mount")
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    async with own_client(proxy) as source, own_client(proxy) as target:
        assert isinstance(target, BlobMounter)  # it could mount: the engine must not ask it to
        result = await copy_image(
            source, target, ref(proxy, unique_repo, "v1"), ref(proxy, unique_repo + "-copy", "v1")
        )
    assert result.blobs_mounted == 0 and result.blobs_copied == len(image.blobs)
    assert [r for r in proxy.find(method="POST") if "mount=" in r.query] == []
    assert proxy.count(method="GET", path_contains="/blobs/") == len(image.blobs)
    copied = await fetch_image(plain_registry, unique_repo + "-copy", "v1")
    assert copied.top.data == image.top.data and copied.blobs == image.blobs


async def test_a_store_known_by_the_protocol_alone_copies_everything(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    """One store object for both ends that is no registry client and cannot mount (what an
    OCI layout store offers): the image, its signature and its SBOM arrive byte for byte,
    blobs streamed (no mount asked), and a second copy is a no-op of HEADs."""
    image, digest_tags, blobs = await seed_signed_image(plain_registry, unique_repo, "protocol-only")
    proxy = fault_proxy(plain_registry)
    async with own_client(proxy) as client:
        store = ProtocolOnlyStore(client)
        assert isinstance(store, ImageStore) and not isinstance(store, BlobMounter)
        src, dst = ref(proxy, unique_repo, "v1"), ref(proxy, unique_repo + "-copy", "v1")
        first = await copy_image(store, store, src, dst)
        second = await copy_image(store, store, src, dst)
    assert first.digest == image.digest and first.blobs_copied == blobs
    assert first.blobs_mounted == 0
    assert sorted(first.digest_tags) == sorted(digest_tags)
    assert [r for r in proxy.find(method="POST") if "mount=" in r.query] == []
    assert second.noop
    assert {"open_blob", "push_blob", "put_manifest", "list_tags"} <= set(store.calls)
    a = await fetch_image(plain_registry, unique_repo, "v1")
    b = await fetch_image(plain_registry, unique_repo + "-copy", "v1")
    assert b.top.data == a.top.data and b.blobs == a.blobs
    assert set(digest_tags) <= set(await list_tags(plain_registry, unique_repo + "-copy"))
