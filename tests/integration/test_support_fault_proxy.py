"""The fault proxy forwards faithfully and injects exactly the faults it is told to."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from imagevet.digest import Digest
from imagevet.mediatype import OCI_MANIFEST
from tests.support.fault_proxy import FaultProxy
from tests.support.images import Image, make_image, make_multiarch
from tests.support.pusher import TestClient, fetch_image, push_image
from tests.support.registry_process import RunningRegistry
from tests.support.token_server import TokenServer

ProxyFactory = Callable[[Any], FaultProxy]


def _layer(image: Image) -> Digest:
    return image.top.blobs()[-1].digest


async def _seed(reg: RunningRegistry, repo: str, size: int = 100_000) -> Image:
    image = make_image(seed=repo, layer_sizes=(size,))
    await push_image(reg, repo, image, "v1")
    return image


async def test_proxies_token_registry_push_and_pull(
    token_registry: RunningRegistry,
    token_server: TokenServer,
    fault_proxy: ProxyFactory,
    unique_repo: str,
) -> None:
    proxy = fault_proxy(token_registry)
    image = make_multiarch(seed="proxy")
    before = len(token_server.requests)
    await push_image(proxy, unique_repo, image, "v1")  # credentials come from the upstream
    got = await fetch_image(proxy, unique_repo, "v1")
    assert got.top.data == image.top.data and got.blobs == image.blobs
    assert len(token_server.requests) > before  # realm left pointing at the token server
    assert proxy.count("PUT", "/blobs/uploads/") == len(image.blobs)
    assert proxy.count("PUT", "/manifests/") == len(image.manifests)
    challenge = proxy.find(status=401)[0].response_headers["Www-Authenticate"]
    assert token_server.realm in challenge
    assert all(r.headers.get("Authorization", "").startswith("Bearer ") for r in proxy.find("PUT"))


async def test_fail_then_recover(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    await _seed(plain_registry, unique_repo)
    proxy = fault_proxy(plain_registry)
    rule = proxy.fail(2, 429, retry_after="3", path_contains="/manifests/")
    async with aiohttp.ClientSession(headers={"Accept": OCI_MANIFEST}) as s:
        for _ in range(2):
            async with s.get(f"{proxy.url}/v2/{unique_repo}/manifests/v1") as r:
                assert r.status == 429 and r.headers["Retry-After"] == "3"
                assert (await r.json())["errors"][0]["code"] == "TOOMANYREQUESTS"
        async with s.get(f"{proxy.url}/v2/{unique_repo}/manifests/v1") as r:
            assert r.status == 200
    assert rule.hits == 2 and proxy.count(status=429) == 2


async def test_fail_skip_and_method(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    proxy = fault_proxy(plain_registry)
    proxy.fail(1, 503, method="PUT", path_contains="/blobs/uploads/", skip=1)
    with pytest.raises(Exception, match="503"):
        await push_image(proxy, unique_repo, make_image(seed="skip", layer_sizes=(10, 20)), "v1")
    assert [r.status for r in proxy.find("PUT")] == [201, 503]


async def test_corrupt_once_and_always(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    image = await _seed(plain_registry, unique_repo)
    layer, data = _layer(image), image.blobs[_layer(image)]
    proxy = fault_proxy(plain_registry)
    proxy.corrupt("/blobs/", offset=70_000)
    async with TestClient(proxy) as c:
        bad = await c.get_blob(unique_repo, layer)
        assert len(bad) == len(data) and bad != data
        assert [i for i in range(len(data)) if bad[i] != data[i]] == [70_000]
        assert await c.get_blob(unique_repo, layer) == data
        proxy.corrupt("/blobs/", offset=0, times=None)
        assert (await c.get_blob(unique_repo, layer))[0] != data[0]
        assert (await c.get_blob(unique_repo, layer))[0] != data[0]


async def test_corrupt_request_body_is_refused_upstream(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    proxy = fault_proxy(plain_registry)
    proxy.corrupt("/blobs/uploads/", offset=5, method="PUT", in_request=True)
    with pytest.raises(Exception, match="DIGEST_INVALID"):
        await push_image(proxy, unique_repo, make_image(seed="reqcorrupt"))


async def test_cut_mid_body(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    image = await _seed(plain_registry, unique_repo)
    proxy = fault_proxy(plain_registry)
    proxy.cut("/blobs/", after_bytes=4096)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{proxy.url}/v2/{unique_repo}/blobs/{_layer(image)}") as r:
            assert r.status == 200 and r.headers["Content-Length"] == "100000"
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        async with s.get(f"{proxy.url}/v2/{unique_repo}/blobs/{_layer(image)}") as r:
            assert await r.read() == image.blobs[_layer(image)]


async def test_reset_before_response(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(plain_registry)
    # aiohttp itself retries an idempotent request once when the connection drops before any
    # response, so two resets are needed for the error to reach the caller.
    proxy.reset(2, path_contains="/v2/")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with s.get(f"{proxy.url}/v2/") as r:
                await r.read()
        async with s.get(f"{proxy.url}/v2/") as r:
            assert r.status == 200
    assert [r.fault for r in proxy.requests] == ["reset", "reset", None]


async def test_rate_limit_headers_decrement_on_get_only(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    await _seed(plain_registry, unique_repo, size=10)
    proxy = fault_proxy(plain_registry)
    proxy.rate_limit(remaining=2, limit=100)
    url = f"{proxy.url}/v2/{unique_repo}/manifests/v1"
    accept = {"Accept": OCI_MANIFEST}
    seen = []
    async with aiohttp.ClientSession(headers=accept) as s:
        async with s.head(url) as r:
            seen.append((r.status, r.headers["ratelimit-remaining"]))
        for _ in range(3):
            async with s.get(url) as r:
                seen.append((r.status, r.headers["ratelimit-remaining"]))
                assert r.headers["ratelimit-limit"] == "100;w=21600"
    assert seen == [(200, "2;w=21600"), (200, "1;w=21600"), (200, "0;w=21600"), (429, "0;w=21600")]


async def test_delay_and_headers(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(plain_registry)
    proxy.delay(0.3, times=1)
    proxy.add_headers({"X-Injected": "yes"}, path_contains="/v2/")
    async with aiohttp.ClientSession() as s:
        t0 = time.monotonic()
        async with s.get(f"{proxy.url}/v2/") as r:
            assert r.headers["X-Injected"] == "yes"
        assert time.monotonic() - t0 >= 0.3
    proxy.clear()
    assert proxy.rules == [] and proxy.requests == []


async def test_location_rewritten_to_proxy(
    plain_registry: RunningRegistry, fault_proxy: ProxyFactory, unique_repo: str
) -> None:
    proxy = fault_proxy(plain_registry.url)
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{proxy.url}/v2/{unique_repo}/blobs/uploads/", data=b"") as r,
    ):
        assert r.status == 202
        assert r.headers["Location"].startswith(proxy.url + "/v2/")
