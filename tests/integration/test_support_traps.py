"""The conformance-trap images are deterministic and distribution 2.8 stores them byte for byte."""

from __future__ import annotations

import pytest

from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from tests.support.images import (
    cosign_tag,
    make_cosign_signature,
    make_image,
    make_multiarch,
    make_referrer,
    make_referrers_tag_index,
    random_blob,
)
from tests.support.pusher import PushError, TestClient
from tests.support.registry_process import RunningRegistry
from tests.support.traps import (
    DISTRIBUTION_28_REJECTS,
    TRAPS,
    make_nondistributable_image,
    make_sparse_index,
)


def test_builders_are_deterministic() -> None:
    assert make_multiarch(seed=3).top.data == make_multiarch(seed=3).top.data
    assert make_multiarch(seed=3).digest != make_multiarch(seed=4).digest
    assert random_blob(100, 1) == random_blob(100, 1) != random_blob(100, 2)
    for build in TRAPS.values():
        assert build(seed=9).top.data == build(seed=9).top.data


def test_docker_images_use_docker_types_throughout() -> None:
    image = make_multiarch(seed="dk", media_types="docker")
    types = {image.top.media_type}
    for m in image.manifests:
        types.add(m.media_type)
        types.update(d.media_type for d in m.blobs())
    assert all("docker" in t for t in types), types


def test_sparse_index_lists_absent_children() -> None:
    sparse = make_sparse_index(seed=1, present=1, total=3)
    listed = {d.digest for d in sparse.image.top.children()}
    pushed = {m.digest for m in sparse.image.manifests}
    assert len(sparse.absent) == 2 and sparse.absent == listed - pushed


@pytest.mark.parametrize("name", sorted(TRAPS))
async def test_trap_round_trips_on_distribution(
    name: str, plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = TRAPS[name](seed=name)
    async with TestClient(plain_registry) as c:
        if name in DISTRIBUTION_28_REJECTS:
            with pytest.raises(PushError) as e:
                await c.push_image(unique_repo, image)
            assert e.value.status == 400
            return
        await c.push_image(unique_repo, image)  # every manifest by its own digest
        await c.push_manifest(unique_repo, image.top, "v1")
        for m in image.manifests:
            body, ctype, digest = await c.get_manifest(unique_repo, str(m.digest))
            assert (body, ctype, digest) == (m.data, m.media_type, str(m.digest))
        assert (await c.get_manifest(unique_repo, "v1"))[0] == image.top.data
        for blob_digest, data in image.blobs.items():
            assert await c.get_blob(unique_repo, blob_digest) == data


async def test_nondistributable_layer_need_not_exist(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    nd = make_nondistributable_image(seed=5)
    async with TestClient(plain_registry) as c:
        await c.push_image(unique_repo, nd.image, "v1")
        assert not await c.blob_exists(unique_repo, next(iter(nd.foreign)))


async def test_sha512_blobs_accepted_by_distribution(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = TRAPS["sha512-blobs"](seed=1)
    assert all(d.algorithm == "sha512" for d in image.blobs)
    async with TestClient(plain_registry) as c:
        await c.push_image(unique_repo, image, "v1")
        assert all([await c.blob_exists(unique_repo, d) for d in image.blobs])


def test_shared_layers_are_shared() -> None:
    base = random_blob(64, "base")
    a = make_image(seed="a", shared_layers=[base])
    b = make_image(seed="b", shared_layers=[base])
    assert Digest.of(base) in a.blobs and Digest.of(base) in b.blobs
    assert a.digest != b.digest


async def test_referrers_tag_fallback_index(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    """distribution 2.8 has no referrers API: the tag-schema index is what a copier finds there."""
    subject = make_image(seed="fallback")
    sbom = make_referrer(subject.top, seed=1, annotations={"k": "v"})
    sig = make_cosign_signature(subject.top, seed=1)
    index = make_referrers_tag_index([sbom])
    async with TestClient(plain_registry) as c:
        await c.push_image(unique_repo, subject, "v1")
        await c.push_image(unique_repo, sbom)
        await c.push_image(unique_repo, sig, cosign_tag(subject.digest))
        await c.push_manifest(unique_repo, index, cosign_tag(subject.digest).removesuffix(".sig"))
        r = await c.request(
            "GET", f"/v2/{unique_repo}/referrers/{subject.digest}", repo=unique_repo
        )
        assert r.status == 404
        body, _, _ = await c.get_manifest(unique_repo, f"sha256-{subject.digest.hex}")
        assert sorted(await c.list_tags(unique_repo)) == sorted(
            ["v1", f"sha256-{subject.digest.hex}", f"sha256-{subject.digest.hex}.sig"]
        )
    (entry,) = RawManifest.from_bytes(body).children()
    assert (entry.digest, entry.artifact_type) == (
        sbom.digest,
        "application/vnd.example.sbom.v1+json",
    )
    assert entry.annotations["k"] == "v"
