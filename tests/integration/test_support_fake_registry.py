"""The fake registry round-trips bytes exactly, serves referrers and behaves like a registry to skopeo."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from yarl import URL

from imagevet import mediatype
from imagevet.digest import Digest
from tests.support.fake_registry import FakeRegistry
from tests.support.images import (
    cosign_tag,
    make_cosign_signature,
    make_image,
    make_multiarch,
    make_referrer,
    random_blob,
)
from tests.support.pusher import PushError, TestClient, fetch_image, list_tags, push_image
from tests.support.registry_process import READER, READER_PASSWORD, RunningRegistry
from tests.support.token_server import TokenServer
from tests.support.traps import TRAPS, make_sparse_index

FakeFactory = Callable[..., FakeRegistry]
REPO = "org/app"


@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_round_trip_exact_bytes(fake_registry: FakeRegistry, media_types: Any) -> None:
    image = make_multiarch(seed="fake", media_types=media_types)
    await push_image(fake_registry, REPO, image, "v1")
    got = await fetch_image(fake_registry, REPO, "v1")
    assert [m.data for m in got.manifests] == [m.data for m in image.manifests]
    assert [m.media_type for m in got.manifests] == [m.media_type for m in image.manifests]
    assert got.blobs == image.blobs
    assert fake_registry.manifest(REPO, "v1").data == image.top.data
    assert fake_registry.tags[REPO] == {"v1": image.digest}


@pytest.mark.parametrize("name", sorted(TRAPS))
async def test_traps_round_trip(name: str, fake_registry_factory: FakeFactory) -> None:
    fake = fake_registry_factory(check_children=name != "sparse-index")
    image = TRAPS[name](seed=name)
    async with TestClient(fake) as c:
        await c.push_image(REPO, image)  # every manifest by its own digest (sha512 included)
        for m in image.manifests:
            assert await c.get_manifest(REPO, str(m.digest)) == (
                m.data,
                m.media_type,
                str(m.digest),
            )
        for digest, data in image.blobs.items():
            assert await c.get_blob(REPO, digest) == data


async def test_sparse_index_refused_unless_allowed(fake_registry: FakeRegistry) -> None:
    sparse = make_sparse_index(seed=2)
    with pytest.raises(PushError, match="MANIFEST_BLOB_UNKNOWN") as e:
        await push_image(fake_registry, REPO, sparse.image, "v1")
    assert all(str(d) in e.value.body.decode() for d in sparse.absent)


async def test_referrers_api(fake_registry: FakeRegistry) -> None:
    image = make_image(seed="subject")
    sbom = make_referrer(image.top, seed=1, annotations={"org.example.kind": "sbom"})
    sig = make_referrer(image.top, seed=2, artifact_type="application/vnd.example.sig.v1")
    await push_image(fake_registry, REPO, image, "v1")
    await push_image(fake_registry, REPO, sbom)
    await push_image(fake_registry, REPO, sig)
    put = fake_registry.find("PUT", f"/manifests/{sbom.digest}")[0]
    assert put.response_headers["OCI-Subject"] == str(image.digest)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{fake_registry.url}/v2/{REPO}/referrers/{image.digest}") as r:
            assert r.status == 200 and r.headers["Content-Type"] == mediatype.OCI_INDEX
            index = await r.json(content_type=None)
        by_digest = {d["digest"]: d for d in index["manifests"]}
        assert set(by_digest) == {str(sbom.digest), str(sig.digest)}
        assert by_digest[str(sbom.digest)]["artifactType"] == "application/vnd.example.sbom.v1+json"
        assert by_digest[str(sbom.digest)]["annotations"]["org.example.kind"] == "sbom"
        assert by_digest[str(sig.digest)]["size"] == sig.top.size
        url = f"{fake_registry.url}/v2/{REPO}/referrers/{image.digest}?artifactType=application/vnd.example.sig.v1"
        async with s.get(url) as r:
            assert r.headers["OCI-Filters-Applied"] == "artifactType"
            assert [d["digest"] for d in (await r.json(content_type=None))["manifests"]] == [
                str(sig.digest)
            ]
        async with s.get(f"{fake_registry.url}/v2/{REPO}/referrers/{sbom.digest}") as r:
            assert (await r.json(content_type=None))["manifests"] == []


async def test_no_referrers_api_answers_404(fake_registry_factory: FakeFactory) -> None:
    fake = fake_registry_factory(referrers_api=False)
    image = make_image(seed="noref")
    sig = make_cosign_signature(image.top, seed=1)
    await push_image(fake, REPO, image, "v1")
    await push_image(fake, REPO, sig, cosign_tag(image.digest))
    assert cosign_tag(image.digest) in await list_tags(fake, REPO)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{fake.url}/v2/{REPO}/referrers/{image.digest}") as r,
    ):
        assert r.status == 404


async def test_digest_checks(fake_registry: FakeRegistry) -> None:
    image = make_image(seed="digests")
    async with TestClient(fake_registry) as c:
        wrong = Digest.of(b"other")
        with pytest.raises(PushError, match="DIGEST_INVALID"):
            await c.push_blob(REPO, b"payload", wrong)
        with pytest.raises(PushError, match="DIGEST_INVALID"):
            await c.request(
                "PUT",
                f"/v2/{REPO}/manifests/{wrong}",
                repo=REPO,
                data=image.top.data,
                headers={"Content-Type": image.top.media_type},
                expect=(201,),
            )
        with pytest.raises(PushError, match="MANIFEST_BLOB_UNKNOWN"):
            await c.push_manifest(REPO, image.top, "v1")
        with pytest.raises(PushError, match="MANIFEST_INVALID"):
            await c.request(
                "PUT",
                f"/v2/{REPO}/manifests/v1",
                repo=REPO,
                data=image.top.data,
                headers={"Content-Type": mediatype.DOCKER_MANIFEST},
                expect=(201,),
            )


async def test_mount_single_post_and_chunked(fake_registry: FakeRegistry) -> None:
    blob = random_blob(3000, "chunks")
    digest = Digest.of(blob)
    async with TestClient(fake_registry) as c:
        r = await c.request(
            "POST", f"/v2/a/blobs/uploads/?digest={digest}", repo="a", data=blob, expect=(201,)
        )
        assert r.headers["Docker-Content-Digest"] == str(digest)
        r = await c.request(
            "POST", f"/v2/b/blobs/uploads/?mount={digest}&from=a", repo="b", data=b"", expect=(201,)
        )
        assert fake_registry.has_blob("b", digest)
        r = await c.request(
            "POST",
            f"/v2/c/blobs/uploads/?mount={digest}&from=nowhere",
            repo="c",
            data=b"",
            expect=(202,),
        )
        location = r.headers["Location"]
        r = await c.request(
            "PATCH",
            location,
            repo="c",
            data=blob[:1000],
            headers={"Content-Range": "0-999"},
            expect=(202,),
        )
        assert r.headers["Range"] == "0-999"
        with pytest.raises(PushError) as e:
            await c.request(
                "PATCH",
                r.headers["Location"],
                repo="c",
                data=blob[:10],
                headers={"Content-Range": "5-14"},
                expect=(202,),
            )
        assert e.value.status == 416
        with pytest.raises(PushError, match="BLOB_UPLOAD_INVALID"):
            await c.request(
                "PATCH", location.split("?")[0], repo="c", data=blob[1000:], expect=(202,)
            )
        r = await c.request(
            "PATCH", r.headers["Location"], repo="c", data=blob[1000:2000], expect=(202,)
        )
        await c.request(
            "PUT",
            r.headers["Location"] + f"&digest={digest}",
            repo="c",
            data=blob[2000:],
            expect=(201,),
        )
    assert fake_registry.blobs["c"][digest] == blob


async def test_tag_pagination(fake_registry_factory: FakeFactory) -> None:
    fake = fake_registry_factory(tags_page_size=2)
    image = make_image(seed="tags", layer_sizes=(10,))
    fake.seed(REPO, image)
    for tag in ["e", "a", "d", "c", "b"]:
        fake.put_manifest(REPO, image.top, tag)
    assert await list_tags(fake, REPO) == ["a", "b", "c", "d", "e"]
    assert fake.count("GET", "/tags/list") == 3
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{fake.url}/v2/{REPO}/tags/list?n=2&last=b") as r,
    ):
        assert (await r.json())["tags"] == ["c", "d"]
        assert r.headers["Link"] == f'</v2/{REPO}/tags/list?n=2&last=d>; rel="next"'


async def test_redirect_drops_authorization_and_keeps_query(
    fake_registry_factory: FakeFactory,
) -> None:
    fake = fake_registry_factory(require_auth=("bob", "bob-pw"), redirect_blobs=True)
    image = make_image(seed="redirect")
    await push_image(fake, REPO, image, "v1")
    assert (await fetch_image(fake, REPO, "v1")).blobs == image.blobs  # aiohttp follows the 307
    assert len(fake.storage_requests) == len(image.blobs)
    assert all(r.status == 200 and "Authorization" not in r.headers for r in fake.storage_requests)
    with pytest.raises(PushError) as e:
        await push_image(fake, REPO, image, "v2", password="wrong", username="bob")
    assert e.value.status == 401


async def test_redirect_requoting_is_detected(fake_registry_factory: FakeFactory) -> None:
    fake = fake_registry_factory(redirect_blobs=True)
    fake.put_blob(REPO, b"blob")
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"{fake.url}/v2/{REPO}/blobs/{Digest.of(b'blob')}", allow_redirects=False
        ) as r:
            location = r.headers["Location"]
        async with s.get(location.replace("%27", "'")) as r:
            assert r.status == 403
        async with s.get(URL(location, encoded=True)) as r:
            assert r.status == 200 and await r.read() == b"blob"


async def test_token_auth(
    tmp_path_factory: pytest.TempPathFactory,
    token_server: TokenServer,
    fake_registry_factory: FakeFactory,
) -> None:
    fake = fake_registry_factory(token_server=token_server)
    image = make_image(seed="fake-token")
    await push_image(fake, REPO, image, "v1")  # as alice (first user of the token server)
    body = (await fetch_image(fake, REPO, "v1", username=READER, password=READER_PASSWORD)).top.data
    assert body == image.top.data
    with pytest.raises(PushError) as e:
        await push_image(fake, "org/other", image, "v1", username=READER, password=READER_PASSWORD)
    assert e.value.status == 401 and b"insufficient" not in e.value.body
    challenge = fake.find(status=401)[-1].response_headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and token_server.realm in challenge


def _skopeo(*args: str) -> None:
    import subprocess

    tool = shutil.which("skopeo")
    assert tool, "skopeo is required for the interop test (apt-get install skopeo)"
    out = subprocess.run(
        [
            tool,
            "--insecure-policy",
            "copy",
            "--all",
            "--preserve-digests",
            "--retry-times",
            "0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


async def test_skopeo_interop(
    plain_registry: RunningRegistry, fake_registry_factory: FakeFactory, unique_repo: str
) -> None:
    """A real client (skopeo) copies fake -> distribution -> fake with identical digests."""
    fake = fake_registry_factory(require_auth=("bob", "bob-pw"), redirect_blobs=True)
    image = make_multiarch(seed="skopeo", layer_sizes=(50_000,))
    fake.seed(REPO, image, "v1")
    await asyncio.to_thread(
        _skopeo,
        "--src-creds",
        "bob:bob-pw",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{fake.host}/{REPO}:v1",
        f"docker://{plain_registry.host}/{unique_repo}:v1",
    )
    got = await fetch_image(plain_registry, unique_repo, "v1")
    assert got.top.data == image.top.data and got.blobs == image.blobs
    await asyncio.to_thread(
        _skopeo,
        "--dest-creds",
        "bob:bob-pw",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{plain_registry.host}/{unique_repo}:v1",
        f"docker://{fake.host}/copy:v1",
    )
    assert fake.manifest("copy", "v1").data == image.top.data
    assert fake.blobs["copy"] == image.blobs
    assert fake.count("PATCH", "/blobs/uploads/") >= 2  # skopeo streams layers with PATCH
    assert fake.storage_requests and all(
        "Authorization" not in r.headers for r in fake.storage_requests
    )
    assert json.loads(fake.manifest("copy", "v1").data)["mediaType"] == mediatype.OCI_INDEX
