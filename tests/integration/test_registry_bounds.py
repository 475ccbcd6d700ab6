"""Bounded work whatever upstream sends: retries, redirects, tag pagination, crawling bodies.

Every test counts the requests a hostile or broken source received through the fault proxy, and
asserts the bound the README documents (issue 8, item 6).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from imagevet.engine.copy import BLOB_ATTEMPTS, CopySession
from imagevet.errors import CopyError, LimitExceededError, TransferTimeoutError
from imagevet.reference import Reference
from imagevet.registry import RegistryClient, RetryPolicy, TransferTimeouts
from imagevet.registry.pipeline import MAX_REDIRECTS
from tests.support.images import Image, make_image

RETRY = RetryPolicy.no_wait(5)


def ref(registry: Any, repo: str, tag: str | None = None) -> Reference:
    return Reference.parse(f"{registry.host}/{repo}" + (f":{tag}" if tag else ""))


def layer_path(repo: str, image: Image) -> str:
    """The blob path of the image's last layer (the one the faults target)."""
    return f"/v2/{repo}/blobs/{image.top.json['layers'][-1]['digest']}"


def seeded(
    fake_registry_factory: Any, repo: str, *tags: str, size: int = 2048
) -> tuple[Any, dict[str, Image]]:
    """A fake source registry holding one small image per tag."""
    source = fake_registry_factory()
    images = {t: make_image(seed=f"bounds-{repo}-{t}", layer_sizes=(size,)) for t in tags}
    for tag, image in images.items():
        source.seed(repo, image, tag)
    return source, images


async def copy_one(proxy: Any, target: Any, repo: str, tag: str, **kw: Any) -> CopyError:
    async with RegistryClient(retry=RETRY, **kw) as client:
        with pytest.raises(CopyError) as info:
            await CopySession(client, client).copy(ref(proxy, repo, tag), ref(target, repo, tag))
    return info.value


async def test_failing_blob_is_fetched_at_most_retry_attempts_times(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """A blob GET answered 503 every time: the pipeline retries it (5 sends), nothing above it
    sends it again (it used to be 5 x 3 = 15 GETs)."""
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    path = layer_path("lib/app", images["v1"])
    proxy.fail(None, 503, method="GET", path_contains=path)
    err = await copy_one(proxy, fake_registry_factory(), "lib/app", "v1")
    assert "HTTP 503" in str(err)
    assert proxy.count("GET", path) == RETRY.attempts


async def test_blob_broken_mid_body_is_restarted_at_most_blob_attempts_times(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    path = layer_path("lib/app", images["v1"])
    proxy.cut(path, after_bytes=100, times=None)
    await copy_one(proxy, fake_registry_factory(), "lib/app", "v1")
    assert proxy.count("GET", path) == BLOB_ATTEMPTS


async def test_redirect_loop_is_one_request_and_a_clear_error(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    path = layer_path("lib/app", images["v1"])
    proxy.redirect(path, method="GET", path_contains=path)  # a redirect to itself
    err = await copy_one(proxy, fake_registry_factory(), "lib/app", "v1")
    assert "redirect loop" in str(err)
    assert isinstance(err.__cause__, LimitExceededError)
    assert proxy.count("GET", path) == 1


async def test_endless_redirect_chain_is_bounded_and_not_retried(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """Each hop a new URL: the chain stops at MAX_REDIRECTS hops, and the error is not retried
    (it used to be 6 requests x 5 retries x 3 blob attempts = 90)."""
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    path = layer_path("lib/app", images["v1"])
    proxy.redirect(path + "?hop={n}", method="GET", path_contains=path)
    err = await copy_one(proxy, fake_registry_factory(), "lib/app", "v1")
    assert f"more than {MAX_REDIRECTS} redirects" in str(err)
    assert MAX_REDIRECTS == 10
    assert proxy.count("GET", path) == MAX_REDIRECTS + 1


async def test_tag_listing_linking_to_itself_is_an_error(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    proxy.add_headers(
        {"Link": '</v2/lib/app/tags/list?n=1>; rel="next"'}, path_contains="/tags/list"
    )
    async with RegistryClient(retry=RETRY) as client:
        with pytest.raises(LimitExceededError) as info:
            await client.list_tags(ref(proxy, "lib/app"), page_size=1)
    assert "lib/app" in str(info.value) and "links back" in str(info.value)
    assert proxy.count("GET", "/tags/list") == 1


async def test_crawling_blob_fails_its_image_within_the_bound_and_the_other_image_copies(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """A source dripping one byte every 20 ms (4 KiB would take 80 s) with a 0.5 s window at
    1000 B/s: that image fails within BLOB_ATTEMPTS windows (plus slack), the other is copied."""
    source, images = seeded(fake_registry_factory, "lib/app", "slow", "fast", size=4096)
    proxy = fault_proxy(source)
    target = fake_registry_factory()
    path = layer_path("lib/app", images["slow"])
    proxy.drip(path, nbytes=1, interval=0.02)
    timeouts = TransferTimeouts(idle=2.0, min_rate=1000, window=0.5)
    async with RegistryClient(retry=RETRY, timeouts=timeouts) as client:
        session = CopySession(client, client)
        started = time.monotonic()
        slow, fast = await asyncio.wait_for(
            asyncio.gather(
                session.copy(ref(proxy, "lib/app", "slow"), ref(target, "lib/app", "slow")),
                session.copy(ref(proxy, "lib/app", "fast"), ref(target, "lib/app", "fast")),
                return_exceptions=True,
            ),
            timeout=30,
        )
        elapsed = time.monotonic() - started
    assert isinstance(slow, CopyError), slow
    assert isinstance(slow.__cause__, TransferTimeoutError)
    assert "too slow" in str(slow)
    assert elapsed < BLOB_ATTEMPTS * (timeouts.window + 2.0)  # slack for a loaded machine
    assert proxy.count("GET", path) == BLOB_ATTEMPTS
    assert not isinstance(fast, BaseException), fast
    assert fast.digest == images["fast"].digest
    assert target.manifest("lib/app", "fast").data == images["fast"].top.data


async def test_stalled_source_times_out(fake_registry_factory: Any, fault_proxy: Any) -> None:
    """No byte at all (the answer never comes): the idle timeout ends each try."""
    source, images = seeded(fake_registry_factory, "lib/app", "v1")
    proxy = fault_proxy(source)
    path = layer_path("lib/app", images["v1"])
    proxy.delay(30, method="GET", path_contains=path)
    started = time.monotonic()
    err = await asyncio.wait_for(
        copy_one(
            proxy,
            fake_registry_factory(),
            "lib/app",
            "v1",
            timeouts=TransferTimeouts(idle=0.3, window=0.3),
        ),
        timeout=30,
    )
    assert "timed out" in str(err) or "stalled" in str(err)
    assert time.monotonic() - started < RETRY.attempts * 0.3 + 6  # slack for a loaded machine
    assert proxy.count("GET", path) == RETRY.attempts


async def test_a_blob_whose_retries_are_spent_is_not_fetched_again_by_the_next_image(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """Two images share a layer whose GET is answered 503 every time: the pipeline's retries
    are spent once for the session, the second image gets the same answer without 5 more GETs."""
    import hashlib

    shared = b"shared layer bytes " * 64
    source = fake_registry_factory()
    images = {
        t: make_image(seed=f"bounds-shared-{t}", layer_sizes=(512,), shared_layers=(shared,))
        for t in ("v1", "v2")
    }
    for tag, image in images.items():
        source.seed("lib/app", image, tag)
    proxy = fault_proxy(source)
    path = f"/v2/lib/app/blobs/sha256:{hashlib.sha256(shared).hexdigest()}"
    proxy.fail(None, 503, method="GET", path_contains=path)
    target = fake_registry_factory()
    async with RegistryClient(retry=RETRY) as client:
        session = CopySession(client, client)
        for tag in ("v1", "v2"):  # one after the other: the second starts after the first failed
            with pytest.raises(CopyError, match="HTTP 503"):
                await session.copy(ref(proxy, "lib/app", tag), ref(target, "lib/app", tag))
    assert proxy.count("GET", path) == RETRY.attempts
