"""The copy engine against real registries: byte-exact, attachments, skips, faults, crashes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from imagevet.digest import Digest
from imagevet.engine.copy import MAX_INDEX_DEPTH, CopyOptions, CopySession, copy_image
from imagevet.errors import CopyError, DigestMismatchError, UnauthorizedError
from imagevet.manifest import Platform, RawManifest
from imagevet.reference import Reference
from imagevet.registry import Credential, RegistryClient, RetryPolicy, StaticCredentials
from tests.support.images import (
    Image,
    cosign_tag,
    make_cosign_signature,
    make_image,
    make_index,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
    random_blob,
)
from tests.support.pusher import (
    blob_exists,
    fetch_image,
    get_manifest_bytes,
    list_tags,
    push_image,
    push_manifest,
)
from tests.support.registry_process import RunningRegistry
from tests.support.traps import DISTRIBUTION_28_REJECTS, TRAPS, make_sparse_index

FAST_RETRY = RetryPolicy.no_wait(4)


def referrers_tag(digest: Digest) -> str:
    """The referrers tag schema's fallback tag: ``sha256-<hex>``."""
    return f"{digest.algorithm}-{digest.hex}"


def _creds(*registries: Any) -> StaticCredentials:
    return StaticCredentials(
        {
            r.host: Credential(r.username, r.password)
            for r in registries
            if getattr(r, "username", None)
        }
    )


@asynccontextmanager
async def client_for(*registries: Any, **kw: Any) -> AsyncIterator[RegistryClient]:
    kw.setdefault("retry", FAST_RETRY)
    async with RegistryClient(credentials=_creds(*registries), **kw) as c:
        yield c


def ref(registry: Any, repo: str, tag: str | None = None) -> Reference:
    return Reference.parse(f"{registry.host}/{repo}" + (f":{tag}" if tag else ""))


def auth(r: Any) -> dict[str, Any]:
    return {"username": getattr(r, "username", None), "password": getattr(r, "password", None)}


async def assert_same_image(src: Any, src_repo: str, dst: Any, dst_repo: str, tag: str) -> Image:
    """Target holds exactly the source's manifests (bytes, types) and blobs."""
    a = await fetch_image(src, src_repo, tag, **auth(src))
    b = await fetch_image(dst, dst_repo, tag, **auth(dst))
    assert b.top.digest == a.top.digest
    assert b.top.data == a.top.data
    assert b.top.media_type == a.top.media_type
    assert {m.digest: m.data for m in b.manifests} == {m.digest: m.data for m in a.manifests}
    assert b.blobs == a.blobs
    return b


# -- byte-exact copies ----------------------------------------------------------------------------


@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_multiarch_copy_across_registries_is_byte_exact(
    plain_registry: RunningRegistry,
    token_registry: RunningRegistry,
    unique_repo: str,
    media_types: str,
) -> None:
    image = make_multiarch(
        seed=f"xreg-{media_types}",
        media_types=media_types,
        platforms=("linux/amd64", "linux/arm64", "linux/arm/v7"),
    )
    await push_image(plain_registry, unique_repo, image, "1.0")
    async with client_for(plain_registry, token_registry) as client:
        result = await copy_image(
            client, client,
            ref(plain_registry, unique_repo, "1.0"),
            ref(token_registry, "acme/mirror-" + media_types),
        )
    assert result.digest == image.digest and not result.noop
    assert result.platforms == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert result.blobs_copied == len(image.blobs)
    assert result.bytes_copied == sum(len(b) for b in image.blobs.values())
    await assert_same_image(
        plain_registry, unique_repo, token_registry, "acme/mirror-" + media_types, "1.0"
    )


async def test_second_copy_is_head_only(
    plain_registry: RunningRegistry,
    basic_registry: RunningRegistry,
    unique_repo: str,
    fault_proxy: Any,
) -> None:
    """A copy whose target already has the digest makes no GET of a manifest or blob on the source."""
    image = make_multiarch(seed="noop")
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    async with client_for(basic_registry) as client:
        first = await copy_image(
            client, client, ref(proxy, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
        )
        assert not first.noop
        proxy.clear()
        second = await copy_image(
            client, client, ref(proxy, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
        )
    assert second.noop and second.digest == image.digest
    assert proxy.count(method="GET", path_contains="/manifests/") == 0
    assert proxy.count(method="GET", path_contains="/blobs/") == 0
    assert proxy.count(method="HEAD", path_contains="/manifests/") == 1


async def test_same_registry_mounts_instead_of_copying(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    image = make_multiarch(seed="mount")
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    async with client_for() as client:
        result = await copy_image(
            client, client, ref(proxy, unique_repo, "v1"), ref(proxy, unique_repo + "-copy", "v1")
        )
    assert result.blobs_mounted == len(image.blobs)
    assert result.blobs_copied == 0 and result.bytes_copied == 0
    assert proxy.count(method="GET", path_contains="/blobs/") == 0
    mounts = [
        r for r in proxy.find(method="POST", path_contains="/blobs/uploads/") if "mount=" in r.query
    ]
    assert len(mounts) == len(image.blobs)
    await assert_same_image(
        plain_registry, unique_repo, plain_registry, unique_repo + "-copy", "v1"
    )


async def test_blobs_present_at_target_are_skipped_and_never_moved_twice(
    plain_registry: RunningRegistry,
    basic_registry: RunningRegistry,
    unique_repo: str,
    fault_proxy: Any,
) -> None:
    base = random_blob(4096, "shared-base")
    a = make_multiarch(seed="dedupe-a", shared_layers=[base])
    b = make_multiarch(seed="dedupe-b", shared_layers=[base])
    await push_image(plain_registry, unique_repo, a, "a")
    await push_image(plain_registry, unique_repo, b, "b")
    proxy = fault_proxy(plain_registry)
    async with client_for(basic_registry) as client:
        session = CopySession(client, client, CopyOptions(jobs=4))
        ra, rb = await asyncio.gather(
            session.copy(ref(proxy, unique_repo, "a"), ref(basic_registry, unique_repo, "a")),
            session.copy(ref(proxy, unique_repo, "b"), ref(basic_registry, unique_repo, "b")),
        )
    # the shared base layer went over the wire once, though both images (4 manifests) list it
    base_digest = Digest.of(base)
    assert proxy.count(method="GET", path_contains=f"/blobs/{base_digest}") == 1
    total = {**a.blobs, **b.blobs}
    assert proxy.count(method="GET", path_contains="/blobs/") == len(total)
    assert ra.blobs_copied + rb.blobs_copied + ra.blobs_skipped + rb.blobs_skipped >= len(total)


async def test_one_failing_image_does_not_cancel_work_another_shares(
    plain_registry: RunningRegistry, basic_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    """A and B share a layer; A's own layer fails: A fails, B completes (no CancelledError)."""
    base = random_blob(300_000, "shared-cancel")
    a = make_image(seed="cancel-a", shared_layers=[base], layer_sizes=(1000,))
    b = make_image(seed="cancel-b", shared_layers=[base], layer_sizes=(1000,))
    await push_image(plain_registry, unique_repo, a, "a")
    await push_image(plain_registry, unique_repo, b, "b")
    own = next(d.digest for d in a.top.blobs() if d.size == 1000)
    proxy = fault_proxy(plain_registry)
    proxy.fail(times=None, status=403, path_contains=f"/blobs/{own}")
    proxy.delay(0.3, path_contains=f"/blobs/{Digest.of(base)}")  # the shared layer is in flight
    async with client_for(basic_registry) as client:
        session = CopySession(client, client, CopyOptions(jobs=4))
        ra, rb = await asyncio.gather(
            session.copy(ref(proxy, unique_repo, "a"), ref(basic_registry, unique_repo, "a")),
            session.copy(ref(proxy, unique_repo, "b"), ref(basic_registry, unique_repo, "b")),
            return_exceptions=True,
        )
    assert isinstance(ra, CopyError)
    assert not isinstance(rb, BaseException), rb
    assert rb.digest == b.digest
    assert await list_tags(basic_registry, unique_repo, **auth(basic_registry)) == ["b"]


@pytest.mark.parametrize("trap", sorted(set(TRAPS) - DISTRIBUTION_28_REJECTS))
async def test_conformance_traps_keep_their_bytes(
    plain_registry: RunningRegistry, basic_registry: RunningRegistry, unique_repo: str, trap: str
) -> None:
    image = TRAPS[trap](seed=f"trap-{trap}")
    await push_image(plain_registry, unique_repo, image, "t")
    async with client_for(basic_registry) as client:
        result = await copy_image(
            client, client, ref(plain_registry, unique_repo, "t"), ref(basic_registry, unique_repo, "t")
        )
    assert result.digest == image.digest
    got = await get_manifest_bytes(basic_registry, unique_repo, "t", **auth(basic_registry))
    assert got[0] == image.top.data
    for m in _reachable(image):  # a `subject` is another artifact, not part of this image
        body, _, _ = await get_manifest_bytes(
            basic_registry, unique_repo, str(m.digest), **auth(basic_registry)
        )
        assert body == m.data
    for digest in _distributable_blobs(image):
        assert await blob_exists(basic_registry, unique_repo, digest, **auth(basic_registry))


def _reachable(image: Image) -> list[RawManifest]:
    out, stack = [], [image.top]
    while stack:
        m = stack.pop()
        out.append(m)
        stack.extend(image.manifest(d.digest) for d in m.children())
    return out


def _distributable_blobs(image: Image) -> set[Digest]:
    out: set[Digest] = set()
    for m in _reachable(image):
        for d in m.blobs():
            if "nondistributable" not in d.media_type and "foreign" not in d.media_type:
                out.add(d.digest)
    return out


@pytest.mark.parametrize("trap", sorted(DISTRIBUTION_28_REJECTS))
async def test_traps_distribution_rejects_copy_exactly_between_fakes(
    fake_registry_factory: Any, unique_repo: str, trap: str
) -> None:
    """Sparse index and sha512 manifests, on a registry double that accepts them."""
    source = fake_registry_factory(check_children=False)
    target = fake_registry_factory(check_children=False)
    image = TRAPS[trap](seed=f"trap2-{trap}")
    absent: frozenset[Digest] = frozenset()
    if trap == "sparse-index":
        sparse = make_sparse_index(seed=f"trap2-{trap}")
        image, absent = sparse.image, sparse.absent
    await push_image(source, unique_repo, image, "t", skip=absent)
    async with client_for() as client:
        result = await copy_image(client, client, ref(source, unique_repo, "t"), ref(target, unique_repo, "t"))
        # by digest: the address the manifest is known by (sha512 here) is the one pushed to
        pinned = ref(source, unique_repo).with_digest(image.digest)
        by_digest = await copy_image(client, client, pinned, ref(target, unique_repo + "-pinned"))
    assert by_digest.digest == image.digest
    body, _, _ = await get_manifest_bytes(target, unique_repo + "-pinned", str(image.digest))
    assert body == image.top.data
    body, _, _ = await get_manifest_bytes(target, unique_repo, "t")
    assert body == image.top.data
    # by tag, a registry may name the same bytes by their canonical sha256
    assert result.digest in (image.digest, Digest.of(image.top.data))
    assert sorted(result.sparse) == sorted(str(d) for d in absent)


async def test_platform_subset_rewrites_the_index(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_multiarch(seed="subset", platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    await push_image(plain_registry, unique_repo, image, "v1")
    async with client_for() as client:
        result = await copy_image(
            client, client,
            ref(plain_registry, unique_repo, "v1"),
            ref(plain_registry, unique_repo + "-sub", "v1"),
            options=CopyOptions(platforms=(Platform.parse("linux/arm64"),)),
        )
    assert result.index_rewritten and result.digest != image.digest
    assert result.platforms == ["linux/arm64"]
    got = await fetch_image(plain_registry, unique_repo + "-sub", "v1")
    assert got.top.digest == result.digest
    assert [str(d.platform) for d in got.top.children()] == ["linux/arm64"]


# -- attachments ----------------------------------------------------------------------------------


async def test_signatures_and_referrers_tag_schema_travel(
    plain_registry: RunningRegistry, token_registry: RunningRegistry, unique_repo: str
) -> None:
    """Distribution 2.8 has no referrers API: cosign tags and the sha256-<hex> index are copied."""
    image = make_multiarch(seed="signed")
    sig = make_cosign_signature(image.top, seed="signed")
    sbom = make_referrer(image.top, seed="signed-sbom")
    child_sbom = make_referrer(image.manifests[0], seed="child-sbom")
    await push_image(plain_registry, unique_repo, image, "v1")
    await push_image(plain_registry, unique_repo, sig, cosign_tag(image.digest, "sig"))
    await push_image(plain_registry, unique_repo, sbom)
    await push_image(plain_registry, unique_repo, child_sbom)
    await push_manifest(
        plain_registry, unique_repo, make_referrers_tag_index([sbom]), referrers_tag(image.digest)
    )
    await push_manifest(
        plain_registry,
        unique_repo,
        make_referrers_tag_index([child_sbom]),
        referrers_tag(image.manifests[0].digest),
    )
    async with client_for(token_registry) as client:
        result = await copy_image(
            client, client, ref(plain_registry, unique_repo, "v1"), ref(token_registry, unique_repo, "v1")
        )
        referrers = await client.referrers(ref(token_registry, unique_repo), image.digest)
        child_referrers = await client.referrers(
            ref(token_registry, unique_repo), image.manifests[0].digest
        )
    assert [d.digest for d in referrers] == [sbom.digest]
    assert [d.digest for d in child_referrers] == [child_sbom.digest]
    tags = await list_tags(token_registry, unique_repo, **auth(token_registry))
    assert cosign_tag(image.digest, "sig") in tags
    for tag in (cosign_tag(image.digest, "sig"), referrers_tag(image.digest), "v1"):
        src = await get_manifest_bytes(plain_registry, unique_repo, tag)
        dst = await get_manifest_bytes(token_registry, unique_repo, tag, **auth(token_registry))
        assert dst[0] == src[0], tag
    assert cosign_tag(image.digest, "sig") in result.attachments


async def test_native_referrers_reach_a_registry_without_the_api(
    fake_registry: Any, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """Source answers the OCI 1.1 referrers API; the 2.8 target gets the fallback tag index."""
    image = make_multiarch(seed="native")
    sbom = make_referrer(image.top, seed="native-sbom")
    attestation = make_referrer(
        image.top, seed="native-att", artifact_type="application/vnd.in-toto+json"
    )
    await push_image(fake_registry, unique_repo, image, "v1")
    await push_image(fake_registry, unique_repo, sbom)
    await push_image(fake_registry, unique_repo, attestation)
    async with client_for() as client:
        result = await copy_image(
            client, client, ref(fake_registry, unique_repo, "v1"), ref(plain_registry, unique_repo, "v1")
        )
        got = await client.referrers(ref(plain_registry, unique_repo), image.digest)
    assert {d.digest for d in got} == {sbom.digest, attestation.digest}
    assert {d.artifact_type for d in got} == {
        "application/vnd.example.sbom.v1+json",
        "application/vnd.in-toto+json",
    }
    assert set(result.attachments) >= {str(sbom.digest), str(attestation.digest)}
    for m in (sbom, attestation):
        body, _, _ = await get_manifest_bytes(plain_registry, unique_repo, str(m.digest))
        assert body == m.top.data


async def test_a_signature_attached_upstream_later_reaches_the_mirror(
    fake_registry: Any, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """The image is already mirrored (a no-op); a referrer added upstream afterwards still comes."""
    image = make_multiarch(seed="late-sig")
    await push_image(fake_registry, unique_repo, image, "v1")
    async with client_for() as client:
        first = await copy_image(client, client, ref(fake_registry, unique_repo, "v1"), ref(plain_registry, unique_repo, "v1"))
        assert first.attachments == []
        late = make_referrer(image.top, seed="late-sig-sbom")
        await push_image(fake_registry, unique_repo, late)
        fake_registry.requests.clear()
        second = await copy_image(client, client, ref(fake_registry, unique_repo, "v1"), ref(plain_registry, unique_repo, "v1"))
        got = await client.referrers(ref(plain_registry, unique_repo), image.digest)
    assert second.noop and second.attachments == [str(late.digest)]
    assert [d.digest for d in got] == [late.digest]
    # the top manifest was not fetched again: only the new referrer's own manifest was
    gets = [r.path for r in fake_registry.requests if r.method == "GET" and "/manifests/" in r.path]
    assert gets == [f"/v2/{unique_repo}/manifests/{late.digest}"]


async def test_referrers_can_be_left_out(plain_registry: RunningRegistry, unique_repo: str) -> None:
    image = make_image(seed="nosig")
    sig = make_cosign_signature(image.top, seed="nosig")
    await push_image(plain_registry, unique_repo, image, "v1")
    await push_image(plain_registry, unique_repo, sig, cosign_tag(image.digest, "sig"))
    async with client_for() as client:
        await copy_image(
            client, client,
            ref(plain_registry, unique_repo, "v1"),
            ref(plain_registry, unique_repo + "-x", "v1"),
            options=CopyOptions(referrers=False),
        )
    assert await list_tags(plain_registry, unique_repo + "-x") == ["v1"]


# -- faults ---------------------------------------------------------------------------------------


async def test_corrupted_byte_in_transit_is_refused(
    plain_registry: RunningRegistry,
    basic_registry: RunningRegistry,
    unique_repo: str,
    fault_proxy: Any,
) -> None:
    image = make_image(seed="corrupt", layer_sizes=(300_000,))
    layer = next(d for d in image.top.blobs() if d.size == 300_000)
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    proxy.corrupt(path_contains=f"/blobs/{layer.digest}", offset=150_000)
    async with client_for(basic_registry) as client:
        with pytest.raises(CopyError) as info:
            await copy_image(
                client, client, ref(proxy, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
            )
    assert isinstance(info.value.__cause__, DigestMismatchError)
    assert "digest mismatch" in str(info.value)
    assert "v1" not in await list_tags(basic_registry, unique_repo, **auth(basic_registry))
    assert not await blob_exists(basic_registry, unique_repo, layer.digest, **auth(basic_registry))


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, "0")])
async def test_error_bursts_are_retried(
    plain_registry: RunningRegistry,
    unique_repo: str,
    fault_proxy: Any,
    status: int,
    retry_after: str | None,
) -> None:
    image = make_multiarch(seed=f"burst-{status}")
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    proxy.fail(times=3, status=status, retry_after=retry_after)
    async with client_for() as client:
        result = await copy_image(
            client, client, ref(proxy, unique_repo, "v1"), ref(plain_registry, unique_repo + "-b", "v1")
        )
    assert result.digest == image.digest
    assert proxy.count() > 3
    await assert_same_image(plain_registry, unique_repo, plain_registry, unique_repo + "-b", "v1")


async def test_connection_cut_mid_blob_leaves_no_tag_and_a_rerun_completes(
    plain_registry: RunningRegistry,
    basic_registry: RunningRegistry,
    unique_repo: str,
    fault_proxy: Any,
) -> None:
    image = make_multiarch(seed="cut", layer_sizes=(200_000, 1000))
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(plain_registry)
    proxy.cut(path_contains="/blobs/", after_bytes=50_000, times=None)
    async with client_for(basic_registry) as client:
        with pytest.raises(CopyError):
            await copy_image(
                client, client, ref(proxy, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
            )
        assert "v1" not in await list_tags(basic_registry, unique_repo, **auth(basic_registry))
        proxy.clear()
        result = await copy_image(
            client, client, ref(proxy, unique_repo, "v1"), ref(basic_registry, unique_repo, "v1")
        )
    assert result.digest == image.digest
    await assert_same_image(plain_registry, unique_repo, basic_registry, unique_repo, "v1")


async def test_target_killed_mid_copy_leaves_no_partial_tag(
    plain_registry: RunningRegistry,
    registry_factory: Callable[..., RunningRegistry],
    unique_repo: str,
    fault_proxy: Any,
) -> None:
    """The target registry dies while blobs stream; after a restart a second run completes."""
    image = make_multiarch(seed="kill", layer_sizes=(4_000_000, 3_000_000, 1000))
    await push_image(plain_registry, unique_repo, image, "v1")
    slow = fault_proxy(plain_registry)
    slow.delay(0.5, method="GET", path_contains="/blobs/")
    target = registry_factory(auth="none")
    async with client_for(retry=RetryPolicy.no_wait(1)) as client:
        task = asyncio.ensure_future(
            copy_image(client, client, ref(slow, unique_repo, "v1"), ref(target, unique_repo, "v1"))
        )
        for _ in range(200):  # wait until the target has started receiving blobs
            if any((target.storage).rglob("data")) or task.done():
                break
            await asyncio.sleep(0.02)
        target.kill()
        with pytest.raises(CopyError):
            await task
    target.start()
    assert "v1" not in await list_tags(target, unique_repo)
    slow.clear()
    async with client_for() as client:
        result = await copy_image(
            client, client, ref(slow, unique_repo, "v1"), ref(target, unique_repo, "v1")
        )
    assert result.digest == image.digest
    await assert_same_image(plain_registry, unique_repo, target, unique_repo, "v1")


async def test_pull_only_user_cannot_push(
    plain_registry: RunningRegistry, token_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_image(seed="reader")
    await push_image(plain_registry, unique_repo, image, "v1")
    creds = StaticCredentials({token_registry.host: Credential("reader", "reader-pw")})
    async with RegistryClient(credentials=creds, retry=FAST_RETRY) as client:
        with pytest.raises(CopyError) as info:
            await copy_image(
                client, client,
                ref(plain_registry, unique_repo, "v1"),
                ref(token_registry, unique_repo, "v1"),
            )
    assert isinstance(info.value.__cause__, UnauthorizedError)


async def test_no_secret_in_logs_errors_or_results(
    plain_registry: RunningRegistry,
    basic_registry: RunningRegistry,
    token_registry: RunningRegistry,
    unique_repo: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="imagevet")
    image = make_image(seed="secrets")
    await push_image(plain_registry, unique_repo, image, "v1")
    texts: list[str] = []
    async with client_for(basic_registry, token_registry) as client:
        for dst in (basic_registry, token_registry):
            r = await copy_image(
                client, client, ref(plain_registry, unique_repo, "v1"), ref(dst, unique_repo, "v1")
            )
            texts.append(repr(r.to_json()))
    bad = StaticCredentials({basic_registry.host: Credential("alice", "wrong-pw-XYZZY")})
    async with RegistryClient(credentials=bad, retry=FAST_RETRY) as client:
        with pytest.raises(CopyError) as info:
            await copy_image(
                client, client,
                ref(plain_registry, unique_repo, "v1"),
                ref(basic_registry, unique_repo, "v2"),
            )
        texts.append(str(info.value) + repr(info.value))
    texts.append(caplog.text)
    blob = "\n".join(texts)
    for secret in ("alice-pw-s3cret", "wrong-pw-XYZZY", "YWxpY2U6"):  # YWxpY2U6 = base64("alice:")
        assert secret not in blob
    assert "Bearer ey" not in blob


# -- bounded work whatever the source sends (issue 8, item 6) ------------------------------------


def _wide_index(children: int, seed: str) -> RawManifest:
    """An OCI index listing ``children`` distinct image manifests (none of which exists)."""
    entries = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(Digest.of(f"{seed}-{i}".encode())),
            "size": 500,
        }
        for i in range(children)
    ]
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    return RawManifest.from_bytes(json.dumps(body).encode())


def _measure(client: RegistryClient) -> dict[str, int]:
    """Wrap the client's manifest requests: requests and tasks alive at once, at the peak."""
    seen = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "max_tasks": 0}
    for name in ("head_manifest", "get_manifest", "put_manifest"):
        original = getattr(client, name)

        async def wrapped(*args: Any, _original: Any = original, **kw: Any) -> Any:
            seen["requests"] += 1
            seen["in_flight"] += 1
            seen["max_in_flight"] = max(seen["max_in_flight"], seen["in_flight"])
            seen["max_tasks"] = max(seen["max_tasks"], len(asyncio.all_tasks()))
            try:
                return await _original(*args, **kw)
            finally:
                seen["in_flight"] -= 1

        setattr(client, name, wrapped)
    return seen


async def test_a_wide_index_is_walked_with_bounded_requests_and_tasks(
    fake_registry_factory: Any, unique_repo: str
) -> None:
    """3,000 children: every one is visited, yet never more than ``jobs`` manifest requests (and
    a few dozen tasks) at once; before, one task and two requests per child started at once."""
    source = fake_registry_factory(check_children=False)
    target = fake_registry_factory(check_children=False)
    index = _wide_index(3000, "wide")
    source.put_manifest(unique_repo, index, "wide")
    async with client_for(source, target) as client:
        seen = _measure(client)
        result = await CopySession(client, client, CopyOptions(jobs=4, referrers=False)).copy(
            ref(source, unique_repo, "wide"), ref(target, unique_repo, "wide")
        )
    assert result.digest == index.digest
    assert len(result.sparse) == 3000  # every child visited (absent at the source: sparse)
    assert target.manifest(unique_repo, "wide").data == index.data
    assert seen["max_in_flight"] <= 4, seen
    assert seen["max_tasks"] <= 64, seen


async def test_too_many_children_fail_the_image_before_any_fan_out(
    fake_registry_factory: Any, unique_repo: str
) -> None:
    """20,000 children is more than an image may list (10,000 by default): a clear error, and the
    requests made are the handful before the index was read, not 40,000."""
    source = fake_registry_factory(check_children=False)
    target = fake_registry_factory(check_children=False)
    source.put_manifest(unique_repo, _wide_index(20_000, "huge"), "huge")
    async with client_for(source, target) as client:
        seen = _measure(client)
        with pytest.raises(CopyError) as err:
            await copy_image(client, client, ref(source, unique_repo, "huge"), ref(target, unique_repo, "huge"))
    assert "lists 20000 manifests" in str(err.value) and "limit of 10000" in str(err.value)
    assert seen["requests"] <= 4, seen
    assert target.tags.get(unique_repo) is None


async def test_indexes_nested_too_deep_fail_with_a_clear_error(
    fake_registry_factory: Any, unique_repo: str
) -> None:
    source = fake_registry_factory(check_children=False)
    target = fake_registry_factory(check_children=False)
    image = make_image(seed="deep")
    source.seed(unique_repo, image)
    current: Image = image
    for _ in range(MAX_INDEX_DEPTH + 1):
        current = make_index([current])
        source.put_manifest(unique_repo, current.top)
    source.put_manifest(unique_repo, current.top, "deep")
    async with client_for(source, target) as client:
        with pytest.raises(CopyError) as err:
            await copy_image(client, client, ref(source, unique_repo, "deep"), ref(target, unique_repo, "deep"))
    assert f"nested more than {MAX_INDEX_DEPTH} deep" in str(err.value)
    assert target.tags.get(unique_repo) is None
    # one level less is fine
    async with client_for(source, target) as client:
        below = current.top.children()[0].digest
        ok = await copy_image(
            client, client, Reference.parse(f"{source.host}/{unique_repo}@{below}"), ref(target, unique_repo, "ok")
        )
    assert ok.digest == below


# -- a refused manifest PUT keeps the registry's own words (issue 8, item 2) ----------------------


async def test_a_refused_index_put_names_the_registry_code_and_detail(
    fake_registry_factory: Any, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """distribution refuses an index whose child it does not hold: the error says
    ``MANIFEST_BLOB_UNKNOWN`` and which child (the envelope's detail), not a digest mismatch."""
    source = fake_registry_factory(check_children=False)
    sparse = make_sparse_index(seed="refused", present=1, total=2)
    source.seed(unique_repo, sparse.image, "s")
    async with client_for(source, plain_registry) as client:
        with pytest.raises(CopyError) as err:
            await copy_image(client, client, ref(source, unique_repo, "s"), ref(plain_registry, unique_repo, "s"))
    text = str(err.value)
    assert "HTTP 400" in text and "MANIFEST_BLOB_UNKNOWN" in text, text
    assert str(next(iter(sparse.absent))) in text, text
    assert "digest mismatch" not in text


async def test_a_digest_invalid_answer_to_a_manifest_put_is_not_called_a_mismatch(
    plain_registry: RunningRegistry, basic_registry: RunningRegistry, unique_repo: str, fault_proxy: Any
) -> None:
    image = make_image(seed="digest-invalid")
    await push_image(plain_registry, unique_repo, image, "v1")
    proxy = fault_proxy(basic_registry)
    proxy.fail(times=None, status=400, method="PUT", path_contains="/manifests/",
               code="DIGEST_INVALID", message="provided digest did not match uploaded content")
    async with client_for(proxy) as client:
        with pytest.raises(CopyError) as err:
            await copy_image(client, client, ref(plain_registry, unique_repo, "v1"), ref(proxy, unique_repo, "v1"))
    text = str(err.value)
    assert "HTTP 400: DIGEST_INVALID: provided digest did not match uploaded content" in text, text
    assert "digest mismatch" not in text


# -- session-wide shared work: no cycle, no order, no stray warning (review of the copy engine) ---


@pytest.mark.parametrize("shape", ["self", "pair"])
async def test_an_attachment_tag_cycle_ends_and_copies_what_it_names(
    fake_registry_factory: Any, unique_repo: str, shape: str
) -> None:
    """``sha256-<A>.sig`` naming A itself, or ``sha256-<A>.sig`` -> B and ``sha256-<B>.sig`` -> A:
    the digest tags used to wait on themselves forever (a shared task awaiting itself through a
    shield); each image now walks its attachments itself, each subject once."""
    source = fake_registry_factory()
    target = fake_registry_factory()
    a, b = make_image(seed=f"cycle-{shape}-a"), make_image(seed=f"cycle-{shape}-b")
    source.seed(unique_repo, a, "v1")
    source.seed(unique_repo, b, "v2")
    a_sig, b_sig = cosign_tag(a.digest, "sig"), cosign_tag(b.digest, "sig")
    if shape == "self":
        source.put_manifest(unique_repo, a.top, a_sig)
        expected = {"v1": a.digest, a_sig: a.digest}
    else:
        source.put_manifest(unique_repo, b.top, a_sig)
        source.put_manifest(unique_repo, a.top, b_sig)
        expected = {"v1": a.digest, a_sig: b.digest, b_sig: a.digest}
    async with client_for(source, target) as client:
        result = await asyncio.wait_for(
            CopySession(client, client).copy(ref(source, unique_repo, "v1"), ref(target, unique_repo, "v1")),
            timeout=10,
        )
    assert result.digest == a.digest
    assert set(result.digest_tags) == set(expected) - {"v1"}
    for tag, digest in expected.items():
        assert target.manifest(unique_repo, tag).digest == digest, tag
    if shape == "pair":  # B travelled as the signature of A, blobs and all
        assert all(target.has_blob(unique_repo, d.digest) for d in b.top.blobs())
    # both images at once in one session (each reaches the other's tag): no wait on itself either
    target2 = fake_registry_factory()
    async with client_for(source, target2) as client:
        session = CopySession(client, client)
        both = await asyncio.wait_for(
            asyncio.gather(*(
                session.copy(ref(source, unique_repo, t), ref(target2, unique_repo, t))
                for t in ("v1", "v2")
            )),
            timeout=10,
        )
    assert [r.digest for r in both] == [a.digest, b.digest]
    for tag, digest in expected.items():
        assert target2.manifest(unique_repo, tag).digest == digest, tag


def _oci_index(*children: dict[str, Any]) -> RawManifest:
    body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list(children)}
    return RawManifest.from_bytes(json.dumps(body, separators=(",", ":")).encode())


@pytest.mark.parametrize("held", [False, True], ids=["fresh-target", "target-holds-I1"])
async def test_each_image_outcome_is_its_own_whatever_the_order(
    fake_registry_factory: Any, unique_repo: str, held: bool
) -> None:
    """I1 lists C1 and C2 (C2 not in the source), tag ``a`` -> I1; tag ``b`` -> I2, an index listing
    I1.  Alone, ``a`` is copied as sparse as the source (C2 is its own child) and ``b`` fails (C2
    is a grandchild).  The shared work on I1 used to take the first image's view: ``a,b`` made
    both succeed and ``b,a`` made both fail.  Now every order gives the same outcome per image.
    A target holding I1 by digest already (a run that stopped before its tag) has all below
    it: neither image walks it again, whichever comes first."""
    source = fake_registry_factory()
    c1, c2 = make_image(seed="order-c1"), make_image(seed="order-c2", platform="linux/arm64")
    source.seed(unique_repo, c1)
    i1 = _oci_index(c1.descriptor(), c2.descriptor())
    source.put_manifest(unique_repo, i1, "a")
    i2 = _oci_index({"mediaType": i1.media_type, "digest": str(i1.digest), "size": i1.size})
    source.put_manifest(unique_repo, i2, "b")

    async def run(order: tuple[str, ...]) -> dict[str, str]:
        target = fake_registry_factory(check_children=False)
        if held:
            target.seed(unique_repo, c1)
            target.put_manifest(unique_repo, i1)
        async with client_for(source, target) as client:
            session = CopySession(client, client)
            got = await asyncio.wait_for(
                asyncio.gather(
                    *(session.copy(ref(source, unique_repo, t), ref(target, unique_repo, t)) for t in order),
                    return_exceptions=True,
                ),
                timeout=20,
            )
        out: dict[str, str] = {}
        for tag, r in zip(order, got, strict=True):
            if isinstance(r, CopyError):
                out[tag] = "failed: " + ("C2 named" if str(c2.digest) in str(r) else str(r))
                assert target.tags.get(unique_repo, {}).get(tag) is None  # no tag for a failed image
            else:
                assert not isinstance(r, BaseException), r
                out[tag] = f"ok sparse={r.sparse}"
                assert target.manifest(unique_repo, tag).digest == r.digest
        return out

    alone = {"a": f"ok sparse={[str(c2.digest)]}", "b": "failed: C2 named"}
    if held:
        alone = {"a": "ok sparse=[]", "b": "ok sparse=[]"}
    assert await run(("a",)) == {"a": alone["a"]}
    assert await run(("b",)) == {"b": alone["b"]}
    for _ in range(3):
        for order in (("a", "b"), ("b", "a")):
            assert await run(order) == alone, order


async def test_shared_work_failing_after_its_only_caller_left_prints_no_stray_warning(
    plain_registry: RunningRegistry, unique_repo: str, fault_proxy: Any, fake_registry: Any
) -> None:
    """An image fails on one layer while another layer's shared transfer is still in flight; that
    transfer fails later with nobody waiting on it.  Its error is the session's (a later caller
    gets it), not an asyncio "Task exception was never retrieved" printed at exit."""
    import gc

    image = make_image(seed="orphan", layer_sizes=(1000, 2000))
    await push_image(plain_registry, unique_repo, image, "v1")
    first, second = (d.digest for d in image.top.blobs() if d.size in (1000, 2000))
    proxy = fault_proxy(plain_registry)
    proxy.fail(times=None, status=403, path_contains=f"/blobs/{first}")
    proxy.delay(0.3, path_contains=f"/blobs/{second}")
    proxy.fail(times=None, status=403, path_contains=f"/blobs/{second}")
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with client_for() as client:
            session = CopySession(client, client, CopyOptions(jobs=4))
            with pytest.raises(CopyError, match="403"):
                await session.copy(ref(proxy, unique_repo, "v1"), ref(fake_registry, unique_repo, "v1"))
            for _ in range(100):  # the orphaned transfer ends on its own
                if proxy.count("GET", f"/blobs/{second}") and not any(
                    not t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task()
                ):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)
        del session
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert proxy.count("GET", f"/blobs/{second}") >= 1
    assert [c.get("message") for c in reported] == []


async def test_an_index_reached_at_two_depths_fails_only_the_image_it_is_too_deep_for(
    fake_registry_factory: Any, unique_repo: str
) -> None:
    """``ok`` is indexes nested exactly MAX_INDEX_DEPTH deep; ``deep`` is one more index over it.
    Shared work on ``ok``'s index used to take the depth of whichever image came first: with
    ``deep`` first, ``ok`` failed too.  Now ``deep`` fails and ``ok`` is copied, in every order."""
    source = fake_registry_factory(check_children=False)
    image = make_image(seed="two-depths")
    source.seed(unique_repo, image)
    current: Image = image
    for _ in range(MAX_INDEX_DEPTH):
        current = make_index([current])
        source.put_manifest(unique_repo, current.top)
    source.put_manifest(unique_repo, current.top, "ok")
    deeper = make_index([current])
    source.put_manifest(unique_repo, deeper.top, "deep")
    for order in (("ok", "deep"), ("deep", "ok"), ("deep", "ok")):
        target = fake_registry_factory(check_children=False)
        async with client_for(source, target) as client:
            session = CopySession(client, client)
            got = dict(zip(order, await asyncio.wait_for(asyncio.gather(
                *(session.copy(ref(source, unique_repo, t), ref(target, unique_repo, t)) for t in order),
                return_exceptions=True,
            ), timeout=20), strict=True))
        assert isinstance(got["deep"], CopyError), (order, got["deep"])
        assert f"nested more than {MAX_INDEX_DEPTH} deep" in str(got["deep"])
        assert not isinstance(got["ok"], BaseException), (order, got["ok"])
        assert target.manifest(unique_repo, "ok").digest == current.digest
        assert "deep" not in target.tags.get(unique_repo, {})
