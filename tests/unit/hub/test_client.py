"""HubClient over the in-memory transport: the requests it makes, retries, redirects, tokens."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest

from imagevet.errors import HubError, HubRateLimitedError, HubTokenError, TransportError
from imagevet.hub import HubClient, HubCredentials
from imagevet.registry import RetryPolicy
from imagevet.registry.mock import MockTransport
from imagevet.registry.transport import Request, Response

HUB = "https://hub.example"
PAT = "dckr_pat_s3cret-value-123"
OAT = "dckr_oat_org-s3cret-456"
NOW = 1_746_136_900.0


def _jwt(n: int = 1) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': NOW + 600, 'n': n})}.c2lnbmF0dXJl"


JWT = _jwt()


def answer(
    status: int = 200, body: object = None, headers: dict[str, str] | None = None
) -> Response:
    data = b"" if body is None else json.dumps(body).encode()
    return Response.from_bytes(
        status, {"Content-Type": "application/json", **(headers or {})}, data
    )


def hub(*script: Response, login: bool = True) -> MockTransport:
    """A transport answering the login with :data:`JWT` and every other request from ``script``."""
    queue = list(script)

    def handle(request: Request) -> Response:
        if login and urlsplit(request.url).path == "/v2/auth/token":
            return answer(200, {"access_token": JWT})
        return queue.pop(0) if queue else answer(200, {"ok": True})

    return MockTransport(handle)


def client(
    transport: MockTransport,
    secret: str | None = PAT,
    *,
    identifier: str = "alice",
    attempts: int = 4,
    clock: Callable[[], float] = lambda: NOW,
) -> HubClient:
    creds = HubCredentials(identifier, secret) if secret else None
    return HubClient(
        HUB,
        creds,
        transport=transport,
        retry=RetryPolicy.no_wait(attempts),
        clock=clock,
    )


def api_calls(transport: MockTransport) -> list[Request]:
    return [r for r in transport.requests if not r.url.endswith("/v2/auth/token")]


async def test_login_then_bearer_request_shape() -> None:
    transport = hub(answer(200, {"count": 0, "results": []}))
    async with client(transport) as c:
        await c.get_json("/v2/orgs/acme/groups", params={"page_size": 5})
    login, call = transport.requests
    assert (login.method, login.url) == ("POST", HUB + "/v2/auth/token")
    assert json.loads(login.body or b"") == {"identifier": "alice", "secret": PAT}
    assert login.headers["Content-Type"] == "application/json"
    assert "Authorization" not in login.headers
    assert (call.method, call.url) == ("GET", HUB + "/v2/orgs/acme/groups?page_size=5")
    assert call.headers["Authorization"] == f"Bearer {JWT}"
    assert call.headers["Accept"] == "application/json"
    assert call.headers["User-Agent"].startswith("imagevet/")
    assert call.body is None
    assert transport.closed  # the client closed its transport


async def test_json_body_and_anonymous_call() -> None:
    transport = hub(answer(201, {"name": "app"}), answer(200, {"results": []}))
    async with client(transport) as c:
        await c.request("POST", "/v2/namespaces/acme/repositories", json_body={"name": "app"})
        await c.get_json("/api/search/v4", params={"query": "a/b"}, auth=False)
    post, search = api_calls(transport)
    assert json.loads(post.body or b"") == {"name": "app"}
    assert post.headers["Content-Type"] == "application/json"
    assert "Authorization" not in search.headers  # the catalog gets no JWT
    assert dict(parse_qsl(urlsplit(search.url).query)) == {"query": "a/b"}


async def test_page_size_never_above_the_cap() -> None:
    transport = hub(answer(200, {"count": 1, "next": None, "results": [{"id": 1}]}), answer())
    async with client(transport) as c:
        items = [g async for g in c.paginate("/v2/orgs/acme/groups", params={"page_size": 1000})]
        await c.request("GET", "/v2/orgs/acme/groups", params={"page_size": 101})
    assert items == [{"id": 1}]
    sizes = [dict(parse_qsl(urlsplit(r.url).query))["page_size"] for r in api_calls(transport)]
    assert sizes == ["100", "100"]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirected_post_is_an_error_never_a_get(status: int) -> None:
    slashed = HUB + "/v2/repositories/acme/app/groups/"
    transport = hub(answer(status, headers={"Location": slashed}))
    async with client(transport) as c:
        with pytest.raises(HubError) as info:
            await c.request("POST", "/v2/repositories/acme/app/groups", json_body={"group_id": 1})
    assert [(r.method, r.url) for r in api_calls(transport)] == [
        ("POST", HUB + "/v2/repositories/acme/app/groups")
    ]
    message = str(info.value)
    assert info.value.status == status
    assert "POST https://hub.example/v2/repositories/acme/app/groups:" in message
    assert f"redirected to {slashed}" in message
    assert "never followed" in message


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repositories/acme/app/privacy/",
        "/v2/repositories/acme/app/groups/",
        "/v2/users/acme/repositories",
        "/v2/orgs/acme/settings",
    ],
)
async def test_oat_refused_before_sending_off_namespaced_routes(path: str) -> None:
    transport = hub()
    async with client(transport, OAT, identifier="acme") as c:
        with pytest.raises(HubTokenError) as info:
            await c.request("POST", path, json_body={})
    assert transport.requests == []  # not even a login
    assert info.value.status == 403
    assert "needs a personal access token" in str(info.value)
    assert "HTTP 403" not in str(info.value)  # nothing was sent, so no status is claimed
    assert OAT not in str(info.value)


@pytest.mark.parametrize(
    "path",
    ["/v2/namespaces/acme/repositories/app", "/v2/orgs/acme/groups", "/v2/orgs/acme/groups/dev"],
)
async def test_oat_accepted_on_namespaced_routes(path: str) -> None:
    transport = hub(answer(200, {}))
    async with client(transport, OAT, identifier="acme") as c:
        await c.request("GET", path)
    assert [urlsplit(r.url).path for r in api_calls(transport)] == [path]


async def test_hub_refusing_an_oat_is_a_token_error() -> None:
    refusal = {
        "errinfo": None,
        "message": "token issued from organization access token is not allowed",
    }
    transport = hub(answer(403, refusal))
    async with client(transport, OAT, identifier="acme") as c:
        with pytest.raises(HubTokenError, match="needs a personal access token"):
            await c.request("GET", "/v2/namespaces/acme/repositories/app")


async def test_retry_after_as_unix_time_is_a_moment() -> None:
    # retry-after: <unix time> as a live Hub 429 had it; the clock says it is 0.05 s away
    limited = answer(429, {"detail": "Rate limit exceeded"}, {"Retry-After": str(NOW + 0.05)})
    transport = hub(limited, answer(200, {"ok": 1}))
    async with client(transport) as c:
        assert await c.get_json("/v2/orgs/acme/groups") == {"ok": 1}
    assert len(api_calls(transport)) == 2


async def test_rate_limited_carries_the_wait_and_is_exhausted() -> None:
    limited = answer(429, {"detail": "Rate limit exceeded"}, {"X-Retry-After": str(NOW + 600)})
    transport = hub(limited)
    async with client(transport) as c:
        with pytest.raises(HubRateLimitedError) as info:
            await c.get_json("/v2/orgs/acme/groups")
    assert info.value.retry_after == 600  # more than max_retry_after: no wait, no loop
    assert info.value.exhausted
    assert len(api_calls(transport)) == 1


@pytest.mark.parametrize(
    ("statuses", "sent", "outcome"),
    [
        ([503, 502, 500, 200], 4, 200),
        ([503] * 9, 4, 503),  # the policy's 4 attempts, then the error
        ([501], 1, 501),  # not implemented: never retried
        ([404], 1, 404),
        ([400], 1, 400),
    ],
)
async def test_one_retry_policy(statuses: list[int], sent: int, outcome: int) -> None:
    transport = hub(*[answer(s, {"message": "x"}) for s in statuses])
    async with client(transport) as c:
        if outcome == 200:
            await c.get_json("/v2/orgs/acme/groups")
        else:
            with pytest.raises(HubError) as info:
                await c.get_json("/v2/orgs/acme/groups")
            assert info.value.status == outcome
            assert info.value.exhausted is (outcome == 503)
    assert len(api_calls(transport)) == sent


async def test_connection_errors_are_retried() -> None:
    failures = [TransportError("GET", HUB, "cannot connect: refused")] * 2

    def handle(request: Request) -> Response:
        if request.url.endswith("/v2/auth/token"):
            return answer(200, {"access_token": JWT})
        if failures:
            raise failures.pop()
        return answer(200, {"ok": 2})

    transport = MockTransport(handle)
    async with client(transport) as c:
        assert await c.get_json("/v2/orgs/acme/groups") == {"ok": 2}
    assert len(api_calls(transport)) == 3


async def test_a_failing_login_is_retried_by_one_layer_only() -> None:
    def handle(request: Request) -> Response:
        return answer(503, {"message": "down"})

    transport = MockTransport(handle)
    async with client(transport, attempts=3) as c:
        with pytest.raises(HubError) as info:
            await c.get_json("/v2/orgs/acme/groups")
    assert info.value.status == 503 and info.value.exhausted
    assert [urlsplit(r.url).path for r in transport.requests] == ["/v2/auth/token"] * 3


async def test_secrets_scrubbed_from_errors_and_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("imagevet"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="imagevet")
    echo = {
        "message": f"bad token {JWT} for secret {PAT}",
        "detail": "Authorization: Bearer abc.def-123\x1b[31m",
    }
    transport = hub(answer(400, echo))
    async with client(transport) as c:
        with pytest.raises(HubError) as info:
            await c.get_json("/v2/namespaces/acme/repositories", params={"name": "x"})
        text = str(info.value) + repr(info.value) + caplog.text + repr(c)
    assert PAT not in text and JWT not in text and "abc.def-123" not in text
    assert "\x1b" not in str(info.value)
    assert "bad token *** for secret ***" in info.value.message
    assert "?<redacted>" in str(info.value)  # no query string in an error either


async def test_login_failure_names_the_user_and_hints_at_sso() -> None:
    def handle(request: Request) -> Response:
        return answer(401, {"detail": "Incorrect authentication credentials"})

    transport = MockTransport(handle)
    async with client(transport, "a-password") as c:
        with pytest.raises(HubError) as info:
            await c.login()
    assert "login as 'alice' failed: Incorrect authentication credentials" in str(info.value)
    assert "single sign-on" in str(info.value)
    assert "a-password" not in str(info.value)


async def test_closed_client_sends_nothing() -> None:
    transport = hub()
    c = client(transport, None)
    await c.aclose()
    with pytest.raises(TransportError, match="closed"):
        await c.get_json("/api/search/v4", auth=False)
    assert transport.requests == []
