"""The registry fixtures, token server and pusher work together (tests of the test infrastructure)."""

from __future__ import annotations

import aiohttp
import pytest

from imagevet.digest import Digest
from tests.support.images import Image, make_image, make_multiarch
from tests.support.pusher import (
    PushError,
    blob_exists,
    fetch_image,
    get_manifest_bytes,
    get_manifest_bytes_sync,
    head_manifest,
    list_tags,
    push_image,
    push_image_sync,
)
from tests.support.registry_process import READER, READER_PASSWORD, RunningRegistry
from tests.support.token_server import TokenServer, parse_scope


def _assert_same(got: Image, want: Image) -> None:
    assert got.top.data == want.top.data
    assert {m.digest: m.data for m in got.manifests} == {m.digest: m.data for m in want.manifests}
    assert got.blobs == want.blobs


@pytest.mark.parametrize("which", ["plain_registry", "basic_registry", "token_registry"])
@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_push_pull_multiarch(
    which: str, media_types: str, unique_repo: str, request: pytest.FixtureRequest
) -> None:
    reg: RunningRegistry = request.getfixturevalue(which)
    image = make_multiarch(seed=f"{which}-{media_types}", media_types=media_types)  # type: ignore[arg-type]
    await push_image(reg, unique_repo, image, "v1")
    body, ctype, digest = await get_manifest_bytes(reg, unique_repo, "v1")
    assert (body, ctype, digest) == (image.top.data, image.top.media_type, str(image.digest))
    _assert_same(await fetch_image(reg, unique_repo, "v1"), image)
    assert await list_tags(reg, unique_repo) == ["v1"]
    child = image.top.children()[0]
    head = await head_manifest(reg, unique_repo, str(child.digest))
    assert head.status == 200 and head.headers["Docker-Content-Digest"] == str(child.digest)


def test_sync_wrappers(plain_registry: RunningRegistry, unique_repo: str) -> None:
    image = make_image(seed="sync")
    push_image_sync(plain_registry, unique_repo, image, "latest")
    assert get_manifest_bytes_sync(plain_registry, unique_repo, "latest")[0] == image.top.data


async def test_basic_rejects_wrong_password_and_anonymous(
    basic_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_image(seed="basic-neg")
    with pytest.raises(PushError) as e:
        await push_image(
            basic_registry, unique_repo, image, "x", username="alice", password="wrong"
        )
    assert e.value.status == 401
    with pytest.raises(PushError) as e:
        await push_image(basic_registry, unique_repo, image, "x", anonymous=True)
    assert e.value.status == 401


async def test_token_reader_pulls_but_cannot_push(
    token_registry: RunningRegistry, token_server: TokenServer, unique_repo: str
) -> None:
    image = make_image(seed="reader")
    await push_image(token_registry, unique_repo, image, "v1")
    body, _, _ = await get_manifest_bytes(
        token_registry, unique_repo, "v1", username=READER, password=READER_PASSWORD
    )
    assert body == image.top.data
    before = len(token_server.requests)
    other = make_image(seed="reader-push")
    with pytest.raises(PushError) as e:
        await push_image(
            token_registry, unique_repo, other, "v2", username=READER, password=READER_PASSWORD
        )
    assert e.value.status in (401, 403)
    seen = token_server.requests[before:]
    assert seen and all(r["user"] == READER and r["status"] == 200 for r in seen)
    asked = [parse_scope(s) for r in seen for s in r["scopes"]]
    assert ("repository", unique_repo, {"pull", "push"}) in asked
    assert "password" not in repr(token_server.requests)
    assert not await blob_exists(
        token_registry, unique_repo, Digest.of(other.blobs[next(iter(other.blobs))])
    )


async def test_token_wrong_password_gets_nothing(
    token_registry: RunningRegistry, token_server: TokenServer, unique_repo: str
) -> None:
    image = make_image(seed="wrongpw")
    await push_image(token_registry, unique_repo, image, "v1")
    with pytest.raises(PushError) as e:
        await get_manifest_bytes(
            token_registry, unique_repo, "v1", username="alice", password="nope"
        )
    assert e.value.status == 401 and e.value.url.startswith(token_server.url)
    assert token_server.requests[-1]["status"] == 401


async def test_token_grant_is_intersection(token_server: TokenServer) -> None:
    claims = token_server.verify(
        token_server.issue(READER, ["repository:a/b:pull,push,delete", "bad"])
    )
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull"]}]
    assert claims["aud"] == token_server.service


async def test_token_expiry_is_settable(
    token_registry: RunningRegistry, token_server: TokenServer, unique_repo: str
) -> None:
    token_server.expires_in = 1  # restored by the autouse fixture
    image = make_image(seed="expiry")
    await push_image(token_registry, unique_repo, image, "v1")
    claims = token_server.decode_unverified(token_server.issue("alice", []))
    assert claims["exp"] - claims["iat"] == 1


async def test_registry_kill_and_restart_keeps_storage(
    registry_factory: object, unique_repo: str
) -> None:
    reg: RunningRegistry = registry_factory(auth="basic")  # type: ignore[operator]
    image = make_multiarch(seed="restart", layer_sizes=(100,))
    await push_image(reg, unique_repo, image, "v1")
    pid, port = reg.pid, reg.port
    reg.kill()
    assert not reg.running
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_manifest_bytes(reg, unique_repo, "v1")
    reg.start()
    assert reg.port == port and reg.pid != pid
    _assert_same(await fetch_image(reg, unique_repo, "v1"), image)
    reg.stop()
    reg.stop()  # idempotent


def test_unique_repo_is_valid_and_distinct(unique_repo: str) -> None:
    assert unique_repo.startswith("test/test-unique-repo-is-valid-and-distinct-")
