"""Retries: 429 and 5xx with Retry-After (seconds or HTTP-date), transport errors, bounded give-up."""

from __future__ import annotations

import logging
import time
from email.utils import formatdate

import pytest

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import RateLimitedError, RegistryError, TransportError
from imagevet.reference import Reference
from imagevet.registry import RetryPolicy
from imagevet.registry.transport import Request, Response
from tests.unit.registry.helpers import REGISTRY, FakeRegistry, error, make_client, respond

REF = Reference.parse(f"{REGISTRY}/team/app:1.0")
PATH = "/v2/team/app/manifests/1.0"
OK = {
    "Content-Type": mediatype.OCI_MANIFEST,
    "Content-Length": "2",
    "Docker-Content-Digest": str(Digest.of(b"{}")),
}


def scripted(*answers: Response) -> FakeRegistry:
    reg = FakeRegistry()
    queue = list(answers)
    reg.route("HEAD", PATH)(lambda r: queue.pop(0) if queue else respond(200, b"", OK))
    return reg


async def test_429_with_retry_after_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "imagevet.registry")
    reg = scripted(respond(429, b"", {"Retry-After": "1"}))
    client, transport = make_client(reg)
    start = time.monotonic()
    assert await client.head_manifest(REF) is not None
    assert time.monotonic() - start >= 0.95
    assert len(transport.requests) == 2
    assert "retrying in 1.00 s as Retry-After asks" in caplog.text


async def test_503_with_retry_after_http_date(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "imagevet.registry")
    when = formatdate(time.time() + 1, usegmt=True)
    reg = scripted(respond(503, b"", {"Retry-After": when}))
    client, transport = make_client(reg)
    assert await client.head_manifest(REF) is not None
    assert len(transport.requests) == 2
    assert "HTTP 503: retrying in" in caplog.text


async def test_5xx_burst_then_success() -> None:
    reg = scripted(error(503, "UNAVAILABLE"), error(502, "BAD_GATEWAY"), respond(500))
    client, transport = make_client(reg)
    assert await client.head_manifest(REF) is not None
    assert [r.status for r in client.stats] == [503, 502, 500, 200]


async def test_bounded_give_up() -> None:
    reg = scripted(*[error(503, "UNAVAILABLE")] * 10)
    client, transport = make_client(reg, retry=RetryPolicy.no_wait(attempts=3))
    with pytest.raises(RegistryError) as info:
        await client.head_manifest(REF)
    assert info.value.status == 503
    assert len(transport.requests) == 3


async def test_long_retry_after_is_not_waited_for() -> None:
    reg = scripted(error(429, "TOOMANYREQUESTS"), respond(200, b"", OK))
    reg.routes[("HEAD", PATH)] = lambda r: respond(
        429, b"", {"Retry-After": "21600", "ratelimit-remaining": "0;w=21600"}
    )
    client, transport = make_client(reg)
    with pytest.raises(RateLimitedError) as info:
        await client.head_manifest(REF)
    assert info.value.retry_after == 21600 and info.value.remaining == 0
    assert client.ratelimits[REGISTRY].remaining == 0  # recorded from the 429 too
    assert len(transport.requests) == 1


async def test_not_retried_4xx_and_501() -> None:
    for status in (400, 403, 501):
        reg = scripted(error(status, "X"))
        client, transport = make_client(reg)
        with pytest.raises(RegistryError):
            await client.head_manifest(REF)
        assert len(transport.requests) == 1


async def test_transport_errors_are_retried() -> None:
    failures = [TransportError("HEAD", f"https://{REGISTRY}{PATH}", "server disconnected")] * 2

    def handler(req: Request) -> Response:
        if failures:
            raise failures.pop()
        return respond(200, b"", OK)

    client, transport = make_client(handler)
    assert await client.head_manifest(REF) is not None
    assert [r.status for r in client.stats] == [0, 0, 200]


def test_policy_decisions() -> None:
    policy = RetryPolicy(max_retry_after=10)
    url = "https://r/x"
    assert policy.backoff_for(TransportError("GET", url, "reset")) is True
    assert policy.backoff_for(RegistryError(502, "GET", url)) is True
    assert policy.backoff_for(RegistryError(404, "GET", url)) is False
    assert policy.backoff_for(RateLimitedError(429, "GET", url, retry_after=3)) == 3.0
    assert policy.backoff_for(RateLimitedError(429, "GET", url, retry_after=11)) is False
    assert policy.backoff_for(ValueError("x")) is False
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_token_service_failing_is_retried_by_one_layer_only() -> None:
    """The token fetch inside a request has its own retries; the request around it must not
    retry it again (that made attempts x attempts token requests)."""
    reg = FakeRegistry(auth="bearer", token_status=503)
    client, transport = make_client(reg, retry=RetryPolicy.no_wait(attempts=4))
    with pytest.raises(RegistryError) as info:
        await client.head_manifest(REF)
    assert info.value.status == 503 and info.value.exhausted
    assert len(reg.token_requests) == 4


async def test_exhausted_error_is_never_retried_again() -> None:
    policy = RetryPolicy.no_wait(attempts=3)
    calls = 0

    async def inner() -> None:
        nonlocal calls
        calls += 1
        raise TransportError("GET", "https://r/x", "reset")

    with pytest.raises(TransportError) as info:
        await policy.call(lambda: policy.call(inner))
    assert info.value.exhausted
    assert calls == 3
