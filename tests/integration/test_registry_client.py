"""RegistryClient against real Debian docker-registry processes, the fault proxy and the fake registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from imagevet.digest import Digest
from imagevet.errors import DigestMismatchError, RegistryError, TransportError, UnauthorizedError
from imagevet.manifest import Descriptor, RawManifest
from imagevet.reference import Reference
from imagevet.registry import (
    Credential,
    RegistryClient,
    RetryPolicy,
    StaticCredentials,
)
from tests.support.images import (
    Image,
    make_image,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
)
from tests.support.pusher import blob_exists, get_manifest_bytes, push_image, push_manifest
from tests.support.registry_process import READER, READER_PASSWORD, RunningRegistry

AUTHS = ["plain_registry", "basic_registry", "token_registry"]


def client_for(
    target: Any,
    *,
    username: str | None = None,
    password: str | None = None,
    retry: RetryPolicy | None = None,
) -> RegistryClient:
    """A client with the target's credentials (or the given ones)."""
    user = username or getattr(target, "username", None)
    secret = password or getattr(target, "password", None)
    creds = StaticCredentials({target.host: Credential(user, secret)}) if user and secret else None
    return RegistryClient(credentials=creds, retry=retry or RetryPolicy.no_wait(attempts=4))


async def chunks(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def descriptor_of(m: RawManifest, data: bytes, digest: Digest) -> Descriptor:
    for d in m.blobs():
        if d.digest == digest:
            return d
    return Descriptor("application/octet-stream", digest, len(data))


async def push_with(client: RegistryClient, ref: Reference, image: Image) -> None:
    """Push ``image`` with the client under test: blobs, children, then the top at ``ref.tag``."""
    for digest, data in image.blobs.items():
        desc = Descriptor("application/octet-stream", digest, len(data))
        if await client.head_blob(ref, digest) is None:
            await client.push_blob(ref, desc, chunks(data))
    for m in image.manifests:
        if m.digest != image.top.digest:
            await client.put_manifest(ref.repo().with_digest(m.digest), m)
    await client.put_manifest(ref, image.top)


async def pull_blob(client: RegistryClient, ref: Reference, digest: Digest, size: int) -> bytes:
    desc = Descriptor("application/octet-stream", digest, size)
    async with client.open_blob(ref, desc) as stream:
        return b"".join([c async for c in stream])


@pytest.mark.parametrize("which", AUTHS)
async def test_push_pull_round_trip_exact_bytes(
    which: str, request: pytest.FixtureRequest, unique_repo: str
) -> None:
    reg: RunningRegistry = request.getfixturevalue(which)
    image = make_multiarch(seed=f"rt-{which}", layer_sizes=(300_000, 5_000))
    ref = Reference.parse(f"{reg.host}/{unique_repo}:v1")
    async with client_for(reg) as client:
        await push_with(client, ref, image)
    # an independent client sees exactly the bytes pushed
    body, content_type, digest = await get_manifest_bytes(reg, unique_repo, "v1")
    assert body == image.top.data
    assert content_type == image.top.media_type
    assert digest == str(image.top.digest)
    for blob in image.blobs:
        assert await blob_exists(reg, unique_repo, blob)

    async with client_for(reg) as client:
        head = await client.head_manifest(ref)
        assert head is not None
        assert (head.digest, head.media_type, head.size) == (
            image.top.digest,
            image.top.media_type,
            image.top.size,
        )
        top = await client.get_manifest(ref)
        assert top.data == image.top.data and top.media_type == image.top.media_type
        for child in top.children():
            m = await client.get_manifest(ref.repo().with_digest(child.digest))
            assert (
                m.data == image.manifests[[x.digest for x in image.manifests].index(m.digest)].data
            )
            for d in m.blobs():
                assert await pull_blob(client, ref, d.digest, d.size) == image.blobs[d.digest]
        assert await client.list_tags(ref) == ["v1"]
        assert await client.head_manifest(ref.with_tag("absent")) is None


@pytest.mark.parametrize("which", AUTHS)
async def test_head_only_check_is_one_request_once_authenticated(
    which: str, request: pytest.FixtureRequest, unique_repo: str
) -> None:
    reg: RunningRegistry = request.getfixturevalue(which)
    image = make_image(seed=f"head-{which}", layer_sizes=(100,))
    await push_image(reg, unique_repo, image, "v1")
    ref = Reference.parse(f"{reg.host}/{unique_repo}:v1")
    async with client_for(reg) as client:
        head = await client.head_manifest(ref)
        assert head is not None and head.digest == image.top.digest
        first = len(client.stats)
        # first check: 1 request without auth, 2 with Basic (401 + retry), 3 with tokens (+ token)
        assert first == {"plain_registry": 1, "basic_registry": 2, "token_registry": 3}[which]
        for _ in range(10):
            assert await client.head_manifest(ref) is not None
        assert len(client.stats) - first == 10
        assert client.stats.count("HEAD", "manifest") == first - (which == "token_registry") + 10


async def test_pusher_image_pulled_byte_exact(
    token_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_multiarch(seed="pusher-pull", media_types="docker")
    await push_image(token_registry, unique_repo, image, "latest")
    ref = Reference.parse(f"{token_registry.host}/{unique_repo}")
    async with client_for(token_registry) as client:
        top = await client.get_manifest(ref)
        assert top.data == image.top.data and top.media_type == image.top.media_type
        pinned = await client.get_manifest(ref.with_digest(image.top.digest))
        assert pinned.digest == image.top.digest


async def test_reader_cannot_push(token_registry: RunningRegistry, unique_repo: str) -> None:
    image = make_image(seed="reader", layer_sizes=(1000,))
    await push_image(token_registry, unique_repo, image, "v1")
    ref = Reference.parse(f"{token_registry.host}/{unique_repo}:v1")
    async with client_for(token_registry, username=READER, password=READER_PASSWORD) as client:
        assert await client.head_manifest(ref) is not None  # pull is allowed
        data = b"reader's layer"
        desc = Descriptor("application/octet-stream", Digest.of(data), len(data))
        with pytest.raises(UnauthorizedError) as info:
            await client.push_blob(ref, desc, chunks(data))
        assert READER_PASSWORD not in str(info.value)
        with pytest.raises(UnauthorizedError):
            await client.put_manifest(ref.with_tag("v2"), image.top)
    async with client_for(token_registry, password="wrong-password") as client:
        with pytest.raises(UnauthorizedError, match="refused the credentials"):
            await client.head_manifest(ref)


@pytest.mark.parametrize("which", ["plain_registry", "token_registry"])
async def test_mount_within_registry(
    which: str, request: pytest.FixtureRequest, unique_repo: str
) -> None:
    reg: RunningRegistry = request.getfixturevalue(which)
    image = make_image(seed=f"mount-{which}", layer_sizes=(200_000, 3_000))
    await push_image(reg, f"{unique_repo}/src", image, "v1")
    src = Reference.parse(f"{reg.host}/{unique_repo}/src")
    dst = Reference.parse(f"{reg.host}/{unique_repo}/dst:v1")
    async with client_for(reg) as client:
        for digest in image.blobs:
            assert await client.mount_blob(dst, digest, src) is True
        assert client.stats.count("PUT", "upload") == 0
        assert client.stats.count("PATCH") == 0
        assert client.stats.count("GET", "blob") == 0
        assert sum(1 for r in client.stats if r.kind == "upload" and r.status == 201) == len(
            image.blobs
        )
        await client.put_manifest(dst, image.top)
        # a blob the source does not have is not mounted; the opened session is abandoned
        assert await client.mount_blob(dst, Digest.of(b"not there"), src) is False
        assert client.stats.count("DELETE", "upload") == 1
    for digest in image.blobs:
        assert await blob_exists(reg, f"{unique_repo}/dst", digest)


async def test_list_tags(plain_registry: RunningRegistry, unique_repo: str) -> None:
    image = make_image(seed="tags", layer_sizes=(10,))
    await push_image(plain_registry, unique_repo, image, "t0")
    names = [f"t{i}" for i in range(7)]
    for name in names[1:]:
        await push_manifest(plain_registry, unique_repo, image.top, name)
    ref = Reference.parse(f"{plain_registry.host}/{unique_repo}")
    async with client_for(plain_registry) as client:
        # distribution 2.8 ignores n= for tags and answers everything on one page
        assert sorted(await client.list_tags(ref, page_size=3)) == names


async def test_list_tags_pagination(fake_registry_factory: Any) -> None:
    fake = fake_registry_factory(tags_page_size=3)
    image = make_image(seed="pages", layer_sizes=(10,))
    names = [f"t{i}" for i in range(7)]
    for name in names:
        fake.seed("team/app", image, name)
    ref = Reference.parse(f"{fake.host}/team/app")
    async with client_for(fake) as client:
        assert sorted(await client.list_tags(ref)) == names
        assert client.stats.count("GET", "tags") == 3
        assert sorted(await client.list_tags(ref, page_size=2)) == names
        assert client.stats.count("GET", "tags") == 3 + 4


async def test_referrers_fallback_on_distribution(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_image(seed="subject", layer_sizes=(10,))
    sbom = make_referrer(image.top, seed="sbom")
    await push_image(plain_registry, unique_repo, image, "v1")
    await push_image(plain_registry, unique_repo, sbom)
    index = make_referrers_tag_index([sbom])
    await push_manifest(plain_registry, unique_repo, index, f"sha256-{image.top.digest.hex}")
    ref = Reference.parse(f"{plain_registry.host}/{unique_repo}")
    async with client_for(plain_registry) as client:
        got = await client.referrers(ref, image.top.digest)
        assert [d.digest for d in got] == [sbom.top.digest]
        assert got[0].artifact_type == sbom.top.artifact_type
        assert client.stats.count("GET", "referrers") == 1  # the 404 probe
        # known now: the next subject goes straight to its tag, and none found is []
        assert await client.referrers(ref, sbom.top.digest) == []
        assert client.stats.count("GET", "referrers") == 1


async def test_referrers_native_api_on_fake_registry(fake_registry: Any) -> None:
    image = make_image(seed="native", layer_sizes=(10,))
    sig = make_referrer(image.top, seed="sig", artifact_type="application/vnd.example.sig")
    fake_registry.seed("team/app", image, "v1")
    fake_registry.seed("team/app", sig)
    ref = Reference.parse(f"{fake_registry.host}/team/app")
    async with client_for(fake_registry) as client:
        got = await client.referrers(ref, image.top.digest)
        assert [d.digest for d in got] == [sig.top.digest]
        assert got[0].artifact_type == "application/vnd.example.sig"
        assert client.stats.count(kind="manifest") == 0


async def test_blob_redirect_to_storage_origin(fake_registry_factory: Any) -> None:
    fake = fake_registry_factory(require_auth=("alice", "alice-pw-s3cret"), redirect_blobs=True)
    image = make_image(seed="redirect", layer_sizes=(100_000,))
    fake.seed("team/app", image, "v1")
    ref = Reference.parse(f"{fake.host}/team/app")
    async with client_for(fake) as client:
        for digest, data in image.blobs.items():
            assert await pull_blob(client, ref, digest, len(data)) == data
    assert fake.storage_requests, "the blobs were served from the storage origin"
    for record in fake.storage_requests:
        assert "Authorization" not in record.headers
        assert record.status == 200  # the signed query arrived byte-exact


async def test_corrupted_byte_is_a_digest_mismatch(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    image = make_image(seed="corrupt", layer_sizes=(150_000,))
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    ref = Reference.parse(f"{proxy.host}/{unique_repo}")
    layer = image.top.blobs()[-1]
    async with client_for(proxy) as client:
        proxy.corrupt(path_contains=f"/blobs/{layer.digest}", offset=100_000)
        with pytest.raises(DigestMismatchError) as info:
            await pull_blob(client, ref, layer.digest, layer.size)
        assert info.value.expected == str(layer.digest)
        # the next read is clean
        assert await pull_blob(client, ref, layer.digest, layer.size) == image.blobs[layer.digest]
        proxy.corrupt(path_contains="/manifests/", offset=10)
        with pytest.raises(DigestMismatchError):
            await client.get_manifest(ref.with_digest(image.top.digest))


async def test_cut_body_is_a_transport_error(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    image = make_image(seed="cut", layer_sizes=(400_000,))
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    ref = Reference.parse(f"{proxy.host}/{unique_repo}")
    layer = image.top.blobs()[-1]
    proxy.cut(path_contains=f"/blobs/{layer.digest}", after_bytes=50_000)
    async with client_for(proxy) as client:
        with pytest.raises((TransportError, DigestMismatchError)):
            await pull_blob(client, ref, layer.digest, layer.size)


async def test_503_burst_is_retried(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    image = make_image(seed="burst", layer_sizes=(10,))
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    ref = Reference.parse(f"{proxy.host}/{unique_repo}:v1")
    async with client_for(proxy, retry=RetryPolicy.no_wait(attempts=5)) as client:
        proxy.fail(times=3, status=503, path_contains="/manifests/")
        head = await client.head_manifest(ref)
        assert head is not None and head.digest == image.top.digest
        assert proxy.count("HEAD", "/manifests/") == 4
        proxy.fail(times=1, status=429, retry_after="0", path_contains="/manifests/")
        assert (await client.get_manifest(ref)).data == image.top.data
        proxy.fail(times=None, status=503, path_contains="/tags/")
        with pytest.raises(RegistryError) as info:
            await client.list_tags(ref)
        assert info.value.status == 503
        assert proxy.count("GET", "/tags/") == 5


async def test_delete_manifest(plain_registry: RunningRegistry, unique_repo: str) -> None:
    image = make_image(seed="delete", layer_sizes=(10,))
    await push_image(plain_registry, unique_repo, image, "v1")
    ref = Reference.parse(f"{plain_registry.host}/{unique_repo}")
    async with client_for(plain_registry) as client:
        await client.delete_manifest(ref.with_digest(image.top.digest))
        assert await client.head_manifest(ref.with_tag("v1")) is None


async def test_ping(plain_registry: RunningRegistry, basic_registry: RunningRegistry) -> None:
    async with client_for(plain_registry) as client:
        await client.ping(Reference.parse(f"{plain_registry.host}/any/repo"))
    async with client_for(basic_registry) as client:
        await client.ping(Reference.parse(f"{basic_registry.host}/any/repo"))
        assert client.stats.count(kind="ping") == 2
    async with RegistryClient() as anonymous:
        with pytest.raises(UnauthorizedError):
            await anonymous.ping(Reference.parse(f"{basic_registry.host}/any/repo"))
